"""The demo's seed command, and the engine on the demo's SQLite database."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
import requests
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from delivery import engine
from delivery.sandbox import demo_catalog
from delivery.scheduling import schedule_name
from delivery.services import get_service
from releases.models import Artist, Campaign, Release
from tests.conftest import make_subscription, manage


def seed(**options) -> None:
    call_command("seed_demo", force=True, stdout=io.StringIO(), **options)


def counts() -> dict[str, int]:
    return {
        "users": get_user_model().objects.count(),
        "artists": Artist.objects.count(),
        "releases": Release.objects.count(),
        "campaigns": Campaign.objects.count(),
        "schedules": Schedule.objects.count(),
    }


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_seed_demo_is_idempotent_and_schedules_the_live_campaign(db, media_root):
    seed()
    first = counts()
    assert first["artists"] == 2 and first["releases"] == 3 and first["campaigns"] == 3

    later = timezone.now() + dt.timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        seed(release_in_minutes=10)
    assert counts() == first

    campaign = Campaign.objects.select_related("release__artist").get(slug="glass-harbour")
    assert campaign.status == Campaign.Status.LIVE
    assert campaign.follow_artist
    assert campaign.playlist_name == "Glass Harbour — Pre-saves"
    assert campaign.release.artist.spotify_uri.startswith("spotify:artist:")
    assert campaign.release.release_at == (later + dt.timedelta(minutes=10)).replace(microsecond=0)
    schedule = Schedule.objects.get(name=schedule_name(campaign.pk))
    assert schedule.schedule_type == Schedule.ONCE
    assert schedule.next_run == campaign.release.release_at

    assert Schedule.objects.filter(name=schedule_name(Campaign.objects.get(slug="folded-maps").pk)).exists()
    draft = Campaign.objects.get(slug="low-tide-lights")
    assert draft.status == Campaign.Status.DRAFT
    assert not Schedule.objects.filter(name=schedule_name(draft.pk)).exists()

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("presave-demo")
    for release in Release.objects.all():
        release.full_clean()  # the demo data passes the admin's validation
        assert (media_root / release.cover.name).stat().st_size > 10_000
    for campaign in Campaign.objects.all():
        campaign.full_clean()
    assert sorted(p.name for p in (media_root / "covers").iterdir()) == sorted(
        Path(r.cover.name).name for r in Release.objects.all()
    )


def test_the_demos_main_campaign_shows_the_playlist_from_the_page_to_release_day(db, client, sandbox, media_root):
    """A newcomer to the demo meets every action: glass-harbour's page names the playlist, Spotify is asked for
    it, and on release day the fan's private playlist holds the album's tracks (the sandbox page lists it)."""
    seed()
    campaign = Campaign.objects.select_related("release").get(slug="glass-harbour")
    page = client.get(f"/{campaign.slug}/").content.decode()
    assert "Glass Harbour — Pre-saves" in page
    scopes = get_service("spotify").scopes_for(campaign, email_opt_in=False)
    assert "playlist-modify-private" in scopes
    subscription = make_subscription(campaign, sandbox, "alice", scope=" ".join(scopes))

    engine.deliver_campaign(campaign.pk, reopen=True)  # Deliver now

    subscription.refresh_from_db()
    assert subscription.status == "delivered"
    (playlist,) = sandbox.playlists("alice")
    assert (playlist["name"], playlist["public"]) == ("Glass Harbour — Pre-saves", False)
    assert playlist["items"] == [
        f"spotify:track:{demo_catalog.NOVA_LARK_TRACK_1_ID}",
        f"spotify:track:{demo_catalog.NOVA_LARK_TRACK_2_ID}",
    ]
    assert "Glass Harbour — Pre-saves (2 tracks)" in requests.get(f"{sandbox.url}/_sandbox/", timeout=5).text


def test_seed_demo_refuses_to_run_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo")
    assert not get_user_model().objects.filter(username="admin").exists()


def test_the_engine_delivers_on_the_demos_sqlite_database(tmp_path):
    """The demo's zero-setup database is SQLite, where the engine's batch writes take Django's bulk operations
    instead of PostgreSQL's arrays (delivery/bulk.py): a whole delivery, checked by the benchmark's checks."""
    env = {"DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    assert manage("migrate", "-v", "0", **env).returncode == 0

    ran = manage("bench_delivery", "--fans", "20", "--baseline-fans", "2", "--latency-ms", "0", "--workers", "0", **env)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "OK   subscriptions: delivered 20, failed 0, revoked 0; pending 0, missing 0" in ran.stdout
    assert "checks passed" in ran.stdout


@pytest.mark.parametrize("username", ["admin", "label", "manager"])
def test_seeding_again_keeps_staff_logged_in(db, media_root, client, username):
    """Setting the same password again makes a new hash (a new salt), and Django logs out every session whose
    password hash no longer matches: re-seeding the demo must not."""
    seed()
    assert client.login(username=username, password="presave-demo")
    assert client.get("/admin/").status_code == 200

    seed()

    assert client.get("/admin/").status_code == 200, "still logged in"


def funnel_of(campaign) -> dict[str, int]:
    from django.db.models import Count, Q

    from fans.models import FunnelEvent

    return FunnelEvent.objects.filter(campaign=campaign).aggregate(
        **{kind: Count("pk", filter=Q(kind=kind)) for kind in ("view", "click", "authorize")}
    )


def test_the_seeded_funnel_authorizes_only_the_demos_real_pre_saves(db, media_root):
    from fans.models import Fan, FunnelEvent, Subscription

    seed()
    campaign = Campaign.objects.get(slug="glass-harbour")
    fresh = funnel_of(campaign)
    assert fresh["authorize"] == 0, "no pre-save yet: no authorization"
    assert fresh["view"] > fresh["click"] > 0, "but page views and clicks, for the charts"

    # Their markets, as the engine reads them (markets.of_fan): GB, the fan's NZ, and none ("XX", "EU": no country).
    fans = [("spotify", "GB", ""), ("spotify", "", "NZ"), ("deezer", "XX", "NZ"), ("apple_music", "", "EU")]
    for i, (service, market, country) in enumerate(fans):
        fan = Fan.objects.create(service=service, service_user_id=f"demo-fan-{i}", country=country)
        Subscription.objects.create(fan=fan, campaign=campaign, market=market)
    FunnelEvent.objects.create(campaign=campaign, kind="authorize")  # an earlier seed's made-up authorization
    seed()
    seed()  # and again: nothing doubles

    funnel = funnel_of(campaign)
    assert funnel["authorize"] == Subscription.objects.filter(campaign=campaign).count() == 4
    authorized = FunnelEvent.objects.filter(campaign=campaign, kind="authorize")
    assert sorted(authorized.values_list("service", flat=True)) == ["apple_music", "deezer", "spotify", "spotify"]
    assert set(authorized.values_list("subscription__campaign", flat=True)) == {campaign.pk}
    assert sorted(authorized.values_list("country", flat=True)) == ["", "", "GB", "NZ"], "where the fans are"
    assert funnel["click"] - fresh["click"] == 4 and funnel["view"] - fresh["view"] == 4, "each came by the page"
