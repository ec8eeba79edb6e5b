"""Passwords inside setting URLs (DATABASE_URL, REDIS_URL, EMAIL_URL) appear nowhere: not in error reports, not in
log lines, not in `manage.py diffsettings`."""

import base64
import logging
import os
import secrets
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from tests.conftest import manage

PASSWORD = "hunter" + str(2)  # built, so that the report's own source lines do not show it
REDIS_WITH_PASSWORD = f"redis://:redis-{PASSWORD}@redis.example:6379/0"


def error_report() -> tuple[str, str]:
    """Django's error report (text, HTML) of an exception raised now, as the DEBUG page and admins' mail show it."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        report = ExceptionReporter(RequestFactory().get("/"), *sys.exc_info())
        return report.get_traceback_text(), report.get_traceback_html()


def test_an_error_report_hides_the_password_inside_a_setting_url(settings):
    settings.REDIS_URL = REDIS_WITH_PASSWORD
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": REDIS_WITH_PASSWORD}
    text, html = error_report()

    for page in (text, html):
        assert PASSWORD not in page
    assert "redis://:[redacted]@redis.example:6379/0" in text


def test_a_log_line_naming_a_setting_url_hides_its_password(caplog):
    from presave_site.log_filters import RedactSecrets

    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "Could not reach %s", (REDIS_WITH_PASSWORD,), None)
    RedactSecrets().filter(record)

    assert record.getMessage() == "Could not reach redis://:[redacted]@redis.example:6379/0"


def test_diffsettings_shows_no_password_of_the_database_redis_or_email():
    database = os.environ["DATABASE_URL"].replace("postgres@", "postgres:db-hunter2@")
    result = manage(
        "diffsettings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        TOKEN_ENCRYPTION_KEYS="prod:" + base64.b64encode(os.urandom(32)).decode(),
        DATABASE_URL=database,
        REDIS_URL=REDIS_WITH_PASSWORD,
        EMAIL_URL="smtp+tls://presave:mail-hunter2@mail.example:587",
    )

    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "REDIS_URL = 'redis://:[redacted]@redis.example:6379/0'" in result.stdout
    assert "SECRET_KEY = '********************'" in result.stdout, "a changed secret is still listed, as stars"


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://:pa/ss@redis.example:6379/0", "redis://:[redacted]@redis.example:6379/0"),
        ("postgres://u:p/w@db.example/presave", "postgres://u:[redacted]@db.example/presave"),
        ("postgres://u:p:w@db.example:5432/presave", "postgres://u:[redacted]@db.example:5432/presave"),
        ("smtp+tls://presave:p%40ss@mail.example:587", "smtp+tls://presave:[redacted]@mail.example:587"),
        ("redis://:p@ss@redis.example/0", "redis://:[redacted]@redis.example/0"),  # "@" unencoded: the last one
        ("redis://:a/b:c@d@redis.example:6379/0", "redis://:[redacted]@redis.example:6379/0"),
        ("https://u:pw@host.example/people/@nova", "https://u:[redacted]@host.example/people/@nova"),
        ("redis://presave@redis.example:6379/0", "redis://presave@redis.example:6379/0"),  # a user, no password
        ("redis://redis.example:6379/0", "redis://redis.example:6379/0"),  # no userinfo at all
        ("postgres://u:@db.example/presave", "postgres://u:@db.example/presave"),  # an empty password
    ],
)
def test_a_url_password_is_hidden_whatever_it_holds(url, shown):
    from presave_site.log_filters import redact

    assert redact(f"Could not reach {url}, retrying") == f"Could not reach {shown}, retrying"
    assert redact(f"'{url}'") == f"'{shown}'"


def test_two_urls_on_one_line_each_keep_their_host():
    from presave_site.log_filters import redact

    line = "redis://:a/1@one.example/0,redis://:b/2@two.example/0"

    assert redact(line) == "redis://:[redacted]@one.example/0,redis://:[redacted]@two.example/0"


def test_an_error_report_hides_a_password_with_a_slash(settings):
    settings.REDIS_URL = f"redis://:{PASSWORD}/x@redis.example:6379/0"
    text, html = error_report()

    for page in (text, html):
        assert PASSWORD not in page
    assert "redis://:[redacted]@redis.example:6379/0" in text
