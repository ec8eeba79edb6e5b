"""Secrets never reach a log line: the filter on every handler redacts codes, tokens and auth headers."""

import logging

from presave_site.log_filters import RedactSecrets, redact


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
