"""Release day's playlist (Spotify only): a private playlist, named by the campaign, made in each fan's account and
holding the release's tracks once, whatever fails on the way."""

import datetime as dt

import pytest
from django.utils import timezone

from delivery import engine
from delivery.models import DeliveryAttempt
from delivery.sandbox import demo_catalog
from delivery.sandbox.deezer import numeric_id
from delivery.transport import AsyncTransport
from fans.models import Credential, Fan, Subscription
from releases.models import Release
from releases.retry import retry_failed
from tests.conftest import make_campaign, make_subscription
from tests.delivery.test_apple_music import apple_subscription

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"
ALBUM_TRACKS = [
    f"spotify:track:{demo_catalog.NOVA_LARK_TRACK_1_ID}",
    f"spotify:track:{demo_catalog.NOVA_LARK_TRACK_2_ID}",
]
NAME = "Glass Harbour — Pre-saves"
SCOPES = "user-library-modify playlist-modify-private"

pytestmark = pytest.mark.django_db


OUT = -dt.timedelta(minutes=5)  # released: Retry failed delivers at once (before the release time it waits)


def playlist_campaign(**fields):
    return make_campaign(playlist_name=NAME, services=["spotify", "apple_music", "deezer"], **fields)


def deezer_subscription(campaign, sandbox, user_id: str) -> Subscription:
    fan = Fan.objects.create(service="deezer", service_user_id=str(numeric_id("user", user_id)), display_name=user_id)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, market="GB")
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(sandbox.authorize_deezer(user_id))
    credential.save()
    return subscription


def only_playlist(sandbox, user_id: str) -> dict:
    playlists = sandbox.playlists(user_id)
    assert len(playlists) == 1, playlists
    return playlists[0]


def test_each_fan_gets_one_private_playlist_with_the_albums_tracks(sandbox):
    campaign = playlist_campaign()
    subscriptions = [make_subscription(campaign, sandbox, user, scope=SCOPES) for user in ("alice", "bob")]

    report = engine.deliver_campaign(campaign.pk)

    assert report.counts == {"delivered": 2}
    for user in ("alice", "bob"):
        playlist = only_playlist(sandbox, user)
        assert (playlist["name"], playlist["public"], playlist["collaborative"]) == (NAME, False, False)
        assert playlist["items"] == ALBUM_TRACKS
        assert "First Light by Nova Lark" in playlist["description"]
        assert sandbox.library(user)["saved"] == [ALBUM_URI], "saved too"
    for subscription in subscriptions:
        subscription.refresh_from_db()
        assert subscription.status == Subscription.Status.DELIVERED
    calls = DeliveryAttempt.objects.values_list("call", flat=True)
    assert set(calls) == {"playlist"}, "the last call of each fan's delivery"


def test_the_albums_tracks_are_looked_up_once_per_run_with_the_apps_token(sandbox):
    campaign = playlist_campaign()
    for user in ("alice", "bob", "chloe"):
        make_subscription(campaign, sandbox, user, scope=SCOPES)
    before = sandbox.control("GET", "counters")["api_requests"]

    engine.deliver_campaign(campaign.pk)

    # Per fan: save, create, add (3 × 3); once: the availability check and the album's tracks.
    assert sandbox.control("GET", "counters")["api_requests"] - before == 9 + 2


def test_a_track_release_adds_the_track(sandbox):
    campaign = playlist_campaign()
    release = campaign.release
    release.kind, release.isrc, release.upc = "track", demo_catalog.PAPER_TIDES_TRACK_ISRC, ""
    release.spotify_uri = f"spotify:track:{demo_catalog.PAPER_TIDES_TRACK_ID}"
    release.save()
    make_subscription(campaign, sandbox, "alice", scope=SCOPES)

    engine.deliver_campaign(campaign.pk)

    assert only_playlist(sandbox, "alice")["items"] == [release.spotify_uri]


def long_player(sandbox, campaign, tracks: int) -> list[str]:
    """A sandbox album of `tracks` tracks, made the campaign's release; its tracks' URIs in order."""
    artist = demo_catalog.NOVA_LARK_ARTIST_ID
    album = sandbox.control(
        "POST",
        "catalog/albums",
        {"name": "Long Player", "upc": "5012345678917", "artist_id": artist, "release_date": "2026-12-04"},
    )
    uris = [
        sandbox.control(
            "POST",
            "catalog/tracks",
            {"name": f"Part {n}", "album_id": album["id"], "isrc": f"GBSBX26{n:05d}", "track_number": n},
        )["uri"]
        for n in range(1, tracks + 1)
    ]
    Release.objects.filter(pk=campaign.release_id).update(spotify_uri=album["uri"], upc="5012345678917")
    return uris


def test_an_album_of_more_than_a_hundred_tracks_is_added_in_full_a_hundred_at_a_time(sandbox):
    campaign = playlist_campaign()
    tracks = long_player(sandbox, campaign, 120)
    subscription = make_subscription(campaign, sandbox, "alice", scope=SCOPES)

    engine.deliver_campaign(campaign.pk)

    # Three pages of the album's tracks, and two adds (the sandbox, as Spotify, refuses more than 100 at once).
    assert only_playlist(sandbox, "alice")["items"] == tracks
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED


def test_an_album_of_hundreds_of_tracks_whose_adds_failed_partway_is_recorded_then_filled_from_there(sandbox, settings):
    """Each add of a hundred tracks that went through is recorded (Subscription.done_calls), beside the save, the
    follow and the playlist's id: for an album of more than 500 tracks that is more than 100 characters, which
    the record of a failed try must hold (a write refused there would stop the run, its batch delivered again)."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = playlist_campaign(follow_artist=True, release_in=OUT)
    tracks = long_player(sandbox, campaign, 650)
    subscription = make_subscription(campaign, sandbox, "alice", scope=f"{SCOPES} user-follow-modify")
    sandbox.faults(errors_matching="/items", errors_matching_after=6)  # six adds go through, the seventh fails

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    playlist = only_playlist(sandbox, "alice")
    assert subscription.status == Subscription.Status.FAILED and subscription.last_error.startswith(engine.GAVE_UP)
    adds = " ".join(f"playlist:{n}" for n in range(1, 7))
    assert subscription.done_calls == f"save follow playlist-made:{playlist['id']} {adds}"
    assert len(subscription.done_calls) > 100
    assert playlist["items"] == tracks[:600]

    sandbox.faults(errors_matching="")
    assert retry_failed(campaign) == 1
    engine.deliver_campaign(campaign.pk, reopen=True)  # the run Retry failed queues

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED
    assert only_playlist(sandbox, "alice")["items"] == tracks, "each track once, in order"
    endpoints = [w["endpoint"] for w in sandbox.writes("alice")]
    assert endpoints.count("PUT /v1/me/library") == 2, "saved once, followed once"
    assert endpoints.count("POST /v1/me/playlists") == 1, "made once"
    assert endpoints.count("POST /v1/playlists/{id}/items") == len(tracks), "a write per track: none added twice"


def test_an_add_that_failed_after_the_playlist_was_made_is_retried_into_that_playlist(sandbox, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    campaign = playlist_campaign(release_in=OUT)
    subscription = make_subscription(campaign, sandbox, "alice", scope=SCOPES)
    sandbox.faults(errors_matching="/items")  # the add is down: 503, the create and the save are up

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED
    playlist = only_playlist(sandbox, "alice")  # three tries, one playlist
    assert playlist["items"] == []
    assert subscription.done_calls == f"save playlist-made:{playlist['id']}"
    attempts = DeliveryAttempt.objects.filter(subscription=subscription).order_by("at", "pk")
    assert [(a.call, a.outcome, a.http_status) for a in attempts] == [
        ("playlist", "retry", 503),
        ("playlist", "retry", 503),
        ("playlist", "failed", 503),
    ]

    sandbox.faults(errors_matching="")
    assert retry_failed(campaign) == 1
    engine.deliver_campaign(campaign.pk, reopen=True)  # the run Retry failed queues

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED
    assert only_playlist(sandbox, "alice") == {**playlist, "items": ALBUM_TRACKS}, "the same playlist, filled once"
    assert [w["endpoint"] for w in sandbox.writes("alice")] == [
        "PUT /v1/me/library",
        "POST /v1/me/playlists",
        "POST /v1/playlists/{id}/items",
        "POST /v1/playlists/{id}/items",
    ], "saved once, made once, each track added once"


def test_a_fan_who_agreed_before_the_playlist_was_offered_is_saved_and_told_why_there_is_no_playlist(sandbox):
    campaign = make_campaign(follow_artist=True, services=["spotify"])
    subscription = make_subscription(campaign, sandbox, "alice")  # save and follow only
    campaign.playlist_name = NAME
    campaign.save()

    engine.deliver_campaign(campaign.pk)

    library = sandbox.library("alice")
    assert library["saved"] == [ALBUM_URI] and library["following"] == [
        f"spotify:artist:{demo_catalog.NOVA_LARK_ARTIST_ID}"
    ]
    assert sandbox.playlists("alice") == []
    subscription.refresh_from_db()
    assert (subscription.status, subscription.done_calls) == (Subscription.Status.FAILED, "save follow")
    assert subscription.last_error == (
        "Spotify refused the playlist: the fan's permission doesn't cover it (they pre-saved before the campaign "
        "offered it; Insufficient client scope, 403)."
    )
    assert DeliveryAttempt.objects.get().call == "playlist-create"


def test_apple_music_and_deezer_fans_of_a_playlist_campaign_are_saved_as_ever(sandbox):
    campaign = playlist_campaign()
    spotify = make_subscription(campaign, sandbox, "alice", scope=SCOPES)
    apple = apple_subscription(campaign, sandbox, "bob")
    deezer = deezer_subscription(campaign, sandbox, "chloe")

    report = engine.deliver_campaign(campaign.pk)

    assert report.counts == {"delivered": 3}
    assert only_playlist(sandbox, "alice")["items"] == ALBUM_TRACKS
    assert sandbox.playlists("bob") == sandbox.playlists("chloe") == []
    assert [w["endpoint"] for w in sandbox.writes("bob")] == ["POST /v1/me/library"]
    assert [w["endpoint"] for w in sandbox.writes("chloe")] == ["POST /user/me/albums"]
    calls = dict(DeliveryAttempt.objects.values_list("subscription", "call"))
    assert calls == {spotify.pk: "playlist", apple.pk: "verify", deezer.pk: "save"}


def test_under_a_rate_limit_the_playlists_calls_are_counted_in_a_batch(settings):
    settings.SPOTIFY_RATE_LIMIT, settings.SPOTIFY_RATE_WINDOW_SECONDS = 300, 30  # 10 calls a second
    settings.DELIVERY_BATCH_SIZE = 1000
    campaign = make_campaign(services=["spotify"], playlist_name=NAME)
    with AsyncTransport(concurrency=4, timeout=5) as transport:
        assert engine.Run(campaign, transport).batch_size == 37  # refresh, save, create, add: 2.5 fans a second, 15 s
