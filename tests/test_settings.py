"""The settings checks a production deployment relies on: each malformed setting stops the start naming it."""

from __future__ import annotations

import base64
import os
import secrets

import pytest

from fans.checks import SERVICE_URL_SETTINGS
from tests.conftest import manage


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
        EMAIL_URL="smtp+tls://presave:mail-password@mail.example:587",
        PRIVACY_CONTROLLER="Harbour Records Ltd, 1 Quay Street, Bristol",
        PRIVACY_CONTACT_EMAIL="privacy@harbour.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deploy_checks_ask_who_answers_for_fans_data():
    env = production_env()
    del env["PRIVACY_CONTACT_EMAIL"]
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "fans.W007" in output and "PRIVACY_CONTACT_EMAIL is not set" in output


def test_a_privacy_contact_that_is_no_email_address_stops_the_start_naming_it():
    result = manage("check", **production_env(PRIVACY_CONTACT_EMAIL="privacy at harbour"))

    assert result.returncode != 0
    assert "ImproperlyConfigured: PRIVACY_CONTACT_EMAIL: 'privacy at harbour' is not an email address." in result.stderr


def test_the_deploy_checks_refuse_emails_printed_to_the_logs():
    """The default EMAIL_URL prints each email, fans' addresses and private links with it, to the output."""
    result = manage("check", "--deploy", "--fail-level", "WARNING", **production_env(EMAIL_URL="consolemail://"))

    assert result.returncode != 0
    assert "fans.W002" in result.stderr + result.stdout


def test_production_without_secret_key_fails_naming_it():
    result = manage(
        "check",
        DEBUG="false",
        TOKEN_ENCRYPTION_KEYS="prod:" + base64.b64encode(os.urandom(32)).decode(),
        DATABASE_URL=os.environ["DATABASE_URL"],
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set when DEBUG is off" in result.stderr


def check_with_keys(keys: str):
    """`manage.py check` with production's DEBUG off and `keys` as TOKEN_ENCRYPTION_KEYS."""
    return manage(
        "check",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        TOKEN_ENCRYPTION_KEYS=keys,
        DATABASE_URL=os.environ["DATABASE_URL"],
    )


@pytest.mark.parametrize(
    ("keys", "words"),
    [("garbage", "look like 'key-id:base64-of-32-bytes'"), ("prod:c2hvcnQ=", "must be 32 bytes, not 5")],
)
def test_malformed_token_encryption_keys_stop_the_start_naming_the_problem(keys, words):
    result = check_with_keys(keys)
    assert result.returncode != 0
    assert words in result.stderr
    assert "c2hvcnQ=" not in result.stderr, "the key itself is never shown"


@pytest.mark.parametrize("order", ["reversed", "slash"])
def test_a_key_id_that_is_not_one_stops_the_start_without_showing_the_key(order):
    """'<base64>:<id>' quoted the key as the id in the error; a "/" in an id passed and broke privacy links."""
    key = base64.b64encode(os.urandom(32)).decode()
    keys = f"{key}:prod" if order == "reversed" else f"2026/07:{key}"
    result = check_with_keys(keys)
    assert result.returncode != 0
    assert "the key id of item 1 is not 1 to 32 letters, digits" in result.stderr
    assert key[:16] not in result.stdout + result.stderr, "the key itself is never shown"


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("FANS_WRITE_RATE", "lots", "FANS_WRITE_RATE looks like 20/m"),
        ("FANS_CLICK_RATE", "lots", "FANS_CLICK_RATE looks like 20/m"),
        ("FANS_WRITE_RATE", "20/0m", "FANS_WRITE_RATE looks like 20/m"),  # a period of 0: every write was a 500
        ("ADMIN_LOGIN_RATE", "0/m", "ADMIN_LOGIN_RATE looks like 20/m"),  # none allowed: every sign-in a 429
        ("PAGE_CACHE_SECONDS", "abc", "PAGE_CACHE_SECONDS must be a whole number"),
        ("SERVICE_TIMEOUT_SECONDS", "soon", "SERVICE_TIMEOUT_SECONDS must be a number"),
        ("DELIVERY_MAX_ATTEMPTS", "-3", "DELIVERY_MAX_ATTEMPTS must be at least 1, not -3"),
        ("DELIVERY_CONCURRENCY", "0", "DELIVERY_CONCURRENCY must be at least 1, not 0"),
        ("HTTPS", "ture", "HTTPS must be true or false, not 'ture'"),
        ("DEBUG", "maybe", "DEBUG must be true or false, not 'maybe'"),
        ("DATABASE_URL", "mysqlx://owner:hunter2-db@db.example/presave", "DATABASE_URL must look like postgres://"),
        ("DATABASE_URL", "postgres://owner:hunter2-db@db.example", "DATABASE_URL names no database"),
        ("PUBLIC_BASE_URL", "presave.example", "PUBLIC_BASE_URL must be an http:// or https:// address"),
        ("SPOTIFY_API_URL", "api.spotify.com/v1", "SPOTIFY_API_URL must be an http:// or https:// address"),
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL must look like redis://host:6379/0"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ("DELIVERY_REPORT_EMAILS", "label@example.test,the label", "DELIVERY_REPORT_EMAILS: 'the label' is not an"),
        ("DELIVERY_REPORT_EMAILS", "staff@" + "a" * 63 + ("." + "a" * 63) * 3, "DELIVERY_REPORT_EMAILS: 'staff@aaa"),
        ("RATELIMIT_IP_META_KEY", "HTTP_X_FORWARDED_FOR", "RATELIMIT_IP_META_KEY=HTTP_X_FORWARDED_FOR: that header"),
        ("RATELIMIT_IP_META_KEY", "X-Real-IP", "RATELIMIT_IP_META_KEY='X-Real-IP': name the header as Django's"),
        ("DATABASE_URL", "postgres://owner:hunter2-db@db.example:notaport/presave", "DATABASE_URL has a port that"),
        ("DATABASE_URL", "postgres://owner:hunter2-db@db.example:99999/presave", "DATABASE_URL has a port that"),
        ("EMAIL_URL", "smtp://owner:hunter2-mail@mail.example:notaport", "EMAIL_URL must look like smtp+tls://"),
        ("EMAIL_URL", "hunter2-garbage", "EMAIL_URL must look like smtp+tls://"),
        ("PUBLIC_BASE_URL", "http://[::1", "PUBLIC_BASE_URL must be an http:// or https:// address"),
        ("REDIS_URL", "redis://cache.example:notaport/0", "REDIS_URL must look like redis://host:6379/0"),
        ("APPLE_MUSIC_STOREFRONT", "", "APPLE_MUSIC_STOREFRONT must be a two-letter storefront"),
        ("PRIVACY_LINK_MAX_AGE", "0", "PRIVACY_LINK_MAX_AGE must be at least 60, not 0"),
        ("SESSION_COOKIE_NAME", "session id", "SESSION_COOKIE_NAME must be letters, digits, _, - or . only"),
        ("CSRF_COOKIE_NAME", "", "CSRF_COOKIE_NAME must be letters, digits, _, - or . only"),
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
        "EMAIL_URL": "smtp+tls://presave:mail-password@mail.example:587",
        "PRIVACY_CONTROLLER": "Harbour Records Ltd, 1 Quay Street, Bristol",
        "PRIVACY_CONTACT_EMAIL": "privacy@harbour.example",
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


@pytest.mark.parametrize("setting", SERVICE_URL_SETTINGS)
def test_with_https_on_a_service_address_must_be_https(setting):
    """Before: http://accounts.spotify.example started fine, and our client secret went to it in clear."""
    result = manage("check", **production_env(**{setting: "http://service.example"}))
    assert result.returncode != 0
    assert f"ImproperlyConfigured: {setting} must be an https:// address when HTTPS is on" in result.stderr

    result = manage("check", **production_env(HTTPS="false", **{setting: "http://service.example"}))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765"])
def test_with_https_on_the_sandbox_on_loopback_may_stay_http(host):
    """A production-like run on one machine (DEBUG off, HTTPS on) talks to the sandbox over plain HTTP."""
    result = manage("check", **production_env(SPOTIFY_API_URL=f"http://{host}/spotify/api"))
    assert result.returncode == 0, result.stderr


def test_the_deploy_checks_want_an_https_public_address_when_https_is_on():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", **production_env(PUBLIC_BASE_URL="http://presave.example")
    )
    assert result.returncode != 0
    assert "fans.W003" in result.stderr + result.stdout and "PUBLIC_BASE_URL" in result.stderr + result.stdout


def test_the_deploy_checks_name_each_service_address_that_is_the_sandbox():
    """With DEBUG off and a service's address on this machine (the sandbox), `check --deploy` said nothing."""
    env = production_env(
        SPOTIFY_ACCOUNTS_URL="http://127.0.0.1:8765/spotify/accounts",
        SPOTIFY_API_URL="http://localhost:8765/spotify/api",
        DEEZER_API_URL="http://[::1]:8765/deezer/api",
        APPLE_MUSIC_API_URL="https://127.0.0.2/apple_music/api",
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)

    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert output.count("fans.W004") == 4
    for name in ("SPOTIFY_ACCOUNTS_URL", "SPOTIFY_API_URL", "DEEZER_API_URL", "APPLE_MUSIC_API_URL"):
        assert f"{name} points at this machine" in output
    assert "DEEZER_CONNECT_URL" not in output and "MUSICKIT_JS_URL" not in output, "those are the real services'"


def test_a_service_address_that_only_looks_local_is_no_warning():
    env = production_env(SPOTIFY_API_URL="https://localhost.example.com", DEEZER_API_URL="https://127.example.com")
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_deploy_checks_name_the_development_secret_key_and_token_key():
    """They are public (presave_site/dev_defaults.py): set as values, they started with DEBUG off unnoticed."""
    from presave_site import dev_defaults

    own = "prod:" + base64.b64encode(os.urandom(32)).decode()
    env = production_env(
        SECRET_KEY=dev_defaults.SECRET_KEY, TOKEN_ENCRYPTION_KEYS=f"{own},{dev_defaults.TOKEN_ENCRYPTION_KEYS}"
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", **env)

    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert "fans.W005" in output and "SECRET_KEY is the development one" in output
    assert "fans.W006" in output and "TOKEN_ENCRYPTION_KEYS holds the development key" in output
    assert dev_defaults.TOKEN_ENCRYPTION_KEYS.split(":")[1] not in output, "the key itself is never shown"
