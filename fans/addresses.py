"""Whether an email address is one we may send to: the one check for an address a service reports for a fan (a
profile's email) and for each release-day recipient (an address stored before that check)."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def is_valid(address: str) -> bool:
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True
