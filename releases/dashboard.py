"""The admin index as a dashboard: live and upcoming campaigns with their release and firing times, the four
delivery figures, and pre-saves in the last 24 hours. Aggregate queries only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from delivery.workers import banner as worker_banner
from fans.models import Subscription
from releases.analytics import firing_times_of, kpi_annotations
from releases.models import Campaign

Status = Subscription.Status


def totals(campaigns: QuerySet[Campaign]) -> dict[str, int]:
    """The four statuses and the last 24 hours' pre-saves over `campaigns`."""
    since = timezone.now() - dt.timedelta(hours=24)
    figures = campaigns.order_by().aggregate(
        **{status: Sum(f"kpi_{status}", default=0) for status in Status.values},
    )
    recent = Subscription.objects.filter(campaign__in=campaigns.values("pk"), created_at__gte=since)
    figures["last_24h"] = recent.count()
    return figures


@dataclass
class Row:
    campaign: Campaign
    market_times: list[tuple[str, dt.datetime, int]]


def live_and_upcoming() -> QuerySet[Campaign]:
    """Campaigns delivering now, and live campaigns, soonest release first."""
    since = timezone.now() - dt.timedelta(hours=24)
    recent = Subscription.objects.filter(campaign=OuterRef("pk"), created_at__gte=since).order_by()
    last_24h = Coalesce(Subquery(recent.values("campaign").annotate(n=Count("pk")).values("n")[:1]), 0)
    return (
        Campaign.objects.filter(status__in=[Campaign.Status.LIVE, Campaign.Status.DELIVERING])
        .select_related("release__artist")
        .annotate(**kpi_annotations(), kpi_last_24h=last_24h)
        .order_by("release__release_at", "slug")
    )


def dashboard(limit: int = 20) -> dict:
    campaigns = live_and_upcoming()
    shown = list(campaigns[:limit])
    # One query for every per-market campaign shown, not one each.
    times = firing_times_of([campaign for campaign in shown if campaign.firing == Campaign.Firing.PER_MARKET])
    rows = [Row(campaign, times.get(campaign.pk, [])) for campaign in shown]
    return {
        "rows": rows,
        "totals": totals(campaigns),
        "now": timezone.now(),
        **(worker_banner() if rows else {}),  # live campaigns need a working cluster to be delivered
    }
