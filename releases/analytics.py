"""A campaign's figures for the console: KPIs, the funnel, traffic breakdowns, pre-saves per day, failures.

Every figure is an aggregate query in the database (no rows pulled into Python), but why pending fans wait: a
bounded sample of them (WAITING_SAMPLE). The KPIs and the funnel's counts come from CampaignTally on PostgreSQL
(kept by triggers), so they cost the same at ten thousand or a million fans; on SQLite (the demo) they are
counted directly.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass

from django.db import connection
from django.db.models import Case, CharField, Count, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from fans.models import (
    EmailSignup,
    EmailSignupQuerySet,
    FunnelEvent,
    ReleaseEmail,
    ReleaseEmailQuerySet,
    Subscription,
    country_without_market,
)
from releases.models import Campaign, CampaignTally

Kind = FunnelEvent.Kind
Status = Subscription.Status


def presaves(count: int) -> str:
    """The console's word for `count` of a campaign's Subscription rows: "pre-save" or "pre-saves". A fan who
    pre-saved on three services is three of them, so "fans" would overcount the people."""
    return "pre-save" if count == 1 else "pre-saves"


def tallied() -> bool:
    """Whether CampaignTally is kept by the database's triggers (PostgreSQL)."""
    return connection.vendor == "postgresql"


def tallies(campaign: Campaign, prefix: str) -> dict[str, int]:
    rows = CampaignTally.objects.filter(campaign_id=campaign.pk, key__startswith=prefix).values_list("key", "count")
    return {key.removeprefix(prefix): count for key, count in rows}


def kpis(campaign: Campaign) -> dict[str, int]:
    """{status: count} for the four subscription statuses."""
    counts = dict.fromkeys(Status.values, 0)
    if tallied():
        counts.update(tallies(campaign, "subscription:"))
        return counts
    for status, count in (
        Subscription.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("pk")).order_by()
    ):
        counts[status] = count
    return counts


def kpi_annotations(prefix: str = "kpi_") -> dict:
    """The four counts as annotations on a Campaign queryset: a tally lookup each, or a count on SQLite."""
    if tallied():
        return {
            f"{prefix}{status}": Coalesce(
                Subquery(
                    CampaignTally.objects.filter(campaign_id=OuterRef("pk"), key=f"subscription:{status}").values(
                        "count"
                    )[:1]
                ),
                0,
            )
            for status in Status.values
        }
    return {
        f"{prefix}{status}": Count("subscriptions", filter=Q(subscriptions__status=status), distinct=True)
        for status in Status.values
    }


FUNNEL_KINDS = {"views": Kind.VIEW, "clicks": Kind.CLICK, "authorizations": Kind.AUTHORIZE}


def funnel_counts(campaign: Campaign) -> dict[str, int]:
    """Page views, button clicks and authorizations, and `visitors`: the browsers that viewed the page, each
    counted once a day (the visitor hash's salt changes daily; browsers asking not to be tracked have none)."""
    if tallied():
        counts = tallies(campaign, "funnel:")
        return {name: counts.get(key, 0) for name, key in {**FUNNEL_KINDS, "visitors": "visitors"}.items()}
    return FunnelEvent.objects.filter(campaign=campaign).aggregate(
        **{name: Count("pk", filter=Q(kind=kind)) for name, kind in FUNNEL_KINDS.items()},
        visitors=Count("visitor", filter=Q(kind=Kind.VIEW) & ~Q(visitor=""), distinct=True),
    )


@dataclass(frozen=True)
class Step:
    label: str
    count: int
    rate: float | None  # conversion from the step before, 0–1
    share: float  # of the first step, 0–1: the bar's width

    @property
    def rate_text(self) -> str:
        return "—" if self.rate is None else f"{self.rate:.0%}"


def funnel(campaign: Campaign, delivered: int | None = None, events: dict[str, int] | None = None) -> list[Step]:
    """Page views → button clicks → authorizations → delivered, each with its conversion from the step before."""
    events = funnel_counts(campaign) if events is None else events
    if delivered is None:
        delivered = kpis(campaign)[Status.DELIVERED]
    counts = [
        ("Page views", events["views"]),
        ("Button clicks", events["clicks"]),
        ("Authorizations", events["authorizations"]),
        ("Delivered", delivered),
    ]
    top = max(count for _, count in counts) or 1
    steps, previous = [], None
    for label, count in counts:
        rate = None if previous is None else (count / previous if previous else None)
        steps.append(Step(label, count, rate, count / top))
        previous = count
    return steps


def percent(part: int, whole: int) -> str:
    """`part` of `whole` as a whole percentage; a dash when there is no whole."""
    return f"{part / whole:.0%}" if whole else "—"


@dataclass(frozen=True)
class Row:
    value: str
    views: int
    authorizations: int

    @property
    def conversion(self) -> str:
        return percent(self.authorizations, self.views)


# What a breakdown's row says where the event has no value for the dimension.
BLANK_LABELS = {
    "source": "direct / unknown",
    "country": "unknown",
    "device": "unknown",
    "in_app_browser": "none (a real browser)",
}


def or_blank_label(field: str) -> Case:
    """The event's `field` (a dimension of its own name), or the dimension's blank label."""
    return Case(When(**{field: ""}, then=Value(BLANK_LABELS[field])), default=F(field))


TRAFFIC_SOURCE = Case(
    When(~Q(utm_source=""), then=F("utm_source")),
    When(~Q(referrer_domain=""), then=F("referrer_domain")),
    default=Value(BLANK_LABELS["source"]),
    output_field=CharField(),
)
DIMENSIONS = {
    "source": ("Traffic source (UTM or referrer)", TRAFFIC_SOURCE),
    "country": ("Country", or_blank_label("country")),
    "device": ("Device", or_blank_label("device")),
    "in_app_browser": ("In-app browser", or_blank_label("in_app_browser")),
}


def breakdown(campaign: Campaign, dimension: str, limit: int = 8) -> list[Row]:
    """Views and authorizations by one dimension, biggest first."""
    if tallied():
        counts: dict[str, dict[str, int]] = {}
        for kind in (Kind.VIEW, Kind.AUTHORIZE):
            for value, count in tallies(campaign, f"funnel:{kind}:{dimension}:").items():
                counts.setdefault(value or BLANK_LABELS[dimension], {})[kind] = count
        rows = [Row(value, c.get(Kind.VIEW, 0), c.get(Kind.AUTHORIZE, 0)) for value, c in counts.items()]
        return sorted(rows, key=lambda row: (-row.views, -row.authorizations, row.value))[:limit]
    _, expression = DIMENSIONS[dimension]
    rows = (
        FunnelEvent.objects.filter(campaign=campaign, kind__in=[Kind.VIEW, Kind.AUTHORIZE])
        .annotate(value=expression)
        .values("value")
        .annotate(
            views=Count("pk", filter=Q(kind=Kind.VIEW)),
            authorizations=Count("pk", filter=Q(kind=Kind.AUTHORIZE)),
        )
        .order_by("-views", "-authorizations", "value")[:limit]
    )
    return [Row(row["value"], row["views"], row["authorizations"]) for row in rows]


def breakdowns(campaign: Campaign) -> list[tuple[str, list[Row]]]:
    return [(label, breakdown(campaign, key)) for key, (label, _) in DIMENSIONS.items()]


def presaves_per_day(campaign: Campaign, days: int = 30) -> list[tuple[dt.date, int]]:
    """Pre-saves per day for the last `days` days (today included), zeros filled in."""
    today = timezone.now().date()
    start = today - dt.timedelta(days=days - 1)
    if tallied():
        found = CampaignTally.objects.filter(
            campaign_id=campaign.pk, key__gte=f"day:{start.isoformat()}", key__lte=f"day:{today.isoformat()}"
        ).values_list("key", "count")
        counts = {dt.date.fromisoformat(key.removeprefix("day:")): count for key, count in found}
    else:
        counts = dict(
            Subscription.objects.filter(campaign=campaign, created_at__date__gte=start)
            .annotate(day=TruncDate("created_at"))
            .values_list("day")
            .annotate(n=Count("pk"))
            .order_by()
        )
    days_shown = [start + dt.timedelta(days=i) for i in range(days)]
    return [(day, counts.get(day, 0)) for day in days_shown]


REVOKED_REASON = "Authorization revoked by the fan (or expired)"
UNKNOWN_ERROR = "Unknown error"  # a failure recorded without its error: no last_error to list its fans by


def failure_reasons(campaign: Campaign, limit: int = 10) -> list[tuple[str, str, int]]:
    """(reason in words, status, count) of the campaign's failed and revoked subscriptions, biggest first."""
    rows = (
        Subscription.objects.filter(campaign=campaign, status__in=[Status.FAILED, Status.REVOKED])
        .annotate(reason=Case(When(status=Status.REVOKED, then=Value(REVOKED_REASON)), default=F("last_error")))
        .values_list("reason", "status")
        .annotate(n=Count("pk"))
        .order_by("-n", "reason")[:limit]
    )
    return [(reason or UNKNOWN_ERROR, status, count) for reason, status, count in rows]


WAITING_SAMPLE = 10_000  # pending fans read to say why they wait: a bounded walk of the pending fans' index


def waiting_reasons(campaign: Campaign, limit: int = 5) -> tuple[list[tuple[str, int]], bool]:
    """Why the fans still pending were put off at their last try (the release not out in their market, a pause
    the service asked for, a passing error to retry, a setting to put right), biggest first; and whether they
    were counted over a sample (WAITING_SAMPLE of the pending fans, tried or not: a bounded read however big
    the campaign) rather than all."""
    pending = Subscription.objects.filter(campaign=campaign, status=Status.PENDING)
    sample = list(pending.values_list("last_error", flat=True)[:WAITING_SAMPLE])
    return Counter(error for error in sample if error).most_common(limit), len(sample) == WAITING_SAMPLE


@dataclass(frozen=True)
class EmailStats:
    sent: int
    opened: int
    clicked: int
    clicks: int
    unsubscribed: int
    unsent: int  # planned, not sent yet: waiting for the release time in their market, or for the mail server
    refused: int  # addresses the mail server refuses for good (a 5xx): never tried again

    @property
    def open_rate(self) -> str:
        return percent(self.opened, self.sent)

    @property
    def click_rate(self) -> str:
        return percent(self.clicked, self.sent)


def email_stats(campaign: Campaign) -> EmailStats | None:
    """The release-day email's sends, opens, clicks and unsubscriptions; None before anything was planned."""
    figures = ReleaseEmail.objects.filter(campaign=campaign).aggregate(
        planned=Count("pk"),
        sent=Count("pk", filter=Q(sent_at__isnull=False)),
        opened=Count("pk", filter=Q(opened_at__isnull=False)),
        clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
        clicks=Sum("clicks", default=0),
        unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
        unsent=Count("pk", filter=ReleaseEmailQuerySet.UNSENT),
        refused=Count("pk", filter=~Q(refusal="")),
    )
    if not figures.pop("planned"):
        return None
    return EmailStats(**figures)


def email_signups(campaign: Campaign) -> dict[str, int]:
    """The email-only sign-ups: confirmed (they get the release-day email), awaiting confirmation, unsubscribed."""
    return EmailSignup.objects.filter(campaign=campaign).aggregate(
        confirmed=Count("pk", filter=EmailSignupQuerySet.RECEIVING),
        awaiting=Count("pk", filter=Q(confirmed_at__isnull=True, unsubscribed_at__isnull=True)),
        unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
    )


@dataclass(frozen=True)
class ServiceRow:
    label: str
    clicks: int
    authorizations: int
    statuses: dict[str, int]  # subscription status → fans


def by_service(campaign: Campaign) -> list[ServiceRow]:
    """Per streaming service: button clicks, authorizations and fans by delivery status: a few tally rows on
    PostgreSQL (releases/migrations/0016_tally_services.py), else two aggregates."""
    if tallied():
        return service_rows(*services_tallied(campaign))
    events = (
        FunnelEvent.objects.filter(campaign=campaign, kind__in=[Kind.CLICK, Kind.AUTHORIZE])
        .exclude(service="")
        .values_list("service")
        .annotate(
            clicks=Count("pk", filter=Q(kind=Kind.CLICK)),
            authorizations=Count("pk", filter=Q(kind=Kind.AUTHORIZE)),
        )
        .order_by()
    )
    funnel_by_service = {service: (clicks, authorizations) for service, clicks, authorizations in events}
    statuses: dict[str, dict[str, int]] = {}
    for service, status, count in (
        Subscription.objects.filter(campaign=campaign)
        .values_list("fan__service", "status")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        statuses.setdefault(service, dict.fromkeys(Status.values, 0))[status] = count
    return service_rows(funnel_by_service, statuses)


def services_tallied(campaign: Campaign) -> tuple[dict[str, tuple[int, int]], dict[str, dict[str, int]]]:
    """by_service's counts from the tallies: {service: (clicks, authorizations)}, {service: {status: fans}}."""
    clicks = tallies(campaign, f"funnel:{Kind.CLICK}:service:")
    authorizations = tallies(campaign, f"funnel:{Kind.AUTHORIZE}:service:")
    funnel_by_service = {
        service: (clicks.get(service, 0), authorizations.get(service, 0))
        for service in (set(clicks) | set(authorizations)) - {""}
        if clicks.get(service) or authorizations.get(service)
    }
    statuses: dict[str, dict[str, int]] = {}
    for key, count in tallies(campaign, "service:").items():
        service, _, status = key.rpartition(":")
        if count:
            statuses.setdefault(service, dict.fromkeys(Status.values, 0))[status] = count
    return funnel_by_service, statuses


def service_rows(
    funnel_by_service: dict[str, tuple[int, int]], statuses: dict[str, dict[str, int]]
) -> list[ServiceRow]:
    """One row per service with clicks or fans, the registry's services first, in its order."""
    from delivery.services import SERVICES

    keys = [key for key in SERVICES if key in funnel_by_service or key in statuses]
    keys += sorted((set(funnel_by_service) | set(statuses)) - set(keys))
    return [
        ServiceRow(
            SERVICES[key].label if key in SERVICES else key,
            *funnel_by_service.get(key, (0, 0)),
            statuses.get(key, dict.fromkeys(Status.values, 0)),
        )
        for key in keys
    ]


def firing_times(campaign: Campaign) -> list[tuple[str, dt.datetime, int]]:
    """(market, firing time, pending fans) for each market of the campaign's pending fans, soonest first: the
    console's per-market schedule, each fan in their market as the engine reads it (`Campaign.market_for`)."""
    return firing_times_of([campaign])[campaign.pk]


def firing_times_of(campaigns: list[Campaign]) -> dict[int, list[tuple[str, dt.datetime, int]]]:
    """`firing_times` of each of `campaigns` (with their release), by campaign id: one query for them all."""
    by_id = {campaign.pk: campaign for campaign in campaigns}
    counts: dict[int, dict[str, int]] = {pk: defaultdict(int) for pk in by_id}
    pending = Subscription.objects.filter(campaign_id__in=by_id, status=Subscription.Status.PENDING)
    pending = pending.annotate(country=country_without_market()).values_list("campaign_id", "market", "country")
    for campaign_id, market, country, count in pending.annotate(n=Count("pk")).order_by():
        counts[campaign_id][by_id[campaign_id].market_for(market, country)] += count
    return {
        pk: sorted(((m, by_id[pk].firing_time(m), n) for m, n in counts[pk].items()), key=lambda row: (row[1], row[0]))
        for pk in by_id
    }
