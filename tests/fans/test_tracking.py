"""Funnel tracking: one FunnelEvent per view, click, authorization, email opt-in and smart-link click, with
cleaned UTM values, referrer domain, country, device and in-app browser; no IP; a daily-salted visitor hash."""

import datetime as dt
import time

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from fans import tracking
from fans.models import FunnelEvent, Subscription
from tests.conftest import make_campaign, wait_for
from tests.fans.test_oauth_callback import CALLBACK, sandbox_login

pytestmark = pytest.mark.django_db
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)
INSTAGRAM_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 Instagram 357.0.0.25.101 Android"
)


def view(client, campaign, query: str = "", **headers):
    return client.get(reverse("fans:campaign", args=[campaign.slug]) + query, **headers)


def test_a_page_view_is_recorded_with_where_it_came_from(client, campaign):
    response = view(
        client,
        campaign,
        "?utm_source=Instagram&utm_medium=bio%20link&utm_campaign=launch",
        HTTP_REFERER="https://l.instagram.com/?u=https%3A%2F%2Fexample.test",
        HTTP_CF_IPCOUNTRY="fr",
        HTTP_USER_AGENT=INSTAGRAM_ANDROID,
    )

    assert response.status_code == 200
    event = FunnelEvent.objects.get()
    assert (event.campaign, event.kind, event.service) == (campaign, "view", "")
    assert (event.utm_source, event.utm_medium, event.utm_campaign) == ("instagram", "bio link", "launch")
    assert (event.referrer_domain, event.country, event.device) == ("l.instagram.com", "FR", "mobile")
    assert event.in_app_browser == "instagram"
    assert event.subscription is None
    cookie = response.cookies[tracking.VISITOR_COOKIE]
    assert cookie["httponly"] and cookie.value not in event.visitor
    assert (cookie["max-age"], cookie["path"], cookie["samesite"]) == (180 * 86_400, "/", "Lax")
    assert event.visitor == tracking.visitor_hash(cookie.value)
    assert "127.0.0.1" not in str(FunnelEvent.objects.values().get())  # no IP address, anywhere


@pytest.mark.parametrize("https", [True, False])
def test_the_visitor_cookie_is_secure_when_the_site_is_https(client, campaign, settings, https):
    settings.SESSION_COOKIE_SECURE = https

    cookie = view(client, campaign).cookies[tracking.VISITOR_COOKIE]

    assert bool(cookie["secure"]) is https
    assert ("; Secure" in cookie.output()) is https


def test_each_new_visitor_gets_a_cookie_of_its_own(campaign):
    first, second = (view(Client(), campaign).cookies[tracking.VISITOR_COOKIE] for _ in range(2))

    assert first.value != second.value
    assert f"{tracking.VISITOR_COOKIE}={second.value};" in second.output() and first.value not in second.output()


def test_the_same_visitor_hashes_alike_within_a_day_and_differently_the_next(client, campaign):
    with time_machine.travel(dt.datetime(2026, 11, 2, 9, tzinfo=dt.UTC), tick=False):
        view(client, campaign, HTTP_USER_AGENT=IPHONE_SAFARI)
        view(client, campaign, HTTP_USER_AGENT=IPHONE_SAFARI)
    with time_machine.travel(dt.datetime(2026, 11, 3, 9, tzinfo=dt.UTC), tick=False):
        view(client, campaign, HTTP_USER_AGENT=IPHONE_SAFARI)

    first, second, next_day = FunnelEvent.objects.order_by("created_at").values_list("visitor", flat=True)
    assert first == second and len(first) == 32
    assert next_day != first


@pytest.mark.parametrize("header", ["HTTP_DNT", "HTTP_SEC_GPC"])
def test_do_not_track_and_global_privacy_control_set_no_cookie(client, campaign, header):
    response = view(client, campaign, **{header: "1"})

    assert tracking.VISITOR_COOKIE not in response.cookies
    assert FunnelEvent.objects.get().visitor == ""


def test_link_preview_fetchers_are_not_counted_as_views_nor_given_a_visitor_id(client, campaign):
    preview = view(
        client, campaign, HTTP_USER_AGENT="facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
    )
    head = client.head(reverse("fans:campaign", args=[campaign.slug]))

    assert head.status_code == 200 and head.content == b""
    assert not FunnelEvent.objects.exists()
    assert tracking.VISITOR_COOKIE not in preview.cookies and tracking.VISITOR_COOKIE not in head.cookies


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("<script>alert(1)</script>", "scriptalert(1)/script"),
        ("  Two   Spaces\t\n", "two spaces"),
        ("x" * 5000, "x" * 100),
        ("\x00\x1b[31mred", "31mred"),
        ("émoji 🎵 ok", "émoji ok"),
    ],
)
def test_odd_utm_values_are_cleaned_not_refused(client, campaign, raw, stored):
    response = client.get(reverse("fans:campaign", args=[campaign.slug]), {"utm_source": raw})

    assert response.status_code == 200
    assert FunnelEvent.objects.get().utm_source == stored


def test_the_presave_click_and_the_authorization_carry_the_utm_values(client, sandbox):
    campaign = make_campaign()
    page = view(client, campaign, "?utm_source=newsletter&utm_campaign=drop")
    assert 'name="utm_source" value="newsletter"' in page.content.decode()  # hidden fields in the form

    started = client.post(
        reverse("fans:presave", args=[campaign.slug, "spotify"]),
        {"utm_source": "newsletter", "utm_campaign": "drop"},
        HTTP_USER_AGENT=IPHONE_SAFARI,
    )
    query = sandbox_login(started["Location"])
    client.get(CALLBACK, query, HTTP_USER_AGENT=IPHONE_SAFARI)

    click, authorized = FunnelEvent.objects.exclude(kind="view").order_by("created_at")
    assert (click.kind, click.service, click.utm_source, click.utm_campaign) == (
        "click",
        "spotify",
        "newsletter",
        "drop",
    )
    assert (authorized.kind, authorized.service, authorized.utm_source) == ("authorize", "spotify", "newsletter")
    assert authorized.subscription == Subscription.objects.get()
    assert click.visitor == authorized.visitor != ""  # the same browser, the same day


def test_a_replayed_callback_records_no_second_authorization(client, sandbox):
    campaign = make_campaign()
    query = sandbox_login(client.post(reverse("fans:presave", args=[campaign.slug, "spotify"]))["Location"])
    client.get(CALLBACK, query)

    replay = client.get(CALLBACK, query)

    assert replay.status_code == 302  # back to the thank-you page
    assert FunnelEvent.objects.filter(kind="authorize").count() == 1


def test_page_views_are_written_in_batches(client, campaign, settings, django_assert_num_queries):
    settings.FUNNEL_BATCH_SIZE = 3
    url = reverse("fans:campaign", args=[campaign.slug])
    client.get(url)  # cold: loads the page; its view waits in the buffer
    try:
        with django_assert_num_queries(0):
            client.get(url)
        assert not FunnelEvent.objects.exists()
        with django_assert_num_queries(1):  # the third: one INSERT of all three
            client.get(url)
        assert FunnelEvent.objects.filter(kind="view").count() == 3
    finally:
        tracking.views.flush()


@pytest.mark.django_db(transaction=True)  # the timer writes on a connection of its own
def test_waiting_page_views_are_written_after_a_while_without_another_view(client, campaign, settings):
    """A quiet page: its one view is written FUNNEL_FLUSH_SECONDS later by the buffer's timer, not left
    uncounted until the next visitor comes."""
    settings.FUNNEL_BATCH_SIZE = 100
    settings.FUNNEL_FLUSH_SECONDS = 0.3
    url = reverse("fans:campaign", args=[campaign.slug])
    try:
        client.get(url)
        assert not FunnelEvent.objects.exists()
        wait_for(lambda: FunnelEvent.objects.filter(kind="view").count() == 1, timeout=5, interval=0.05)
        assert tracking.views.timer is None
    finally:
        tracking.views.flush()


def test_a_view_after_a_while_writes_those_waiting(client, campaign, settings):
    settings.FUNNEL_BATCH_SIZE = 100
    settings.FUNNEL_FLUSH_SECONDS = 0.2
    url = reverse("fans:campaign", args=[campaign.slug])
    try:
        client.get(url)
        tracking.views.timer.cancel()  # the timer's connection would not see this test's campaign (uncommitted)
        assert not FunnelEvent.objects.exists()
        time.sleep(0.25)
        client.get(url)  # the oldest waited long enough: both are written
        assert FunnelEvent.objects.count() == 2
    finally:
        tracking.views.flush()
