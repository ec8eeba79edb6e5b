"""The campaign page is served from cache: a warm view makes one database query (the page views' batch, one
COPY; tests write a batch at each view), it carries no CSRF token (its forms fetch Django's when sent), and
staff edits to the campaign, release, artist or links show at once."""

import datetime as dt
import re

import pytest
import time_machine
from django.core.cache import caches
from django.middleware.csrf import _unmask_cipher_token
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from fans import consent, pagecache
from fans.models import FunnelEvent
from releases.models import Campaign, ReleaseLink
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_page_cache():
    caches["pages"].clear()


def url(campaign):
    return reverse("fans:campaign", args=[campaign.slug])


def test_a_warm_page_view_makes_one_query_the_tracking_copy(client, campaign, django_assert_num_queries):
    client.get(url(campaign))  # cold: loads and caches

    with django_assert_num_queries(1) as captured:
        response = client.get(url(campaign))

    assert response.status_code == 200
    assert captured.captured_queries[0]["sql"].startswith('COPY "fans_funnelevent"')  # the page views' batch
    assert FunnelEvent.objects.filter(kind="view").count() == 2


def test_the_cached_page_carries_no_csrf_token_and_sets_no_csrf_cookie(campaign):
    strict = Client(enforce_csrf_checks=True)
    strict.get(url(campaign))  # cold

    response = strict.get(url(campaign))

    html = response.content.decode()
    assert "csrfmiddlewaretoken" not in html and "csrftoken" not in response.cookies
    token_url = reverse("fans:form_token")
    assert html.count("<form") == html.count(f'data-token-url="{token_url}"') == 2  # the forms fetch it when sent
    assert '<script src="/static/js/form-token.js" defer></script>' in html


def fetched_token(client) -> str:
    response = client.get(reverse("fans:form_token"))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"] and "private" in response["Cache-Control"]
    return response.json()["token"]


def test_the_token_the_forms_fetch_is_djangos_and_accepted(campaign):
    strict = Client(enforce_csrf_checks=True)
    strict.get(url(campaign))

    token = fetched_token(strict)
    response = strict.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), {"csrfmiddlewaretoken": token})

    assert response.status_code == 302  # accepted: on to the service's sign-in


def test_a_returning_visitor_keeps_its_csrf_secret_and_gets_a_fresh_mask(campaign):
    strict = Client(enforce_csrf_checks=True)
    tokens = [fetched_token(strict)]
    secret = strict.cookies["csrftoken"].value
    strict.get(url(campaign))
    tokens.append(fetched_token(strict))

    assert tokens[0] != tokens[1] and all(len(token) == 64 for token in tokens)  # a new mask each time (BREACH)
    assert {_unmask_cipher_token(token) for token in tokens} == {secret}
    response = strict.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), {"csrfmiddlewaretoken": tokens[0]})
    assert response.status_code == 302


def test_a_forged_or_stale_csrf_token_is_refused(campaign):
    strict = Client(enforce_csrf_checks=True)
    token = fetched_token(strict)
    strict.cookies["csrftoken"] = "A" * 32  # another secret than the one the token carries

    response = strict.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), {"csrfmiddlewaretoken": token})

    assert response.status_code == 403 and "The security check didn&#x27;t match" in response.content.decode()


def test_the_token_address_answers_only_get(client, campaign):
    response = client.post(reverse("fans:form_token"))  # the test client skips the CSRF check

    assert response.status_code == 405 and response["Allow"] == "GET"


def test_staff_edits_show_at_once(client, campaign):
    client.get(url(campaign))

    campaign.subtitle = "Now with a subtitle"
    campaign.save()
    assert "Now with a subtitle" in client.get(url(campaign)).content.decode()

    campaign.release.title = "Second Light"
    campaign.release.save()
    assert "Second Light" in client.get(url(campaign)).content.decode()

    campaign.release.artist.name = "Nova Lark & Friends"
    campaign.release.artist.save()
    assert "Nova Lark &amp; Friends" in client.get(url(campaign)).content.decode()


def test_a_deploy_changing_the_consent_wording_never_shows_a_page_cached_with_the_old(client, campaign, monkeypatch):
    client.get(url(campaign))
    Campaign.objects.filter(pk=campaign.pk).update(subtitle="Written without a signal")  # as if by the new code
    assert "Written without a signal" not in client.get(url(campaign)).content.decode()  # the cached page

    monkeypatch.setattr(consent, "WORDING_VERSION", consent.WORDING_VERSION + "-next")  # the deploy's new words

    assert "Written without a signal" in client.get(url(campaign)).content.decode()  # built anew, with them


def test_a_new_link_and_a_new_slug_show_at_once(client):
    campaign = make_campaign(release_in=-dt.timedelta(days=1))
    client.get(url(campaign))

    ReleaseLink.objects.create(release=campaign.release, platform="tidal", url="https://tidal.com/album/1")
    assert "Listen on Tidal" in client.get(url(campaign)).content.decode()

    old = url(campaign)
    campaign.slug = "first-light-deluxe"
    campaign.save()
    assert client.get(old).status_code == 404
    assert client.get(url(campaign)).status_code == 200


def test_a_campaign_back_to_draft_disappears_at_once(client, campaign):
    client.get(url(campaign))

    campaign.status = "draft"
    campaign.save()

    assert client.get(url(campaign)).status_code == 404


def test_the_countdown_is_fresh_on_every_cached_view(client, campaign):
    def hours_left() -> str:
        html = client.get(url(campaign)).content.decode()
        return re.search(r'data-unit="hours">(\d+)<', html).group(1)

    start = timezone.now()
    with time_machine.travel(start, tick=False):
        before = hours_left()
    with time_machine.travel(start + dt.timedelta(hours=1), tick=False):
        after = hours_left()

    assert (int(before) - int(after)) % 24 == 1


def test_views_with_no_utm_values_share_the_filled_page_within_a_second(campaign):
    page = pagecache.campaign_page(campaign.slug)
    start = timezone.now().replace(microsecond=0)

    def content(at: dt.datetime, **utm: str) -> bytes:
        with time_machine.travel(at, tick=False):
            rendered = pagecache.campaign_html(page, country="", preferred="", in_app=None)
            return pagecache.page_content(rendered, utm=utm)

    first = content(start + dt.timedelta(milliseconds=100))
    assert content(start + dt.timedelta(milliseconds=900)) is first  # filled once for the second
    tagged = content(start + dt.timedelta(milliseconds=950), utm_source="newsletter")
    assert b'name="utm_source" value="newsletter"' in tagged and b"utm_source" not in first
    next_second = content(start + dt.timedelta(seconds=1, milliseconds=100))
    assert next_second != first and seconds_left(next_second.decode()) == str(int(seconds_left(first.decode())) - 1)


def test_a_view_with_utm_values_leaves_the_shared_page_as_it_was(client, campaign):
    tagged = client.get(url(campaign) + "?utm_source=newsletter").content.decode()
    plain = client.get(url(campaign)).content.decode()

    assert 'name="utm_source" value="newsletter"' in tagged
    assert "utm_source" not in plain


def test_the_page_turns_into_the_smart_link_at_release_time_without_an_edit(client):
    campaign = make_campaign(release_in=dt.timedelta(minutes=5))
    assert "Pre-save on Spotify" in client.get(url(campaign)).content.decode()

    with time_machine.travel(timezone.now() + dt.timedelta(minutes=6)):
        html = client.get(url(campaign)).content.decode()

    assert "Listen on Spotify" in html and "Pre-save on Spotify" not in html


def seconds_left(html: str) -> str:
    return re.search(r'data-seconds-left="(\d+)"', html).group(1)


def test_a_page_cached_just_before_the_release_is_the_smart_link_at_the_release_instant(client):
    """The cached page data and its pre-save rendering outlive the release instant (PAGE_CACHE_SECONDS): the
    page still turns at the instant itself, and up to it the countdown never reads zero (zero is "out")."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    release_at = campaign.firing_time()
    with time_machine.travel(release_at - dt.timedelta(milliseconds=500), tick=False):
        before = client.get(url(campaign)).content.decode()
    with time_machine.travel(release_at, tick=False):
        at = client.get(url(campaign)).content.decode()

    assert "Pre-save on Spotify" in before and "Out now" not in before
    assert seconds_left(before) == "1" and re.search(r'data-unit="seconds">01<', before)
    assert "Out now" in at and "Pre-save on Spotify" not in at and "data-countdown" not in at


def test_a_per_market_page_cached_just_before_a_markets_release_is_its_smart_link_at_that_instant(client):
    """Midnight in London is 05:00 UTC in New York: the New York page cached half a second before it turns then,
    while the London page, out since midnight there, stays the smart link."""
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", status="delivering")
    release = campaign.release
    release.release_date, release.release_time, release.timezone = dt.date(2026, 12, 4), dt.time(0, 0), "Europe/London"
    release.save()
    new_york_midnight = dt.datetime(2026, 12, 4, 5, 0, tzinfo=dt.UTC)
    with time_machine.travel(new_york_midnight - dt.timedelta(milliseconds=500), tick=False):
        before = client.get(url(campaign), HTTP_CF_IPCOUNTRY="US").content.decode()
        london = client.get(url(campaign), HTTP_CF_IPCOUNTRY="GB").content.decode()
    with time_machine.travel(new_york_midnight, tick=False):
        at = client.get(url(campaign), HTTP_CF_IPCOUNTRY="US").content.decode()

    assert "Pre-save on Spotify" in before and seconds_left(before) == "1"
    assert "Out now" in london
    assert "Out now" in at and "Pre-save on Spotify" not in at
