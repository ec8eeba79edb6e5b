"""The campaign page's insights: funnel with conversion rates, breakdowns, the pre-saves chart, failure reasons."""

import datetime as dt
import html
import re
import time

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from fans.models import EmailSignup, Fan, FunnelEvent, Subscription
from releases import analytics, progress
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


def subscribe(campaign, user_id: str, status: str = "pending", last_error: str = "", days_ago: int = 0):
    fan = Fan.objects.create(service="spotify", service_user_id=user_id, display_name=user_id)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, status=status, last_error=last_error)
    if days_ago:
        Subscription.objects.filter(pk=subscription.pk).update(created_at=timezone.now() - dt.timedelta(days=days_ago))
    return subscription


def events(campaign, kind: str, count: int, **fields) -> None:
    FunnelEvent.objects.bulk_create(FunnelEvent(campaign=campaign, kind=kind, **fields) for _ in range(count))


@pytest.fixture
def busy_campaign():
    campaign = make_campaign()
    events(campaign, "view", 60, utm_source="instagram", country="GB", device="mobile", in_app_browser="instagram")
    events(campaign, "view", 40, referrer_domain="news.example", country="US", device="desktop")
    events(campaign, "click", 50)
    events(campaign, "authorize", 20, utm_source="instagram", country="GB", device="mobile")
    events(campaign, "authorize", 5, referrer_domain="news.example", country="US", device="desktop")
    for i in range(10):
        subscribe(campaign, f"delivered{i}", "delivered", days_ago=i % 3)
    subscribe(campaign, "revoked1", "revoked", "The fan's Spotify authorization is no longer valid (invalid_grant).")
    subscribe(campaign, "revoked2", "revoked", "Revoked by the fan.")
    for i in range(3):
        subscribe(campaign, f"forbidden{i}", "failed", "Spotify refused the action: forbidden (403).")
    return campaign


def test_funnel_counts_and_conversion_rates(busy_campaign):
    steps = analytics.funnel(busy_campaign)
    assert [(s.label, s.count, s.rate_text) for s in steps] == [
        ("Page views", 100, "—"),
        ("Button clicks", 50, "50%"),
        ("Authorizations", 25, "50%"),
        ("Delivered", 10, "40%"),
    ]


def test_breakdowns_by_source_country_device_and_in_app_browser(busy_campaign):
    by = dict(analytics.breakdowns(busy_campaign))
    source = by["Traffic source (UTM or referrer)"]
    assert [(r.value, r.views, r.authorizations, r.conversion) for r in source] == [
        ("instagram", 60, 20, "33%"),
        ("news.example", 40, 5, "12%"),
    ]
    assert [(r.value, r.views) for r in by["Country"]] == [("GB", 60), ("US", 40)]
    assert [(r.value, r.views) for r in by["Device"]] == [("mobile", 60), ("desktop", 40)]
    assert [(r.value, r.views) for r in by["In-app browser"]] == [("instagram", 60), ("none (a real browser)", 40)]


def test_failure_reasons_are_grouped_with_counts(busy_campaign):
    assert analytics.failure_reasons(busy_campaign) == [
        ("Spotify refused the action: forbidden (403).", "failed", 3),
        (analytics.REVOKED_REASON, "revoked", 2),
    ]


def test_the_page_says_why_pre_saves_are_still_waiting(staff_client, busy_campaign, settings):
    for i in range(3):
        subscribe(busy_campaign, f"japan{i}", last_error="Waiting: the release is not available on Spotify in JP yet.")
    subscribe(busy_campaign, "paused", last_error="Spotify rejected our app's credentials (check …); delivery waits.")

    assert analytics.waiting_reasons(busy_campaign) == (
        [
            ("Waiting: the release is not available on Spotify in JP yet.", 3),
            ("Spotify rejected our app's credentials (check …); delivery waits.", 1),
        ],
        False,
    )
    response = staff_client.get(reverse("admin:releases_campaign_change", args=[busy_campaign.pk]))
    text = html.unescape(response.content.decode())
    assert "Why pre-saves are still waiting" in text and "Why pre-saves weren't delivered" in text
    waiting = text.split('class="waiting-reasons"')[1].split("</section>")[0]
    failures = text.split('class="failure-reasons"')[1].split("</section>")[0]
    assert '<th scope="col">Pre-saves</th>' in waiting and '<th scope="col">Pre-saves</th>' in failures
    assert "<td>Waiting: the release is not available on Spotify in JP yet.</td>" in text
    link = re.search(r'<a href="([^"]+)">3</a>', text).group(1)
    listed = staff_client.get(link)  # the reason's own fans, not every pending fan
    assert listed.status_code == 200 and listed.context["cl"].result_count == 3


def test_presaves_per_day_fills_in_empty_days(busy_campaign):
    days = analytics.presaves_per_day(busy_campaign, days=5)
    today = timezone.now().date()
    assert [day for day, _ in days] == [today - dt.timedelta(days=i) for i in (4, 3, 2, 1, 0)]
    assert sum(count for _, count in days) == 15
    assert days[-1][1] == 4 + 5  # delivered0,3,6,9 + the five failed/revoked created today


def test_campaign_page_shows_funnel_chart_breakdowns_and_failures(staff_client, busy_campaign):
    response = staff_client.get(reverse("admin:releases_campaign_change", args=[busy_campaign.pk]))
    text = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert '<svg class="chart"' in text and "Pre-saves per day" in text
    assert "<title>" in text, "bars carry their figure for readers without JavaScript"
    assert "Page views" in text and "news.example" in text
    assert "Spotify refused the action: forbidden (403)." in text
    assert 'id="delivery-progress"' in text


def test_a_failure_reasons_count_links_to_the_fans_with_that_reason(staff_client, busy_campaign):
    subscribe(busy_campaign, "other", status="failed", last_error="Gave up after 5 attempts: Spotify is down (503).")
    response = staff_client.get(reverse("admin:releases_campaign_change", args=[busy_campaign.pk]))
    section = html.unescape(response.content.decode()).split('class="failure-reasons"')[1].split("</section>")[0]

    links = dict(re.findall(r"<td>([^<]+)</td><td><a href=\"([^\"]+)\">", section))
    listed = {reason: staff_client.get(link).context["cl"].result_count for reason, link in links.items()}

    assert listed == {
        "Spotify refused the action: forbidden (403).": 3,
        "Gave up after 5 attempts: Spotify is down (503).": 1,
        analytics.REVOKED_REASON: 2,
    }


def test_progress_reports_done_total_failures_rate_and_time_left(staff_client, busy_campaign):
    busy_campaign.status = "delivering"
    busy_campaign.save()
    for i in range(5):
        subscribe(busy_campaign, f"waiting{i}")
    first = progress.progress(busy_campaign)
    assert (first.total, first.done, first.failures, first.pending, first.running) == (20, 15, 5, 5, True)
    assert first.time_left == "estimating…"

    later = progress.progress(busy_campaign, progress.Reading(10, first.measured_at - 2))
    assert later.rate == pytest.approx(2.5, rel=0.05)  # 5 settled in 2 s
    assert later.seconds_left == pytest.approx(2.0, rel=0.05)

    url = reverse("admin:releases_campaign_progress", args=[busy_campaign.pk])
    with time_machine.travel(first.measured_at, tick=False):  # the partial's "now" is the first reading's
        partial = staff_client.get(url, {"done": "10", "at": f"{first.measured_at - 2:.3f}"}, HTTP_HX_REQUEST="true")
    text = html.unescape(partial.content.decode())
    assert 'hx-trigger="every 1.5s"' in text and "15</span> of <span" in text
    assert "2.5/s" in text


def test_the_rate_is_measured_over_half_a_minute_not_between_two_refreshes(busy_campaign):
    """Runs write outcomes in chunks: between two refreshes 1.5 s apart the rate swung from a burst to nothing."""
    busy_campaign.status = "delivering"
    busy_campaign.save()
    for i in range(5):
        subscribe(busy_campaign, f"waiting{i}")
    start = time.time()
    with time_machine.travel(start, tick=False):
        first = progress.progress(busy_campaign, progress.Reading(5, start - 10))  # 10 settled in the last 10 s
    with time_machine.travel(start + 1.5, tick=False):  # no chunk written since the last refresh
        second = progress.progress(busy_campaign, first.base, first.later)
    assert first.rate == pytest.approx(1.0, rel=0.05)
    assert second.rate == pytest.approx(10 / 11.5, rel=0.05), "not 0/s: the base stays 11.5 s back"
    assert second.time_left != "estimating…"

    with time_machine.travel(start + progress.RATE_SPAN + 1, tick=False):  # the later reading is half a minute old
        third = progress.progress(busy_campaign, second.base, second.later)
    assert third.base == second.later, "the later reading becomes the base: the span stays 30 to 60 s"
    assert third.later.at == pytest.approx(start + progress.RATE_SPAN + 1)


def test_progress_partial_survives_junk_parameters(staff_client, busy_campaign):
    url = reverse("admin:releases_campaign_progress", args=[busy_campaign.pk])
    assert staff_client.get(url, {"done": "x", "at": "nan-ish"}).status_code == 200
    assert staff_client.get(reverse("admin:releases_campaign_progress", args=[999999])).status_code == 404


def test_campaign_page_counts_email_sign_ups_by_confirmation(staff_client):
    campaign = make_campaign()
    now = timezone.now()
    for email, confirmed, unsubscribed in [
        ("a@fan.test", now, None),
        ("b@fan.test", now, None),
        ("c@fan.test", None, None),
        ("d@fan.test", now, now),
    ]:
        EmailSignup.objects.create(
            campaign=campaign, email=email, wording_version="v", confirmed_at=confirmed, unsubscribed_at=unsubscribed
        )

    assert analytics.email_signups(campaign) == {"confirmed": 2, "awaiting": 1, "unsubscribed": 1}
    page = staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()
    assert '<span class="signups-confirmed">2</span> confirmed' in page
    assert '<span class="signups-awaiting">1</span> awaiting confirmation' in page
