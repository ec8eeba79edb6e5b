"""The "email me when it's out" fallback: an email address and an explicit consent, nothing else."""

from __future__ import annotations

from django.utils import timezone

from fans import consent
from fans.errors import CampaignClosed
from fans.models import EmailSignup
from releases.models import Campaign


def sign_up(campaign: Campaign, email: str, *, country: str = "") -> EmailSignup:
    """Record (or renew) `email`'s sign-up for `campaign`, with the wording version the fan agreed to."""
    if not (campaign.accepts_presaves and campaign.offer_email_optin):
        raise CampaignClosed(
            "This release is out or its sign-up has ended, so there's nothing to email you about.",
            retry_url=campaign.get_absolute_url(),
        )
    signup, _ = EmailSignup.objects.update_or_create(
        campaign=campaign,
        email=email.strip().lower(),
        defaults={
            "country": country,
            "wording_version": consent.WORDING_VERSION,
            "created_at": timezone.now(),
            "unsubscribed_at": None,
        },
    )
    return signup
