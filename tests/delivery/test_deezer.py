"""Deezer end to end through the sandbox: a fan pre-saves over OAuth, a real django-q2 worker adds the album
to their favourites and follows the artist on release day; Deezer's errors-in-a-200 are sorted by meaning."""

import datetime as dt
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from delivery import engine, scheduling
from delivery.models import DeliveryAttempt
from delivery.sandbox import demo_catalog
from delivery.sandbox.deezer import numeric_id
from delivery.services import RateLimited, ServiceError, TokenRevoked, get_service
from delivery.services.base import Call, ServicePaused
from fans.models import ConsentRecord, Credential, Fan, Subscription
from fans.pages import undo_words
from tests.conftest import make_campaign, wait_for
from tests.fans.test_oauth_callback import LoginForm

ALBUM = f"deezer:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"
ARTIST = f"deezer:artist:{demo_catalog.NOVA_LARK_ARTIST_ID}"
CALLBACK = reverse("fans:oauth_callback", args=["deezer"])


def presave_with_deezer(client, campaign, user: str, decision: str = "agree", **headers):
    """Press "Pre-save on Deezer" (with the request's `headers`), log in on the sandbox's page, come back to our
    callback."""
    response = client.post(reverse("fans:presave", args=[campaign.slug, "deezer"]), {"email_opt_in": "1"}, **headers)
    assert response.status_code == 302
    authorize_url = response["Location"]
    assert "perms=basic_access%2Coffline_access%2Cmanage_library%2Cemail" in authorize_url
    form = LoginForm()
    form.feed(requests.get(authorize_url, timeout=10).text)
    answer = requests.post(
        urljoin(authorize_url, form.action),
        data={**form.hidden, "user": user, "decision": decision},
        allow_redirects=False,
        timeout=10,
    )
    location = urlsplit(answer.headers["Location"])
    assert location.path == CALLBACK
    return client.get(CALLBACK, dict(parse_qsl(location.query)))


@pytest.mark.django_db
def test_a_profile_country_that_names_no_country_is_not_stored_as_the_pre_saves_market(client, sandbox):
    """Deezer's profile says "XX" (a proxy's unknown) or "EU" (a region), no country: the country seen at sign-up
    comes next, and with none the pre-save keeps no market, which `Campaign.market_for` reads as the default."""
    campaign = make_campaign(default_market="GB")
    sandbox.control("POST", "users", {"id": "hidden", "country": "XX"})
    sandbox.control("POST", "users", {"id": "europe", "country": "EU"})

    presave_with_deezer(client, campaign, "hidden", HTTP_CF_IPCOUNTRY="NZ")
    presave_with_deezer(client, campaign, "europe")

    seen, unknown = (Subscription.objects.get(fan__display_name=name) for name in ("hidden", "europe"))
    assert (seen.market, seen.delivery_market()) == ("NZ", "NZ")
    assert (unknown.market, unknown.delivery_market()) == ("", "GB")


@pytest.mark.django_db
def test_a_profile_country_that_names_no_country_is_not_stored_as_the_fans_country(client, sandbox):
    """The fan's country is a real country or none: Deezer's "XX" or "EU" is none. A fan whose profile named a
    country before keeps it when a later sign-in names none, as when the profile has no country at all."""
    campaign = make_campaign()
    sandbox.control("POST", "users", {"id": "europe", "country": "EU"})
    sandbox.control("POST", "users", {"id": "kiwi", "country": "NZ"})
    presave_with_deezer(client, campaign, "europe")
    presave_with_deezer(client, campaign, "kiwi")
    sandbox.control("POST", "users", {"id": "kiwi", "country": "XX"})

    presave_with_deezer(client, campaign, "kiwi")

    assert dict(Fan.objects.values_list("display_name", "country")) == {"europe": "", "kiwi": "NZ"}


@pytest.mark.django_db(transaction=True)
def test_presave_with_deezer_then_a_worker_delivers_on_release_day(client, sandbox, start_worker):
    campaign = make_campaign(release_in=dt.timedelta(days=3), follow_artist=True)

    response = presave_with_deezer(client, campaign, "alice")
    assert response.status_code == 302 and response["Location"] == reverse("fans:thanks", args=[campaign.slug])
    fan = Fan.objects.get(service="deezer")
    assert fan.service_user_id == str(numeric_id("user", "alice")) and fan.email == "alice@sandbox.test"
    consent = ConsentRecord.objects.get()
    assert consent.service == "deezer" and "manage_library" in consent.scopes
    token = Credential.objects.get().reveal()
    assert token.startswith("frDZ"), "the lasting access token is what the vault keeps"

    release = campaign.release
    release.release_date, release.release_time = dt.date.today() - dt.timedelta(days=1), dt.time(0, 0)
    release.save()
    start_worker()
    scheduling.deliver_now(campaign)
    wait_for(lambda: Subscription.objects.get().status != "pending", timeout=60, message="the delivery")

    assert Subscription.objects.get().status == "delivered"
    assert sandbox.library("alice") == {"saved": [ALBUM], "following": [ARTIST]}
    assert [w["endpoint"] for w in sandbox.writes("alice")] == ["POST /user/me/albums", "POST /user/me/artists"]


@pytest.mark.django_db(transaction=True)
def test_revoked_deezer_fan_is_revoked_and_never_retried(client, sandbox, start_worker):
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    presave_with_deezer(client, campaign, "bob")
    sandbox.control("POST", "users/bob/revoke")
    release = campaign.release
    release.release_date = dt.date.today() - dt.timedelta(days=1)
    release.save()
    start_worker()
    scheduling.deliver_now(campaign)
    wait_for(lambda: Subscription.objects.get().status != "pending", timeout=60, message="the delivery")

    subscription = Subscription.objects.get()
    assert subscription.status == "revoked" and subscription.attempts == 1
    assert "no longer valid" in subscription.last_error
    assert not Credential.objects.exists(), "a revoked token is destroyed"
    assert sandbox.writes("bob") == []


@pytest.mark.django_db
def test_cancel_on_deezer_saves_nothing(client, sandbox):
    campaign = make_campaign()
    response = presave_with_deezer(client, campaign, "alice", decision="cancel")
    assert response.status_code == 403 and "You chose Cancel on Deezer" in response.content.decode()
    assert not Subscription.objects.exists()


def test_errors_inside_a_200_are_sorted_by_meaning(sandbox):
    deezer = get_service("deezer")
    save = Call("save", "POST", f"{sandbox.deezer_api_url}/user/me/albums", params={"album_id": "1"})

    with pytest.raises(TokenRevoked):
        deezer.run(Call(save.name, save.method, save.url, params={**save.params, "access_token": "gone"}))

    token = sandbox.authorize_deezer("alice")
    with pytest.raises(ServiceError) as unknown:
        deezer.run(Call(save.name, save.method, save.url, params={"album_id": "1", "access_token": token}))
    assert unknown.value.permanent and not unknown.value.revoked and "no data" in unknown.value.message

    sandbox.faults(rate_limit=0)
    with pytest.raises(RateLimited) as quota:
        deezer.profile(token)
    assert not quota.value.permanent and quota.value.retry_after == 5.0

    sandbox.faults(rate_limit=None, error_rate=1.0)
    with pytest.raises(ServiceError) as busy:
        deezer.profile(token)
    assert not busy.value.permanent and not busy.value.revoked


def test_a_403_from_deezers_edge_pauses_delivery_and_revokes_nobody(sandbox):
    deezer = get_service("deezer")
    token = sandbox.authorize_deezer("alice")
    sandbox.faults(deezer_edge_denies=True)
    with pytest.raises(ServicePaused) as edge:
        deezer.profile(token)
    assert edge.value.status == 403 and not edge.value.revoked and not edge.value.permanent
    assert edge.value.retry_after > 0 and "edge" in edge.value.message

    sandbox.faults(deezer_edge_denies=False)
    assert deezer.profile(token)


@pytest.mark.django_db
def test_release_is_found_by_upc_and_by_isrc(sandbox):
    campaign = make_campaign()
    deezer = get_service("deezer")
    assert deezer.resolve_release(campaign.release) == str(numeric_id("album", demo_catalog.NOVA_LARK_ALBUM_ID))
    assert deezer.is_available(campaign.release, "GB")

    release = campaign.release
    release.pk, release.kind, release.isrc = None, "track", demo_catalog.NOVA_LARK_TRACK_1_ISRC
    release.save()
    assert deezer.resolve_release(release) == str(numeric_id("track", demo_catalog.NOVA_LARK_TRACK_1_ID))
    assert deezer.is_available(release, "GB") and not deezer.is_available(release, "ZZ")

    release.pk, release.kind, release.upc = None, "album", "000000000000"
    release.save()
    with pytest.raises(ServiceError, match=r"Deezer has no release with this UPC \(000000000000\) yet"):
        deezer.resolve_release(release)


@pytest.mark.django_db
def test_quota_on_a_catalog_lookup_is_waited_out_not_called_unknown(sandbox):
    deezer = get_service("deezer")
    sandbox.faults(rate_limit=0)
    with pytest.raises(RateLimited):
        deezer.resolve_release(make_campaign().release)


@pytest.mark.django_db
def test_follow_uses_the_deezer_artist_named_by_the_track_lookup(sandbox):
    """Our artist has no Deezer id: the artist to follow is the one Deezer names for the release (here a
    one-track release by The Paper Tides, found by its ISRC), with no Spotify URI needed."""
    campaign = make_campaign(follow_artist=True, services=["deezer"])
    release = campaign.release
    release.kind, release.isrc, release.upc, release.spotify_uri = "track", demo_catalog.PAPER_TIDES_TRACK_ISRC, "", ""
    release.save()
    release.artist.spotify_uri = ""
    release.artist.save()
    campaign.full_clean()  # Deezer needs nothing more to follow
    token = sandbox.authorize_deezer("alice")
    deezer = get_service("deezer")

    calls = list(deezer.delivery_calls(token, campaign, "GB"))

    assert [(call.name, call.url.rsplit("/", 1)[1]) for call in calls] == [("save", "tracks"), ("follow", "artists")]
    assert calls[0].params["track_id"] == str(numeric_id("track", demo_catalog.PAPER_TIDES_TRACK_ID))
    assert calls[1].params["artist_id"] == str(numeric_id("artist", demo_catalog.PAPER_TIDES_ARTIST_ID))
    for call in calls:
        deezer.run(call)
    assert sandbox.library("alice") == {
        "saved": [f"deezer:track:{demo_catalog.PAPER_TIDES_TRACK_ID}"],
        "following": [f"deezer:artist:{demo_catalog.PAPER_TIDES_ARTIST_ID}"],
    }


@pytest.mark.django_db
def test_each_service_has_its_own_rate_limit_from_its_settings(settings):
    from delivery.ratelimit import limiter_for

    settings.DEEZER_RATE_LIMIT, settings.DEEZER_RATE_WINDOW_SECONDS = 50, 5.0
    settings.APPLE_MUSIC_RATE_LIMIT, settings.APPLE_MUSIC_RATE_WINDOW_SECONDS = 300, 30.0
    limits = {key: limiter_for(key) for key in ("spotify", "apple_music", "deezer")}
    assert [(limiter.key, limiter.limit, limiter.window_seconds) for limiter in limits.values()] == [
        ("spotify", settings.SPOTIFY_RATE_LIMIT, settings.SPOTIFY_RATE_WINDOW_SECONDS),
        ("apple_music", 300, 30.0),
        ("deezer", 50, 5.0),
    ]


@pytest.mark.django_db
def test_a_compilation_is_saved_but_various_artists_is_never_followed(sandbox):
    """Deezer files a compilation under its artist "Various Artists": the campaign's follow would follow that."""
    various = sandbox.control("POST", "catalog/artists", {"name": "Various Artists"})["id"]
    upc = "5012345678917"
    compilation = {"name": "Harbour Sessions", "upc": upc, "artist_id": various, "release_date": "2026-12-04"}
    sandbox.control("POST", "catalog/albums", {**compilation, "album_type": "compilation"})
    campaign = make_campaign(follow_artist=True)
    release = campaign.release
    release.upc, release.title = upc, "Harbour Sessions"
    release.save()

    calls = list(get_service("deezer").delivery_calls(sandbox.authorize_deezer("alice"), campaign))

    assert [call.name for call in calls] == ["save"]

    # On release day the fan gets the save, and their delivery log says why there was no follow.
    fan = Fan.objects.create(service="deezer", service_user_id=str(numeric_id("user", "bob")), display_name="Bob")
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, market="GB")
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(sandbox.authorize_deezer("bob"))
    credential.save()
    engine.deliver_campaign(campaign.pk)
    attempt = DeliveryAttempt.objects.get(subscription=subscription)
    assert attempt.outcome == "delivered"
    assert attempt.message.startswith("Not followed: Deezer names no artist for this release")
    assert sandbox.library("bob")["following"] == []


def deezer_subscription(campaign, sandbox, user: str, market: str) -> Subscription:
    fan = Fan.objects.create(service="deezer", service_user_id=str(numeric_id("user", user)), display_name=user)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, market=market)
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(sandbox.authorize_deezer(user))
    credential.save()
    return subscription


def waits_in_jp_then_delivers(campaign, sandbox, markets: str, *, saved: str) -> None:
    """With the release out in GB only: a fan in GB is delivered, one in JP waits (no attempt spent, nothing
    saved); once the sandbox's `markets` switch adds JP, the JP fan gets `saved`."""
    here = deezer_subscription(campaign, sandbox, "alice", "GB")
    there = deezer_subscription(campaign, sandbox, "bob", "JP")

    engine.deliver_campaign(campaign.pk)

    assert Subscription.objects.get(pk=here.pk).status == "delivered"
    waiting = Subscription.objects.get(pk=there.pk)
    assert waiting.status == "pending" and waiting.attempts == 0
    assert waiting.last_error == "Waiting: the release is not available on Deezer in JP yet."
    assert sandbox.library("bob")["saved"] == []

    sandbox.control("POST", markets, {"available_markets": ["GB", "JP"]})
    Subscription.objects.filter(pk=there.pk).update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk)
    assert Subscription.objects.get(pk=there.pk).status == "delivered"
    assert sandbox.library("bob")["saved"] == [saved]


@pytest.mark.django_db
def test_an_album_not_out_in_the_fans_market_waits_then_delivers(sandbox, settings):
    """Deezer's album says `available` as soon as it is out anywhere; its tracks' `available_countries` say where.
    A fan in a market where the album is not out yet waits, and is delivered once it is."""
    settings.DELIVERY_AVAILABILITY_RECHECK_SECONDS = 0
    markets = f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets"
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    sandbox.control("POST", markets, {"available_markets": ["GB"]})
    album = requests.get(
        f"{settings.DEEZER_API_URL}/album/{numeric_id('album', demo_catalog.NOVA_LARK_ALBUM_ID)}", timeout=5
    )
    assert album.json()["available"] is True
    assert album.json()["tracks"]["data"][0]["available_countries"] == ["GB"]
    waits_in_jp_then_delivers(campaign, sandbox, markets, saved=ALBUM)


@pytest.mark.django_db
def test_a_track_whose_album_is_not_out_in_the_fans_market_waits_then_delivers(sandbox, settings):
    """A track campaign is looked up by ISRC (/track/isrc:…): the track's `available_countries` follow its
    album's market switch as the album's own tracks do, so a fan where the album is not out yet waits."""
    settings.DELIVERY_AVAILABILITY_RECHECK_SECONDS = 0
    markets = f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets"
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1), services=["deezer"])
    release = campaign.release
    release.kind, release.isrc, release.upc, release.spotify_uri = "track", demo_catalog.NOVA_LARK_TRACK_1_ISRC, "", ""
    release.save()
    sandbox.control("POST", markets, {"available_markets": ["GB"]})
    track = requests.get(f"{settings.DEEZER_API_URL}/track/isrc:{demo_catalog.NOVA_LARK_TRACK_1_ISRC}", timeout=5)
    assert track.json()["available_countries"] == ["GB"]
    waits_in_jp_then_delivers(campaign, sandbox, markets, saved=f"deezer:track:{demo_catalog.NOVA_LARK_TRACK_1_ID}")


@pytest.mark.django_db
def test_the_save_and_the_follow_are_both_recorded_and_named_in_the_fans_undo_words(sandbox):
    """A fan's last library action is recorded with their outcome: the follow, after the save, was not, so the
    privacy page never told the fan how to unfollow. Deezer calls the library "favourites", as the consent does."""
    campaign = make_campaign(follow_artist=True, release_in=-dt.timedelta(minutes=1))
    subscription = deezer_subscription(campaign, sandbox, "alice", "GB")

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert (subscription.status, subscription.done_calls) == ("delivered", "save follow")
    assert sandbox.library("alice") == {"saved": [ALBUM], "following": [ARTIST]}
    assert undo_words(subscription, get_service("deezer")) == [
        "remove First Light from your Deezer favourites",
        "unfollow Nova Lark on Deezer",
    ]
