"""Per-market firing and release detection: each market fires at its local time, and waits for the release."""

import datetime as dt

import pytest
import requests
import time_machine
from django.urls import reverse
from django.utils import timezone

from delivery import engine, scheduling
from delivery.sandbox import demo_catalog
from fans.models import Credential, Fan, Subscription
from releases import analytics, retry
from releases.models import Campaign, Release
from tests.conftest import make_campaign, make_subscription

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"
FRIDAY = dt.date(2026, 12, 4)

pytestmark = pytest.mark.django_db


def per_market_campaign() -> Campaign:
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB")
    release = campaign.release
    release.release_date, release.release_time, release.timezone = FRIDAY, dt.time(0, 0), "Europe/London"
    release.save()
    return Campaign.objects.select_related("release__artist").get(pk=campaign.pk)


def subscribe(campaign, sandbox, user: str, market: str) -> Subscription:
    subscription = make_subscription(campaign, sandbox, user)
    Subscription.objects.filter(pk=subscription.pk).update(market=market)
    return subscription


def status_of(subscription) -> str:
    return Subscription.objects.get(pk=subscription.pk).status


def test_each_market_fires_at_its_own_local_midnight(sandbox):
    campaign = per_market_campaign()
    tokyo = subscribe(campaign, sandbox, "alice", "JP")
    london = subscribe(campaign, sandbox, "bob", "GB")
    unknown = subscribe(campaign, sandbox, "chloe", "")  # the campaign's default market: GB

    with time_machine.travel(dt.datetime(2026, 12, 3, 15, 0, 30, tzinfo=dt.UTC), tick=True):  # midnight in Tokyo
        engine.deliver_campaign(campaign.pk)
        assert status_of(tokyo) == "delivered"
        assert status_of(london) == status_of(unknown) == "pending"
        assert analytics.firing_times(campaign) == [("GB", dt.datetime(2026, 12, 4, tzinfo=dt.UTC), 2)]

    with time_machine.travel(dt.datetime(2026, 12, 4, 0, 0, 30, tzinfo=dt.UTC), tick=True):  # midnight in London
        engine.deliver_campaign(campaign.pk)
        assert status_of(london) == status_of(unknown) == "delivered"
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DELIVERING, "New York is still to come"

    with time_machine.travel(dt.datetime(2026, 12, 5, 12, 0, 30, tzinfo=dt.UTC), tick=True):  # out everywhere
        assert scheduling.resume_deliveries() == "resumed 0 campaign(s), 1 done"
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert Subscription.objects.get(pk=tokyo.pk).delivered_at < Subscription.objects.get(pk=london.pk).delivered_at


def test_a_release_postponed_after_the_first_market_fired_reaches_the_others_at_the_new_time(sandbox):
    """Out in Tokyo, then the label moves the release a week later: London's fans, planned for the old
    midnight, are planned again for the new one instead of being delivered a week early."""
    campaign = per_market_campaign()
    tokyo = subscribe(campaign, sandbox, "alice", "JP")
    london = subscribe(campaign, sandbox, "bob", "GB")
    with time_machine.travel(dt.datetime(2026, 12, 3, 15, 0, 30, tzinfo=dt.UTC), tick=True):  # midnight in Tokyo
        engine.deliver_campaign(campaign.pk)
        assert status_of(tokyo) == "delivered" and status_of(london) == "pending"
        release = Release.objects.get(pk=campaign.release_id)
        release.release_date = FRIDAY + dt.timedelta(days=7)
        release.save()

    with time_machine.travel(dt.datetime(2026, 12, 4, 0, 0, 30, tzinfo=dt.UTC), tick=True):  # the old midnight
        engine.deliver_campaign(campaign.pk)
        assert status_of(london) == "pending" and Subscription.objects.get(pk=london.pk).attempts == 0
        moved = Campaign.objects.select_related("release").get(pk=campaign.pk)
        assert analytics.firing_times(moved) == [("GB", dt.datetime(2026, 12, 11, tzinfo=dt.UTC), 1)]

    with time_machine.travel(dt.datetime(2026, 12, 11, 0, 0, 30, tzinfo=dt.UTC), tick=True):  # the new one
        engine.deliver_campaign(campaign.pk)
        assert status_of(london) == "delivered"
    assert len(sandbox.writes("bob")) == 1


def test_schedule_of_a_per_market_campaign_fires_with_the_first_market(sandbox, django_capture_on_commit_callbacks):
    from delivery.scheduling import scheduled_time

    with django_capture_on_commit_callbacks(execute=True):
        campaign = per_market_campaign()
    assert scheduled_time(campaign) == dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)  # UTC+14 midnight


def test_release_not_yet_out_in_a_market_waits_then_delivers(sandbox, settings):
    settings.DELIVERY_AVAILABILITY_RECHECK_SECONDS = 0
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    waits_in_jp_then_delivers(campaign, sandbox, saved=ALBUM_URI)


def waits_in_jp_then_delivers(campaign, sandbox, *, saved: str) -> None:
    """With the release's album out in GB only: a fan in GB is delivered, one in JP waits (no attempt spent,
    nothing written); once the sandbox's switch adds JP, the JP fan gets `saved`."""
    here = subscribe(campaign, sandbox, "alice", "GB")
    there = subscribe(campaign, sandbox, "bob", "JP")

    engine.deliver_campaign(campaign.pk)

    assert status_of(here) == "delivered"
    waiting = Subscription.objects.get(pk=there.pk)
    assert waiting.status == "pending" and waiting.attempts == 0
    assert waiting.last_error == "Waiting: the release is not available on Spotify in JP yet."
    assert sandbox.writes("bob") == []

    sandbox.control(
        "POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB", "JP"]}
    )
    Subscription.objects.filter(pk=there.pk).update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk)
    assert status_of(there) == "delivered"
    assert sandbox.library("bob")["saved"] == [saved]


def test_a_batch_s_markets_are_asked_about_all_at_once(sandbox, settings):
    """An instant campaign's first batch holds fans of many markets: asked one after another, the batch would
    wait a call's time per market before its first fan; the checks go out together."""
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    markets = ["JP", "US", "DE", "FR", "BR", "AU"]
    fans = []
    for market in markets:
        user = f"fan-{market.lower()}"
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": market})
        fans.append(subscribe(campaign, sandbox, user, market))
    sandbox.faults(latency_ms=300)  # each check takes this long: long enough for the checks in flight to meet

    engine.deliver_campaign(campaign.pk, fan_out=False)

    assert sandbox.control("GET", "counters")["most_in_flight"] == len(markets)
    for fan, market in zip(fans, markets, strict=True):
        waiting = Subscription.objects.get(pk=fan.pk)
        assert waiting.last_error == f"Waiting: the release is not available on Spotify in {market} yet."


def test_a_market_found_out_is_not_asked_about_again_in_the_run(sandbox, settings):
    """Each check is a call made on the run's thread while the batch in flight waits: a market where the
    release is out is not checked again, however often the recheck interval allows."""
    settings.DELIVERY_AVAILABILITY_RECHECK_SECONDS = 0
    settings.DELIVERY_BATCH_SIZE = 1  # three batches, three looks at the market
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    for user in ("alice", "bob", "chloe"):
        subscribe(campaign, sandbox, user, "GB")
    before = sandbox.control("GET", "counters")["api_requests"]

    engine.deliver_campaign(campaign.pk, fan_out=False)

    assert set(Subscription.objects.values_list("status", flat=True)) == {"delivered"}
    assert sandbox.control("GET", "counters")["api_requests"] - before == 1 + 3, "one check, three saves"


def test_release_that_never_comes_out_fails_after_the_wait(sandbox, settings):
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 1
    campaign = make_campaign(release_in=-dt.timedelta(hours=2))
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    subscription = subscribe(campaign, sandbox, "bob", "JP")

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == "failed"
    assert subscription.last_error == (
        "Gave up waiting: the release was still not available on Spotify in JP 1 hour after its release time."
    )


def test_a_fan_who_gave_up_waiting_keeps_their_token_and_retry_failed_delivers_them(sandbox, settings):
    """What the fan waited for may come later (the label's distributor adds Japan): their token is kept, and
    Retry failed re-queues them with the failures that ran out of attempts."""
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 1
    campaign = make_campaign(release_in=-dt.timedelta(hours=2))
    markets_url = f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets"
    sandbox.control("POST", markets_url, {"available_markets": ["GB"]})
    subscription = subscribe(campaign, sandbox, "bob", "JP")
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == "failed" and subscription.last_error.startswith("Gave up waiting: ")
    assert Credential.objects.filter(subscription=subscription).exists()

    sandbox.control("POST", markets_url, {"available_markets": ["GB", "JP"]})
    assert retry.retryable_count(campaign) == 1
    assert retry.retry_failed(campaign) == 1
    engine.deliver_campaign(campaign.pk, reopen=True)  # the run Retry failed queues

    assert status_of(subscription) == "delivered"
    assert sandbox.library("bob")["saved"] == [ALBUM_URI]


def test_release_without_uri_is_found_by_upc(sandbox):
    campaign = make_campaign()
    Release.objects.filter(pk=campaign.release_id).update(spotify_uri="")
    subscription = make_subscription(campaign, sandbox, "alice")

    engine.deliver_campaign(campaign.pk)

    assert status_of(subscription) == "delivered"
    release = Release.objects.get(pk=campaign.release_id)
    assert (release.spotify_uri, release.spotify_uri_found_by) == (ALBUM_URI, "upc")
    assert sandbox.library("alice")["saved"] == [ALBUM_URI]


def test_the_release_page_says_how_its_spotify_uri_was_found(sandbox, staff_client):
    campaign = make_campaign()
    Release.objects.filter(pk=campaign.release_id).update(spotify_uri="")
    make_subscription(campaign, sandbox, "alice")
    engine.deliver_campaign(campaign.pk)

    page = staff_client.get(reverse("admin:releases_release_change", args=[campaign.release_id])).content.decode()

    assert "Spotify URI found by" in page and "Found by UPC" in page


def test_release_the_service_does_not_know_waits(sandbox):
    campaign = make_campaign()
    Release.objects.filter(pk=campaign.release_id).update(spotify_uri="", upc="0000000000000")
    subscription = make_subscription(campaign, sandbox, "alice")

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == "pending"
    assert subscription.last_error == (
        "Waiting: Spotify has no release with this UPC (0000000000000) yet: check that it is the release's, or "
        "wait until Spotify lists the release."
    )


def test_a_fan_who_pre_saves_while_other_markets_are_delivered_waits_for_their_own(sandbox):
    """Friday 01:00 UTC: out in London, not yet in New York. A fan there pre-saves while the campaign delivers:
    the run plans them for New York's midnight instead of delivering at once."""
    campaign = per_market_campaign()
    london = subscribe(campaign, sandbox, "alice", "GB")
    with time_machine.travel(dt.datetime(2026, 12, 4, 1, 0, tzinfo=dt.UTC), tick=True):
        engine.deliver_campaign(campaign.pk)
        new_york = subscribe(campaign, sandbox, "bob", "US")  # the page still takes pre-saves from New York
        engine.deliver_campaign(campaign.pk)
        assert status_of(london) == "delivered" and status_of(new_york) == "pending"
        assert Subscription.objects.get(pk=new_york.pk).next_attempt_at == dt.datetime(2026, 12, 4, 5, tzinfo=dt.UTC)
    with time_machine.travel(dt.datetime(2026, 12, 4, 5, 0, 30, tzinfo=dt.UTC), tick=True):
        engine.deliver_campaign(campaign.pk)
        assert status_of(new_york) == "delivered"


def nothing_to_find_it_by(sandbox, *, release_in: dt.timedelta):
    """A campaign whose release has no Spotify URI, UPC or ISRC, and alice's pre-save of it."""
    campaign = make_campaign(release_in=release_in)
    release = campaign.release
    release.spotify_uri, release.upc = "", ""
    release.save()
    return campaign, make_subscription(campaign, sandbox, "alice")


def test_a_release_with_nothing_to_find_it_by_waits_for_staff_to_add_it(sandbox, db, settings):
    """No Spotify URI, UPC or ISRC: the campaign's setting to put right, not the fans' failure. The fan waits;
    once staff add the UPC, the next run delivers."""
    campaign, subscription = nothing_to_find_it_by(sandbox, release_in=dt.timedelta(days=14))

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert (subscription.status, subscription.attempts) == ("pending", 0)
    assert subscription.last_error == ("Waiting: the release has no Spotify identifier, UPC or ISRC to find it by.")

    release = campaign.release
    release.upc = demo_catalog.NOVA_LARK_ALBUM_UPC
    release.save()
    Subscription.objects.filter(pk=subscription.pk).update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED
    assert sandbox.library("alice")["saved"] == [f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"]


def test_a_release_still_with_nothing_to_find_it_by_after_the_wait_fails_with_the_reason(sandbox, db, settings):
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 1
    campaign, subscription = nothing_to_find_it_by(sandbox, release_in=-dt.timedelta(hours=2))

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED
    assert subscription.last_error == (
        "Gave up waiting: the release still had no Spotify identifier, UPC or ISRC to find it by 1 hour after its "
        "release time."
    )


def deezer_subscription(campaign, sandbox, user: str) -> Subscription:
    from fans.models import Credential, Fan

    fan = Fan.objects.create(service="deezer", service_user_id=user, display_name=user)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, market="GB")
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(sandbox.authorize_deezer(user))
    credential.save()
    return subscription


def test_a_passing_error_finding_the_release_is_retried_not_taken_for_a_release_not_out(sandbox, settings):
    """Deezer finds the release by its UPC: a 503 there says nothing about the release. Its fans are tried again
    with backoff (an attempt each, naming the error), the batch asking once, not told "not available yet"."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 60  # their retry is the next run's, not this one's
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1), services=["deezer"])
    fans = [deezer_subscription(campaign, sandbox, user) for user in ("alice", "bob", "chloe")]
    sandbox.faults(errors_matching="upc:")

    engine.deliver_campaign(campaign.pk, fan_out=False)

    assert sandbox.control("GET", "counters")["server_errors"] == 1, "one lookup for the batch"
    for fan in fans:
        waiting = Subscription.objects.get(pk=fan.pk)
        assert (waiting.status, waiting.attempts) == ("pending", 1)
        assert "Deezer" in waiting.last_error and not waiting.last_error.startswith("Waiting")
        assert waiting.attempts_log.get().http_status == 503, "the attempt says what the service answered"

    sandbox.faults(errors_matching="")
    Subscription.objects.update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk, fan_out=False)
    assert {status_of(fan) for fan in fans} == {"delivered"}


@pytest.mark.parametrize("code", ["XX", "EU", "T1"])
def test_a_market_code_that_is_no_country_fires_with_the_default_market(sandbox, code):
    """ "XX" (a proxy's unknown), "EU" (a region) name no clock: the fan is the campaign's default market's (Tokyo
    here), at its midnight and asked about there; not UTC's midnight nine hours later."""
    campaign = per_market_campaign()
    Campaign.objects.filter(pk=campaign.pk).update(default_market="JP")
    fan = subscribe(campaign, sandbox, "alice", code)

    with time_machine.travel(dt.datetime(2026, 12, 3, 15, 0, 30, tzinfo=dt.UTC), tick=True):  # midnight in Tokyo
        engine.deliver_campaign(campaign.pk)

    assert status_of(fan) == "delivered"
    assert sandbox.library("alice")["saved"] == [ALBUM_URI]


def test_a_pre_save_without_a_market_fires_with_the_fans_country(sandbox):
    """A pre-save whose market is blank (an older row, an admin's edit, an import) is the fan's country's when that
    names one: Tokyo's here, at its midnight and asked about there, not the campaign's default (London). The
    console's per-market schedule and Deliver now's counts read it the same way."""
    campaign = per_market_campaign()
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["JP"]})
    tokyo = subscribe(campaign, sandbox, "alice", "")
    Fan.objects.filter(pk=tokyo.fan_id).update(country="JP")
    london = subscribe(campaign, sandbox, "bob", "")  # no country either: the campaign's default market, GB
    Fan.objects.filter(pk=london.fan_id).update(country="XX")
    tokyo_midnight = dt.datetime(2026, 12, 3, 15, tzinfo=dt.UTC)
    london_midnight = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    assert analytics.firing_times(campaign) == [("JP", tokyo_midnight, 1), ("GB", london_midnight, 1)]

    with time_machine.travel(tokyo_midnight + dt.timedelta(seconds=30), tick=True):
        assert scheduling.due_counts(campaign) == (1, 1)
        engine.deliver_campaign(campaign.pk)
        assert status_of(tokyo) == "delivered"
        assert status_of(london) == "pending"
    assert sandbox.library("alice")["saved"] == [ALBUM_URI]
    assert Subscription.objects.get(pk=london.pk).next_attempt_at == london_midnight


def test_a_fan_without_a_market_due_early_waits_for_their_countrys_time(sandbox):
    """The engine's "waiting" words name the market it read: the fan's country, for a pre-save without a market."""
    campaign = per_market_campaign()
    new_york = subscribe(campaign, sandbox, "bob", "")
    Fan.objects.filter(pk=new_york.fan_id).update(country="US")
    london_midnight = dt.datetime(2026, 12, 4, 0, 0, 30, tzinfo=dt.UTC)
    Subscription.objects.filter(pk=new_york.pk).update(next_attempt_at=london_midnight - dt.timedelta(minutes=1))

    with time_machine.travel(london_midnight, tick=True):
        engine.deliver_campaign(campaign.pk)

    new_york.refresh_from_db()
    assert (new_york.status, new_york.attempts) == ("pending", 0)
    assert new_york.last_error == "Waiting for the release time in US (2026-12-04 05:00 UTC)."
    assert sandbox.writes("bob") == []


def test_a_fan_due_before_their_markets_time_gets_no_call_until_then(sandbox):
    """A New York fan made due at London's midnight (re-queued by hand, say): the run calls nothing for them, not
    even the availability check, and plans them for New York's midnight."""
    campaign = per_market_campaign()
    london = subscribe(campaign, sandbox, "alice", "GB")
    new_york = subscribe(campaign, sandbox, "bob", "US")
    london_midnight = dt.datetime(2026, 12, 4, 0, 0, 30, tzinfo=dt.UTC)
    Subscription.objects.filter(pk=new_york.pk).update(next_attempt_at=london_midnight - dt.timedelta(minutes=1))

    with time_machine.travel(london_midnight, tick=True):
        sandbox.faults(errors_matching="market=US")  # a check for New York would fail the fan
        engine.deliver_campaign(campaign.pk)

    new_york.refresh_from_db()
    assert status_of(london) == "delivered"
    assert (new_york.status, new_york.attempts) == ("pending", 0)
    assert new_york.last_error == "Waiting for the release time in US (2026-12-04 05:00 UTC)."
    new_york_midnight = dt.datetime(2026, 12, 4, 5, tzinfo=dt.UTC)
    assert new_york_midnight <= new_york.next_attempt_at < new_york_midnight + dt.timedelta(seconds=5)
    assert sandbox.writes("bob") == []


def test_a_track_whose_album_is_not_out_in_the_fans_market_waits_then_delivers(sandbox, settings):
    """A track campaign is found by ISRC (search type=track) and checked with GET /v1/tracks/{id}?market=: the
    track object follows its album's market switch, as Spotify's track follows its album's availability, so a
    fan where the album is not out yet waits."""
    settings.DELIVERY_AVAILABILITY_RECHECK_SECONDS = 0
    markets = f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets"
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    release = campaign.release
    release.kind, release.isrc, release.upc, release.spotify_uri = "track", demo_catalog.NOVA_LARK_TRACK_1_ISRC, "", ""
    release.save()
    sandbox.control("POST", markets, {"available_markets": ["GB"]})
    app_token = requests.post(
        f"{sandbox.accounts_url}/api/token",
        data={"grant_type": "client_credentials"},
        auth=sandbox.spotify_client,
        timeout=5,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {app_token}"}
    track_url = f"{sandbox.api_url}/v1/tracks/{demo_catalog.NOVA_LARK_TRACK_1_ID}"
    track = requests.get(track_url, params={"market": "GB"}, headers=headers, timeout=5).json()
    assert track["is_playable"] is track["album"]["is_playable"] is True
    assert requests.get(track_url, params={"market": "JP"}, headers=headers, timeout=5).status_code == 404
    search = {"q": f"isrc:{demo_catalog.NOVA_LARK_TRACK_1_ISRC}", "type": "track", "market": "JP"}
    found = requests.get(f"{sandbox.api_url}/v1/search", params=search, headers=headers, timeout=5).json()
    assert found["tracks"]["total"] == 0
    waits_in_jp_then_delivers(campaign, sandbox, saved=f"spotify:track:{demo_catalog.NOVA_LARK_TRACK_1_ID}")
