"""The audit log: every Deliver now, Retry failed and export, with who, when and how many rows."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from releases.models import AuditEntry, Campaign


def record(
    user: AbstractBaseUser, action: str, *, campaign: Campaign | None = None, rows: int = 0, **details
) -> AuditEntry:
    if campaign is not None:  # kept in words: the entry outlives the campaign (its link is emptied on delete)
        details = {"campaign": campaign.slug, **details}
    return AuditEntry.objects.create(
        user=user if user.is_authenticated else None,
        username=user.get_username(),
        action=action,
        campaign=campaign,
        rows=rows,
        details=details,
    )


def last_entry(campaign: Campaign, action: str) -> AuditEntry | None:
    return AuditEntry.objects.filter(campaign=campaign, action=action).order_by("-at").first()
