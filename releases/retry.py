"""Retry failed: put back in the queue the failures that may succeed on another try, never the others.

Retryable means the engine gave up after transient errors (timeouts, 5xx, rate limits) and used up its
attempts: it begins those errors with `delivery.engine.GAVE_UP`; or the fan waited for the service past the
waiting time (the release not out in their market, not found by its UPC, a vault key missing), which may have
come meanwhile: `delivery.engine.WAITED`. Revoked authorizations and permanent errors
(the release is not on the service, the fan's account can't save) would fail the same way again, so they stay
as they are.

Pressed before the release time (a campaign delivered early with Deliver now), the failures wait for it: the
campaign goes back to live, its pre-saves reopen until then, and its release-time schedule delivers them with
everyone else. A per-market campaign's failures are planned again at their market's time (`engine.Run.plan`).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from delivery.engine import GAVE_UP, WAITED
from delivery.scheduling import deliver_now
from fans.models import Subscription
from releases.models import Campaign
from releases.signals import sync_schedules_on_commit


def retryable_failures(campaign: Campaign) -> QuerySet[Subscription]:
    return Subscription.objects.filter(
        Q(campaign=campaign, status=Subscription.Status.FAILED)
        & (
            Q(attempts__gte=settings.DELIVERY_MAX_ATTEMPTS, last_error__startswith=GAVE_UP)
            | Q(last_error__startswith=WAITED)
        )
        & Q(credential__isnull=False)  # its token forgotten (fans/retention.py): it could only end revoked
    )


def retryable_count(campaign: Campaign, failed: int | None = None) -> int:
    """How many failures Retry failed would re-queue. `failed`, the campaign's failed count when it is known,
    spares the query when nothing failed."""
    return 0 if failed == 0 else retryable_failures(campaign).count()


def waits_for_release(campaign: Campaign) -> bool:
    """Whether Retry failed would wait for the release time: no market's has come yet."""
    return campaign.first_firing_time() > timezone.now()


def retry_failed(campaign: Campaign) -> int:
    """Re-queue the campaign's retryable failures and start a delivery run, or before the release time make the
    campaign live again so that they wait for it (`waits_for_release`); returns how many were re-queued."""
    now = timezone.now()
    per_market = campaign.firing == Campaign.Firing.PER_MARKET
    waits = waits_for_release(campaign)
    count = retryable_failures(campaign).update(
        status=Subscription.Status.PENDING,
        attempts=0,
        # Per market: planned again at the fan's market's time by the next run; at one instant: its time.
        next_attempt_at=None if per_market else max(now, campaign.release.release_at),
        lease_expires_at=None,
        leased_by=None,
        updated_at=now,
    )
    if count and waits:
        started = [Campaign.Status.DELIVERING, Campaign.Status.DONE]
        Campaign.objects.filter(pk=campaign.pk, status__in=started).set_status(Campaign.Status.LIVE)
        sync_schedules_on_commit(campaign.pk)  # the release-time schedule, used up by Deliver now, is made again
    elif count:
        deliver_now(campaign)
    return count
