"""Secrets never reach a log line: the filter on every handler redacts codes, tokens and auth headers."""

import io
import logging
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.test import Client

from presave_site.log_filters import RedactSecrets, redact
from tests.conftest import ROOT, manage, wait_for


def test_query_string_secrets_are_redacted():
    line = '"GET /oauth/spotify/callback/?code=AQBxyz123&state=s3cr3t HTTP/1.1" 302'
    assert redact(line) == '"GET /oauth/spotify/callback/?code=[redacted]&state=[redacted] HTTP/1.1" 302'


def test_authorization_headers_are_redacted():
    assert redact("Authorization: Bearer BQDabc.def-ghi") == "Authorization: Bearer [redacted]"
    assert redact("Basic c2FuZGJveDpzZWNyZXQ=") == "Basic [redacted]"


def test_filter_rewrites_formatted_records():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "refresh_token=%s sent", ("AQDsecret",), None)
    assert RedactSecrets().filter(record)
    assert record.getMessage() == "refresh_token=[redacted] sent"


def test_plain_messages_are_left_alone():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "delivered %d fans", (12,), None)
    RedactSecrets().filter(record)
    assert record.getMessage() == "delivered 12 fans"


def test_apple_music_and_deezer_tokens_are_redacted():
    assert redact("Music-User-Token: AmUTabc.def") == "Music-User-Token: [redacted]"
    assert redact("music_user_token=AmUTabc&state=x") == "music_user_token=[redacted]&state=[redacted]"
    assert redact("POST /user/me/albums?album_id=1&access_token=frDZabc") == (
        "POST /user/me/albums?album_id=1&access_token=[redacted]"
    )


def test_tracebacks_are_redacted_too():
    # aiohttp's and requests' errors carry the URL, and Deezer's token travels in its query string.
    record = None
    try:
        raise RuntimeError("400, message='Bad Request', url='https://api.deezer.com/user/me?access_token=frDZsecret'")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "call failed", (), sys.exc_info())
    assert RedactSecrets().filter(record)
    output = logging.Formatter().format(record)
    assert "frDZsecret" not in output
    assert "access_token=[redacted]" in output


def test_tokens_in_json_bodies_are_redacted():
    body = '{"access_token": "BQDsecret", "token_type": "Bearer", "refresh_token":"AQDsecret", "expires_in": 3600}'
    cleaned = redact(body)
    assert "BQDsecret" not in cleaned and "AQDsecret" not in cleaned
    assert '"expires_in": 3600' in cleaned


def test_service_errors_quoting_the_service_never_carry_a_token():
    # Their message becomes DeliveryAttempt.message and the subscription's last_error, shown to staff.
    from delivery.services import ServiceError, TokenRevoked

    error = ServiceError("Deezer rejected the save: Cannot POST /user/me/albums?access_token=frDZsecret (code 0).")
    assert "frDZsecret" not in error.message and "frDZsecret" not in str(error)
    assert "access_token=[redacted]" in error.message
    assert "BQDsecret" not in TokenRevoked("The fan's authorization is no longer valid (Bearer BQDsecret).").message


def test_the_secrets_fans_links_carry_in_their_path_are_redacted():
    assert redact("Forbidden (CSRF cookie not set.): /revoke/rKnCabc-_Thg/") == (
        "Forbidden (CSRF cookie not set.): /revoke/[redacted]/"
    )
    assert redact("Too Many Requests: /privacy/eyJmYW4iOjF9:1v:sig/export.json") == (
        "Too Many Requests: /privacy/[redacted]/export.json"
    )
    for path in ("/e/o/abc.gif", "/e/c/abc/", "/e/u/abc/", "/e/confirm/abc/"):
        assert "abc" not in redact(f"Not Found: {path}")
    assert redact("Bad Request: /privacy/link/") == "Bad Request: /privacy/link/"  # a fixed address, no secret
    assert redact("Not Found: /first-light/presave/spotify/") == "Not Found: /first-light/presave/spotify/"


@pytest.mark.django_db
def test_a_refused_post_to_a_revoke_link_logs_its_path_without_the_token():
    """Django logs every 4xx with its path; an in-app browser that drops cookies makes this one (CSRF)."""
    console = next(h for h in logging.getLogger().handlers if any(isinstance(f, RedactSecrets) for f in h.filters))
    stream = io.StringIO()
    previous = console.setStream(stream)
    try:
        response = Client(enforce_csrf_checks=True).post("/revoke/the-fans-secret-revoke-token/")
    finally:
        console.setStream(previous)

    assert response.status_code == 403
    assert "/revoke/[redacted]/" in stream.getvalue()
    assert "the-fans-secret-revoke-token" not in stream.getvalue()


@pytest.mark.django_db
def test_gunicorns_access_log_under_the_projects_config_carries_no_secret_link(tmp_path):
    """gunicorn logs requests itself, outside Django's LOGGING: the config README's production command uses
    (presave_site/gunicorn_config.py) runs its lines through the same redaction."""
    db = connection.settings_dict
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    access_log = tmp_path / "access.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:presave_site.gunicorn_config", "presave_site.wsgi"]
        + [f"--bind=127.0.0.1:{port}", f"--access-logfile={access_log}", "--workers=1"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    secret_paths = [
        "/revoke/the-fans-secret-revoke-token/",
        "/privacy/eyJmYW4iOjF9:1v:the-privacy-signature/",
        "/oauth/spotify/callback/?code=the-authorization-code&state=the-oauth-state",
    ]
    try:
        wait_for(lambda: _answers(base + "/privacy/link/"), message="gunicorn to answer")
        for path in secret_paths:
            _answers(base + path, referer=base + "/privacy/the-referred-privacy-token/")
        wait_for(lambda: access_log.read_text().count("\n") >= 1 + len(secret_paths), message="the access log")
    finally:
        server.terminate()
        server.wait(timeout=10)

    log = access_log.read_text()
    assert "GET /revoke/[redacted]/ " in log
    assert "GET /privacy/[redacted]/ " in log
    assert "GET /oauth/spotify/callback/?code=[redacted]&state=[redacted] " in log
    for secret in ("the-fans-secret", "the-privacy-signature", "the-authorization-code", "the-oauth-state"):
        assert secret not in log
    assert "the-referred-privacy-token" not in log, "the Referer is a logged URL too"


def _answers(url: str, referer: str = "") -> bool:
    request = urllib.request.Request(url, headers={"Referer": referer} if referer else {})
    try:
        urllib.request.urlopen(request, timeout=5).close()  # noqa: S310 - our own loopback server
    except urllib.error.HTTPError:
        return True  # an answer (a 4xx for a made-up link): what the log records
    except OSError:
        return False
    return True


def test_with_debug_on_djangos_own_console_handler_does_not_print_secrets_unredacted():
    """With DEBUG on (the demo), Django's default logging also prints the `django` loggers through a console
    handler of its own, which the redaction filter is not on: every 4xx line came out twice, once in clear."""
    result = manage(
        "shell",
        "-c",
        "import logging; logging.getLogger('django.request').warning('Not Found: /revoke/the-fans-revoke-token/')",
        DEBUG="true",
    )
    assert result.returncode == 0, result.stderr
    assert "Not Found: /revoke/[redacted]/" in result.stderr
    assert "the-fans-revoke-token" not in result.stdout + result.stderr


def test_two_gunicorns_under_the_projects_config_get_a_control_socket_each(tmp_path):
    """gunicorn's default control socket is one path per user: a second instance would take over the first's."""
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:presave_site.gunicorn_config", "presave_site.wsgi"]
            + [f"--bind=127.0.0.1:{port}", "--workers=1"],
            cwd=ROOT,
            env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "XDG_RUNTIME_DIR": str(tmp_path)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for port in ports
    ]
    expected = {f"gunicorn-127.0.0.1-{port}.ctl" for port in ports}
    try:
        wait_for(lambda: {p.name for p in tmp_path.iterdir()} >= expected, message="both control sockets")
        for port in ports:
            shown = subprocess.run(
                [sys.executable, "-m", "gunicorn.ctl.cli", "-s", str(tmp_path / f"gunicorn-127.0.0.1-{port}.ctl")]
                + ["-c", "show config", "-j"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert f"127.0.0.1:{port}" in shown.stdout, shown.stdout + shown.stderr
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
