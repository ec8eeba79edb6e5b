"""Whether an email address is one we may send to: the one set of rules for an address a fan types (the forms'
AddressField), one a service reports for a fan (a profile's email), each release-day recipient (an address stored
before that check) and the staff addresses in the settings (DELIVERY_REPORT_EMAILS)."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, validate_email

MAX_LENGTH = 254  # the longest address SMTP carries (RFC 5321's path less its brackets), and the size of our columns
VALIDATORS = [MaxLengthValidator(MAX_LENGTH), validate_email]


def is_valid(address: str) -> bool:
    try:
        for validator in VALIDATORS:
            validator(address)
    except ValidationError:
        return False
    return True
