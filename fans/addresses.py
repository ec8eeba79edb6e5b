"""Whether an email address is one we may send to: the one set of rules for an address a fan types (the forms'
AddressField), one a service reports for a fan (a profile's email), each release-day recipient (an address stored
before that check) and the staff addresses in the settings (DELIVERY_REPORT_EMAILS)."""

import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, validate_email
from django.db.models import Value
from django.db.models.functions import Lower

MAX_LENGTH = 254  # the longest address SMTP carries (RFC 5321's path less its brackets), and the size of our columns


def validate_deliverable(address: str) -> None:
    """Django's validate_email, and what it lets through that Django's mail can't send as written: a control,
    format (invisible) or space character, which the message drops, changes or refuses; a local part that isn't
    ASCII (validate_email's IGNORECASE letters take KELVIN SIGN for "k"), which the message writes as an RFC 2047
    word, another address; a domain that is an IP address or a single label (localhost), which names no mailbox
    on the internet; a domain the IDNA codec refuses, on which building the message raises. Internationalised
    domains pass: the message writes them in Punycode. The first reason found is the one given."""
    local_part, at, domain = address.rpartition("@")
    if at:  # without one, validate_email's words: it isn't an address at all
        if any(unicodedata.category(character)[0] in "CZ" for character in address):
            raise ValidationError(
                "Enter the email address without spaces or unprintable characters (line breaks, tabs and the like).",
                code="unprintable",
            )
        if not local_part.isascii():
            raise ValidationError(
                "Enter an address with no accented or non-Latin letters before the @: we can't send to those.",
                code="local_part",
            )
        if domain.startswith("["):
            raise ValidationError("Enter an address with a domain name after the @, not an IP address.", code="domain")
        if "." not in domain:
            raise ValidationError(
                "Enter an address with a full domain name after the @, such as example.com.", code="domain"
            )
    validate_email(address)
    try:
        domain.encode("idna")
    except UnicodeError:
        raise ValidationError("The part after the @ isn't a domain name we can send to.", code="domain") from None


VALIDATORS = [MaxLengthValidator(MAX_LENGTH), validate_deliverable]


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
