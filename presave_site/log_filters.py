"""A logging filter that keeps tokens and authorization codes out of every log line."""

import logging
import re

SECRET_PATTERN = re.compile(
    r"(?P<key>\b(?:code|state|access_token|refresh_token|client_secret|code_verifier|token|secret|music_user_token)=)"
    r"[^&\s\"']+"
    r"|(?P<scheme>\b(?:Bearer|Basic|Music-User-Token:)\s+)[A-Za-z0-9._~+/=-]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    return SECRET_PATTERN.sub(lambda m: (m.group("key") or m.group("scheme")) + "[redacted]", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True
