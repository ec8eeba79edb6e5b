"""The admin index as a dashboard: live and upcoming campaigns, release and per-market times, the KPIs."""

import datetime as dt
import html

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from fans.models import Fan, Subscription
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db
INDEX = reverse("admin:index")


def subscribe(campaign, user_id: str, status: str = "pending", market: str = "", created_days_ago: int = 0):
    fan = Fan.objects.create(service="spotify", service_user_id=user_id, display_name=user_id)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, status=status, market=market)
    if created_days_ago:
        Subscription.objects.filter(pk=subscription.pk).update(
            created_at=timezone.now() - dt.timedelta(days=created_days_ago)
        )
    return subscription


def test_dashboard_lists_live_campaigns_with_kpis_and_the_last_24_hours(staff_client):
    live = make_campaign(slug="live-one")
    make_campaign(slug="a-draft", status="draft")
    for i, status in enumerate(["pending", "pending", "delivered", "failed", "revoked"]):
        subscribe(live, f"fan{i}", status, created_days_ago=3 if i == 0 else 0)

    response = staff_client.get(INDEX)

    dashboard = response.context["rows"]
    assert [row.campaign.slug for row in dashboard] == ["live-one"], "drafts are not on the dashboard"
    totals = response.context["totals"]
    assert (totals["pending"], totals["delivered"], totals["failed"], totals["revoked"], totals["last_24h"]) == (
        2,
        1,
        1,
        1,
        4,
    )
    text = html.unescape(response.content.decode())
    assert "/live-one/" in text and "Pre-saves, last 24 h" in text
    assert live.release.release_at.strftime("%Y-%m-%d %H:%M") in text


def test_dashboard_shows_per_market_firing_times(staff_client):
    campaign = make_campaign(slug="per-market", firing="per_market", default_market="US")
    subscribe(campaign, "jp-fan", market="JP")
    subscribe(campaign, "us-fan", market="US")

    text = staff_client.get(INDEX).content.decode()

    assert "Per market: JP" in text and "US" in text


def test_dashboard_queries_do_not_grow_with_subscriptions(staff_client):
    campaign = make_campaign()
    subscribe(campaign, "first")
    with CaptureQueriesContext(connection) as few:
        staff_client.get(INDEX)
    for i in range(30):
        subscribe(campaign, f"more{i}")
    with CaptureQueriesContext(connection) as many:
        staff_client.get(INDEX)
    assert len(many) == len(few)


def test_dashboard_queries_do_not_grow_with_per_market_campaigns(staff_client):
    """Each per-market campaign's firing times come from one query for them all, not one query each."""
    first = make_campaign(slug="per-market-0", firing="per_market", default_market="US")
    subscribe(first, "jp-0", market="JP")
    with CaptureQueriesContext(connection) as few:
        staff_client.get(INDEX)
    for i in range(1, 4):
        campaign = make_campaign(slug=f"per-market-{i}", firing="per_market", default_market="GB")
        subscribe(campaign, f"jp-{i}", market="JP")
        subscribe(campaign, f"nowhere-{i}")  # no market: the campaign's default, GB

    with CaptureQueriesContext(connection) as many:
        response = staff_client.get(INDEX)

    assert len(many) == len(few)
    rows = {
        row.campaign.slug: [(market, count) for market, _, count in row.market_times]
        for row in response.context["rows"]
    }
    assert rows == {
        "per-market-0": [("JP", 1)],
        **{f"per-market-{i}": [("JP", 1), ("GB", 1)] for i in range(1, 4)},
    }
