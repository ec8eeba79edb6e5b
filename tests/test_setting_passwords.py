"""Passwords inside setting URLs (DATABASE_URL, REDIS_URL, EMAIL_URL) appear nowhere: not in error reports, not in
log lines, not in `manage.py diffsettings`."""

import base64
import logging
import os
import secrets
import sys

from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from tests.conftest import manage

PASSWORD = "hunter" + str(2)  # built, so that the report's own source lines do not show it
REDIS_WITH_PASSWORD = f"redis://:redis-{PASSWORD}@redis.example:6379/0"


def test_an_error_report_hides_the_password_inside_a_setting_url(settings):
    settings.REDIS_URL = REDIS_WITH_PASSWORD
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": REDIS_WITH_PASSWORD}
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        report = ExceptionReporter(RequestFactory().get("/"), *sys.exc_info())
        text, html = report.get_traceback_text(), report.get_traceback_html()

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
