"""CampaignTally: PostgreSQL triggers keep each campaign's counts equal to counting the rows, whatever writes."""

import datetime as dt
import uuid

import pytest
from django.db import connection
from django.db.models import Case, Count, F, Value, When
from django.db.models.functions import TruncDate
from django.test.utils import CaptureQueriesContext

from fans.models import Fan, FunnelEvent, Subscription
from releases import analytics
from releases.models import CampaignTally
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


def counted(campaign) -> dict[str, int]:
    """The tallies' keys, counted from the rows."""
    counts: dict[str, int] = {}
    subscriptions = Subscription.objects.filter(campaign=campaign)
    for status, n in subscriptions.values_list("status").annotate(Count("pk")):
        counts[f"subscription:{status}"] = n
    for service, status, n in subscriptions.values_list("fan__service", "status").annotate(Count("pk")):
        counts[f"service:{service}:{status}"] = n
    for day, n in subscriptions.annotate(day=TruncDate("created_at")).values_list("day").annotate(Count("pk")):
        counts[f"day:{day.isoformat()}"] = n
    for event in FunnelEvent.objects.filter(campaign=campaign):
        keys = [
            f"funnel:{event.kind}",
            f"funnel:{event.kind}:source:{event.utm_source or event.referrer_domain}",
            f"funnel:{event.kind}:country:{event.country}",
            f"funnel:{event.kind}:device:{event.device}",
            f"funnel:{event.kind}:in_app_browser:{event.in_app_browser}",
        ]
        if event.service:
            keys.append(f"funnel:{event.kind}:service:{event.service}")
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
    return counts


def tallied(campaign) -> dict[str, int]:
    return {
        key: count
        for key, count in CampaignTally.objects.filter(campaign_id=campaign.pk).values_list("key", "count")
        if count
    }


def status_and_kind(counts: dict[str, int]) -> dict[str, int]:
    return {key: n for key, n in counts.items() if key.count(":") == 1 and not key.startswith("day:")}


def test_tallies_follow_inserts_updates_deletes_and_bulk_writes():
    campaign, other = make_campaign(slug="one"), make_campaign(slug="two")
    fans = Fan.objects.bulk_create(
        Fan(service="deezer" if i % 3 else "spotify", service_user_id=f"fan{i}") for i in range(12)
    )
    Subscription.objects.bulk_create(Subscription(fan=fan, campaign=campaign) for fan in fans[:10])
    Subscription.objects.create(fan=fans[10], campaign=other)
    Subscription.objects.bulk_create(  # a duplicate is skipped, and not counted
        [Subscription(fan=fans[0], campaign=campaign), Subscription(fan=fans[11], campaign=campaign)],
        ignore_conflicts=True,
    )
    FunnelEvent.objects.bulk_create(
        FunnelEvent(campaign=campaign, kind="view", utm_source="tiktok" if i % 2 else "", referrer_domain="x.test")
        for i in range(7)
    )
    FunnelEvent.objects.create(campaign=campaign, kind="authorize", country="GB", device="mobile", service="deezer")
    expected = {"subscription:pending": 11, "funnel:view": 7, "funnel:authorize": 1}
    assert tallied(campaign) == counted(campaign)
    assert status_and_kind(tallied(campaign)) == expected
    assert tallied(campaign)["funnel:view:source:tiktok"] == 3
    assert tallied(campaign)["funnel:view:source:x.test"] == 4
    assert (tallied(campaign)["service:spotify:pending"], tallied(campaign)["service:deezer:pending"]) == (4, 7)
    assert tallied(campaign)["funnel:authorize:service:deezer"] == 1

    Subscription.objects.filter(campaign=campaign, fan__in=fans[:4]).update(status="delivered")
    Subscription.objects.filter(campaign=campaign, fan=fans[4]).update(status="failed")
    Subscription.objects.filter(campaign=campaign, fan=fans[5]).update(attempts=3)  # no status change
    Subscription.objects.filter(campaign=campaign, fan=fans[6]).delete()
    FunnelEvent.objects.filter(campaign=campaign)[:1].get().delete()
    assert tallied(campaign) == counted(campaign)
    assert analytics.kpis(campaign) == {"pending": 5, "delivered": 4, "failed": 1, "revoked": 0}
    assert status_and_kind(tallied(other)) == {"subscription:pending": 1}

    Fan.objects.filter(pk=fans[7].pk).delete()  # cascades to the subscription
    assert tallied(campaign) == counted(campaign)


def test_events_without_a_service_count_no_service_key():
    """Page views name no service: none of them, copied in a batch or written one by one, writes (or updates) a
    `funnel:view:service:` row; an event given its service later is counted under it."""
    from django.utils import timezone

    from fans.tracking import VIEW_COLUMNS, ViewBuffer

    campaign = make_campaign()
    blank = dict.fromkeys(VIEW_COLUMNS, "")
    row = {**blank, "campaign_id": campaign.pk, "kind": "view", "created_at": timezone.now()}
    ViewBuffer().write([tuple(row[column] for column in VIEW_COLUMNS)] * 3)
    FunnelEvent.objects.create(campaign=campaign, kind="view")
    click = FunnelEvent.objects.create(campaign=campaign, kind="click")

    assert not CampaignTally.objects.filter(campaign_id=campaign.pk, key__contains=":service:").exists()

    FunnelEvent.objects.filter(pk=click.pk).update(service="spotify")
    assert tallied(campaign) == counted(campaign)
    keys = CampaignTally.objects.filter(campaign_id=campaign.pk, key__contains=":service:").values_list("key", "count")
    assert list(keys) == [("funnel:click:service:spotify", 1)]


def test_deleting_a_campaign_removes_its_tallies():
    campaign = make_campaign()
    fan = Fan.objects.create(service="spotify", service_user_id="fan")
    Subscription.objects.create(fan=fan, campaign=campaign)
    FunnelEvent.objects.create(campaign=campaign, kind="view")
    campaign_id = campaign.pk

    campaign.delete()

    assert not CampaignTally.objects.filter(campaign_id=campaign_id).exists()


def test_an_update_is_counted_by_what_it_changes_whatever_else_it_touches():
    """One statement mixing rows whose counted columns change with rows that only change something else (as
    the delivery engine's claims do: the lease only), a subscription moved to another campaign, and funnel
    events whose breakdown values change."""
    campaign, other = make_campaign(slug="one"), make_campaign(slug="two")
    fans = Fan.objects.bulk_create(
        Fan(service="apple_music" if i % 2 else "spotify", service_user_id=f"fan{i}") for i in range(6)
    )
    Subscription.objects.bulk_create(Subscription(fan=fan, campaign=campaign) for fan in fans)
    FunnelEvent.objects.bulk_create(FunnelEvent(campaign=campaign, kind="view", country="GB") for _ in range(3))
    before = tallied(campaign)

    Subscription.objects.filter(campaign=campaign).update(leased_by=uuid.uuid4())  # counts nothing
    assert tallied(campaign) == before == counted(campaign)

    Subscription.objects.filter(campaign=campaign).update(
        status=Case(When(fan__in=fans[:2], then=Value("delivered")), default=F("status")), attempts=F("attempts") + 1
    )
    Subscription.objects.filter(fan=fans[5]).update(campaign=other)
    Subscription.objects.filter(fan=fans[3]).update(fan=Fan.objects.create(service="deezer", service_user_id="x"))
    Subscription.objects.filter(fan=fans[4]).update(created_at=F("created_at") - dt.timedelta(days=3))
    FunnelEvent.objects.filter(pk=FunnelEvent.objects.first().pk).update(country="FR", utm_source="tiktok")

    assert tallied(campaign) == counted(campaign)
    assert tallied(other) == counted(other)
    assert analytics.kpis(campaign) == {"pending": 3, "delivered": 2, "failed": 0, "revoked": 0}
    assert tallied(campaign)["funnel:view:country:FR"] == 1 and tallied(campaign)["funnel:view:country:GB"] == 2


def test_visitors_are_counted_once_a_day_whatever_the_batches_and_stay_when_their_ids_are_forgotten(staff_client):
    """The visitor id is a daily-salted hash: a browser is one visitor a day. Counted as page views are written
    (one COPY of a batch, or bulk inserts), and an id blanked later (retention, erasure) leaves the count."""
    from django.urls import reverse
    from django.utils import timezone

    from fans.tracking import VIEW_COLUMNS, ViewBuffer

    campaign, other = make_campaign(slug="one"), make_campaign(slug="two")

    def copied(c, *visitors):
        blank = dict.fromkeys(VIEW_COLUMNS, "")
        rows = [
            {**blank, "campaign_id": c.pk, "kind": "view", "visitor": v, "created_at": timezone.now()} for v in visitors
        ]
        ViewBuffer().write([tuple(row[column] for column in VIEW_COLUMNS) for row in rows])

    copied(campaign, "a" * 32, "a" * 32, "b" * 32, "")  # one statement: a twice, and a browser refusing tracking
    FunnelEvent.objects.bulk_create(
        FunnelEvent(campaign=campaign, kind="view", visitor=v) for v in ("a" * 32, "c" * 32)
    )
    copied(other, "a" * 32)  # another campaign's visitor is its own
    FunnelEvent.objects.create(campaign=campaign, kind="click", visitor="d" * 32)  # not a view

    assert [analytics.funnel_counts(c)["visitors"] for c in (campaign, other)] == [3, 1]
    assert analytics.funnel_counts(campaign)["views"] == 6

    FunnelEvent.objects.update(visitor="")

    assert [analytics.funnel_counts(c)["visitors"] for c in (campaign, other)] == [3, 1]
    page = staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()
    assert "Visitors: <strong>3</strong>" in page


def test_the_by_service_breakdown_reads_the_tallies_not_the_rows():
    """The console's "By service" table (clicks, authorizations and fans by status per streaming service) costs a
    few tally rows whatever the campaign's size: no count over its pre-saves or its funnel events."""
    campaign = make_campaign()
    services = ["spotify", "spotify", "spotify", "apple_music"]
    fans = Fan.objects.bulk_create(Fan(service=s, service_user_id=f"fan{i}") for i, s in enumerate(services))
    Subscription.objects.bulk_create(Subscription(fan=fan, campaign=campaign) for fan in fans)
    Subscription.objects.filter(fan__in=fans[:2]).update(status="delivered")
    Subscription.objects.filter(fan=fans[3]).update(status="failed")
    events = [("click", "spotify")] * 3 + [("authorize", "spotify")] * 2 + [("click", "apple_music"), ("view", "")]
    FunnelEvent.objects.bulk_create(FunnelEvent(campaign=campaign, kind=kind, service=s) for kind, s in events)

    with CaptureQueriesContext(connection) as queries:
        rows = analytics.by_service(campaign)

    assert rows == [
        analytics.ServiceRow("Spotify", 3, 2, {"pending": 1, "delivered": 2, "failed": 0, "revoked": 0}),
        analytics.ServiceRow("Apple Music", 1, 0, {"pending": 0, "delivered": 0, "failed": 1, "revoked": 0}),
    ]
    read = " ".join(query["sql"] for query in queries)
    assert "fans_subscription" not in read and "fans_funnelevent" not in read
