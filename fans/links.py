"""Signed links in pages and emails (privacy self-service, email confirmation): reading one back, with the
words a fan reads when it is too old (410) or damaged (400)."""

from __future__ import annotations

from typing import Any

from django.core import signing

from fans.errors import BadLink, LinkExpired

DAMAGED = "This link is damaged or incomplete. Check it was copied whole."


def load(token: str, *, salt: str, max_age: int, expired: str) -> dict[str, Any]:
    """The dict a link carries (django.core.signing, salted, at most `max_age` seconds old); LinkExpired with
    the words `expired`, or BadLink."""
    try:
        payload = signing.loads(token[:2000], salt=salt, max_age=max_age)
    except signing.SignatureExpired:
        raise LinkExpired(expired) from None
    except signing.BadSignature:
        raise BadLink(DAMAGED) from None
    if not isinstance(payload, dict):
        raise BadLink(DAMAGED)
    return payload
