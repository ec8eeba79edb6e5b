"""The admin index as a dashboard: live and upcoming campaigns with their release and firing times, the four
delivery figures, and pre-saves in the last 24 hours. Aggregate queries only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from delivery.engine import firing_times
from fans.models import Subscription
from releases.models import Campaign

Status = Subscription.Status


def totals(campaigns: QuerySet[Campaign]) -> dict[str, int]:
    """The four statuses and the last 24 hours' pre-saves over `campaigns`, in one query."""
    since = timezone.now() - dt.timedelta(hours=24)
    return Subscription.objects.filter(campaign__in=campaigns).aggregate(
        **{status: Count("pk", filter=Q(status=status)) for status in Status.values},
        last_24h=Count("pk", filter=Q(created_at__gte=since)),
    )


@dataclass
class Row:
    campaign: Campaign
    market_times: list[tuple[str, dt.datetime, int]]


def live_and_upcoming() -> QuerySet[Campaign]:
    """Campaigns delivering now, and live campaigns, soonest release first."""
    return (
        Campaign.objects.filter(status__in=[Campaign.Status.LIVE, Campaign.Status.DELIVERING])
        .select_related("release__artist")
        .annotate(
            **{f"kpi_{status}": Count("subscriptions", filter=Q(subscriptions__status=status)) for status in Status},
            kpi_last_24h=Count(
                "subscriptions", filter=Q(subscriptions__created_at__gte=timezone.now() - dt.timedelta(hours=24))
            ),
        )
        .order_by("release__release_at", "slug")
    )


def dashboard(limit: int = 20) -> dict:
    campaigns = live_and_upcoming()
    rows = [
        Row(campaign, firing_times(campaign) if campaign.firing == Campaign.Firing.PER_MARKET else [])
        for campaign in campaigns[:limit]
    ]
    return {"rows": rows, "totals": totals(campaigns), "now": timezone.now()}
