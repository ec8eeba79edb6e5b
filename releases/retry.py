"""Retry failed: put back in the queue the failures that may succeed on another try, never the others.

Retryable means the engine gave up after transient errors (timeouts, 5xx, rate limits) and used up its
attempts: it begins those errors with `delivery.engine.GAVE_UP`. Revoked authorizations and permanent errors
(the release is not on the service, the fan's account can't save) would fail the same way again, so they stay
as they are.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from delivery.engine import GAVE_UP
from delivery.scheduling import deliver_now
from fans.models import Subscription
from releases.models import Campaign


def retryable_failures(campaign: Campaign) -> QuerySet[Subscription]:
    return Subscription.objects.filter(
        Q(campaign=campaign, status=Subscription.Status.FAILED)
        & Q(attempts__gte=settings.DELIVERY_MAX_ATTEMPTS, last_error__startswith=GAVE_UP)
        & Q(credential__isnull=False)  # its token forgotten (fans/retention.py): it could only end revoked
    )


def retryable_count(campaign: Campaign, failed: int | None = None) -> int:
    """How many failures Retry failed would re-queue. `failed`, the campaign's failed count when it is known,
    spares the query when nothing failed."""
    return 0 if failed == 0 else retryable_failures(campaign).count()


def retry_failed(campaign: Campaign) -> int:
    """Re-queue the campaign's retryable failures and start a delivery run; returns how many were re-queued."""
    count = retryable_failures(campaign).update(
        status=Subscription.Status.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        lease_expires_at=None,
        leased_by=None,
        updated_at=timezone.now(),
    )
    if count:
        deliver_now(campaign)
    return count
