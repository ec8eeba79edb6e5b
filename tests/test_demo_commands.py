"""The demo's seed command, and the settings checks a production deployment relies on."""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule

from delivery.scheduling import schedule_name
from releases.models import Artist, Campaign, Release

ROOT = Path(__file__).resolve().parent.parent


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


def test_seed_demo_refuses_to_run_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo")
    assert not get_user_model().objects.filter(username="admin").exists()


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py with only `env` (and PATH/HOME) as its environment: no test settings leak in."""
    clean_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV_FILE": "/dev/null"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean_env, "DJANGO_SETTINGS_MODULE": "presave_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_pass_the_deploy_checks():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        HTTPS="true",
        SECRET_KEY=secrets.token_urlsafe(50),
        TOKEN_ENCRYPTION_KEYS="prod:" + base64.b64encode(os.urandom(32)).decode(),
        ALLOWED_HOSTS="presave.example",
        PUBLIC_BASE_URL="https://presave.example",
        DATABASE_URL=os.environ["DATABASE_URL"],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_secret_key_fails_naming_it():
    result = manage(
        "check",
        DEBUG="false",
        TOKEN_ENCRYPTION_KEYS="prod:" + base64.b64encode(os.urandom(32)).decode(),
        DATABASE_URL=os.environ["DATABASE_URL"],
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("keys", "words"),
    [("garbage", "look like 'key-id:base64-of-32-bytes'"), ("prod:c2hvcnQ=", "must be 32 bytes, not 5")],
)
def test_malformed_token_encryption_keys_stop_the_start_naming_the_problem(keys, words):
    result = manage(
        "check",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        TOKEN_ENCRYPTION_KEYS=keys,
        DATABASE_URL=os.environ["DATABASE_URL"],
    )
    assert result.returncode != 0
    assert words in result.stderr
    assert "c2hvcnQ=" not in result.stderr, "the key itself is never shown"


@pytest.mark.parametrize("setting", ["FANS_WRITE_RATE", "FANS_CLICK_RATE"])
def test_a_malformed_rate_limit_stops_the_start_naming_it(setting):
    result = manage("check", DEBUG="true", **{setting: "lots"})
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {setting} looks like 20/m" in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("PAGE_CACHE_SECONDS", "abc", "PAGE_CACHE_SECONDS must be a whole number"),
        ("SERVICE_TIMEOUT_SECONDS", "soon", "SERVICE_TIMEOUT_SECONDS must be a number"),
        ("DELIVERY_MAX_ATTEMPTS", "-3", "DELIVERY_MAX_ATTEMPTS must be at least 1, not -3"),
        ("DELIVERY_CONCURRENCY", "0", "DELIVERY_CONCURRENCY must be at least 1, not 0"),
    ],
)
def test_a_number_setting_that_makes_no_sense_stops_the_start_naming_it(setting, value, words):
    result = manage("check", DEBUG="true", **{setting: value})
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {words}" in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("HTTPS", "ture", "HTTPS must be true or false, not 'ture'"),
        ("DEBUG", "maybe", "DEBUG must be true or false, not 'maybe'"),
        ("DATABASE_URL", "mysqlx://owner:hunter2-db@db.example/presave", "DATABASE_URL must look like postgres://"),
        ("DATABASE_URL", "postgres://owner:hunter2-db@db.example", "DATABASE_URL names no database"),
        ("PUBLIC_BASE_URL", "presave.example", "PUBLIC_BASE_URL must be an http:// or https:// address"),
        ("SPOTIFY_API_URL", "api.spotify.com/v1", "SPOTIFY_API_URL must be an http:// or https:// address"),
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL must look like redis://host:6379/0"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ("DELIVERY_REPORT_EMAILS", "label@example.test,the label", "DELIVERY_REPORT_EMAILS: 'the label' is not an"),
        ("RATELIMIT_IP_META_KEY", "HTTP_X_FORWARDED_FOR", "RATELIMIT_IP_META_KEY=HTTP_X_FORWARDED_FOR: that header"),
    ],
)
def test_a_malformed_setting_stops_the_start_naming_it_and_never_showing_a_password(setting, value, words):
    """Before: a typo in HTTPS read as false (no secure cookies, no redirect to https, in production), a
    malformed DATABASE_URL was a KeyError (or a warning quoting its password), a base address without its
    scheme failed at the first call to the service, a bad REDIS_URL at the worker's start."""
    result = manage("check", **{"DEBUG": "true", setting: value})
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {words}" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(("value", "secure"), [("Yes", "True"), ("off", "False"), ("1", "True"), ("false", "False")])
def test_a_yes_or_no_setting_takes_the_usual_words(value, secure):
    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SESSION_COOKIE_SECURE)",
        DEBUG="true",
        HTTPS=value,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == secure  # after the shell's own "objects imported" line


def production_env(**extra: str) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "HTTPS": "true",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TOKEN_ENCRYPTION_KEYS": "prod:" + base64.b64encode(os.urandom(32)).decode(),
        "ALLOWED_HOSTS": "presave.example",
        "PUBLIC_BASE_URL": "https://presave.example",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        **extra,
    }


def test_behind_a_proxy_the_deploy_checks_ask_for_the_header_with_the_fans_address():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production_env(BEHIND_TLS_PROXY="true"))
    assert result.returncode != 0
    assert "fans.W001" in result.stderr + result.stdout and "RATELIMIT_IP_META_KEY" in result.stderr + result.stdout

    env = production_env(BEHIND_TLS_PROXY="true", RATELIMIT_IP_META_KEY="HTTP_X_REAL_IP")
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_engine_delivers_on_the_demos_sqlite_database(tmp_path):
    """The demo's zero-setup database is SQLite, where the engine's batch writes take Django's bulk operations
    instead of PostgreSQL's arrays (delivery/bulk.py): a whole delivery, checked by the benchmark's checks."""
    env = {"DEBUG": "true", "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    assert manage("migrate", "-v", "0", **env).returncode == 0

    ran = manage("bench_delivery", "--fans", "20", "--baseline-fans", "2", "--latency-ms", "0", "--workers", "0", **env)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "OK   subscriptions: delivered 20, failed 0, revoked 0; pending 0, missing 0" in ran.stdout
    assert "checks passed" in ran.stdout
