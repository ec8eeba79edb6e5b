"""Slugs a campaign may not take: campaign pages live at /<slug>/, beside the site's fixed paths.

The admin's campaign form validates with `validate_campaign_slug`; tests check every fixed top-level path
of the URLconf is listed here.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

RESERVED_SLUGS = frozenset(
    {
        # Paths the site serves today (presave_site/urls.py, fans/urls.py) and the static/media prefixes.
        "admin",
        "oauth",
        "revoke",
        "privacy",
        "static",
        "media",
        "e",  # the release-day email's open pixel, tracked clicks and unsubscribe (fans/email_views.py)
        "forms",  # the CSRF token the campaign page's forms fetch when sent (fans.views.form_token)
        "favicon.ico",  # no slug has a dot: listed because the URLconf serves it (a test checks every fixed path)
        # Paths a later issue may want, kept free so a campaign never has to move.
        "about",
        "account",
        "accounts",
        "api",
        "auth",
        "email",
        "health",
        "help",
        "legal",
        "login",
        "logout",
        "status",
        "terms",
        "unsubscribe",
    }
)

RESERVED_SLUG_MESSAGE = "“%(slug)s” is a path the site itself uses (like /admin/ or /privacy/). Choose another slug."


def is_reserved_slug(slug: str) -> bool:
    return slug.lower() in RESERVED_SLUGS or slug.startswith("_")


def validate_campaign_slug(slug: str) -> None:
    """Raise ValidationError when `slug` would collide with one of the site's fixed paths."""
    if is_reserved_slug(slug):
        raise ValidationError(RESERVED_SLUG_MESSAGE, code="reserved_slug", params={"slug": slug})
