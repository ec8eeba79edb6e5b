"""Whether an email address is one we may send to: the one set of rules for an address a fan types (the forms'
AddressField), one a service reports for a fan (a profile's email), each release-day recipient (an address stored
before that check) and the staff addresses in the settings (DELIVERY_REPORT_EMAILS)."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, validate_email
from django.db.models import Value
from django.db.models.functions import Lower

MAX_LENGTH = 254  # the longest address SMTP carries (RFC 5321's path less its brackets), and the size of our columns
VALIDATORS = [MaxLengthValidator(MAX_LENGTH), validate_email]


def is_valid(address: str) -> bool:
    try:
        for validator in VALIDATORS:
            validator(address)
    except ValidationError:
        return False
    return True


def lowered(address: str) -> Lower:
    """`address` as the database lower-cases it, as the `lower(email)` indexes hold addresses: a field's
    `__lower` compared with it (`email__lower=lowered(address)`) finds the address whatever its case, through
    that index (iexact's UPPER() would read every row)."""
    return Lower(Value(address))
