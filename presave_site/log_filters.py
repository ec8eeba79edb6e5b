"""A logging filter that keeps tokens and authorization codes out of every log line, tracebacks included."""

import logging
import re

from django.core.exceptions import PermissionDenied

SECRET_NAMES = r"code|state|access_token|refresh_token|client_secret|code_verifier|token|secret|music_user_token"
SECRET_PATTERN = re.compile(
    rf"(?P<key>\b(?:{SECRET_NAMES})=)"
    r"[^&\s\"']+"
    rf"|(?P<json>\"(?:{SECRET_NAMES}|id_token|developer_token)\"\s*:\s*\")[^\"]*(?=\")"
    r"|(?P<scheme>\b(?:Bearer|Basic|Music-User-Token:)\s+)[A-Za-z0-9._~+/=-]+"
    # Fans' links carry their secret in the path (fans/urls.py), which Django logs with every 4xx: a revoke token,
    # a signed privacy or email link.
    r"|(?P<path>/(?:revoke|privacy|e/[ocu]|e/confirm)/)(?!link(?:/|$|\s))[^/\s\"'?]+",
    re.IGNORECASE,
)
# A password inside a URL: redis://:password@host, postgres://user:password@host, smtp+tls://user:password@host.
# The password ends at the last "@" before the host (what follows it holds no "@" up to the path): within the
# address's first part when an "@" is there (https://u:p@host/people/@nova keeps its path), else past a "/" left
# unencoded in the password (redis://:pa/ss@host/0), never into the next URL on the line.
_HOST_NEXT = r"(?=@[^@/\s\"']*(?:[/\s\"']|$))"
URL_PASSWORD = re.compile(
    r"(?P<userinfo>\b[a-z][a-z0-9+.-]*://[^:/@\s\"']*:)"
    rf"(?:[^/\s\"']+{_HOST_NEXT}|(?:(?!://)[^\s\"'])+{_HOST_NEXT})",
    re.IGNORECASE,
)
_formatter = logging.Formatter()


def redact_url_password(text: str) -> str:
    return URL_PASSWORD.sub(r"\g<userinfo>[redacted]", text)


def redact(text: str) -> str:
    text = redact_url_password(text)
    return SECRET_PATTERN.sub(
        lambda m: (m.group("key") or m.group("json") or m.group("scheme") or m.group("path")) + "[redacted]", text
    )


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        # An exception's text (aiohttp's and requests' errors carry the URL, Deezer's token is in its query
        # string) is formatted here once, redacted; handlers' formatters use exc_text when it is set.
        if record.exc_info and not record.exc_text:
            record.exc_text = _formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class RefusalsWithoutTraceback(logging.Filter):
    """A role refused a page (the label role opening the CSV export or the audit log) is expected behaviour, but
    Django logs every PermissionDenied's 403 with the exception's traceback, which reads like a crash in the web
    log. On `django.request`, the line is kept (who was refused what, at WARNING) and the traceback dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], PermissionDenied):
            record.exc_info = record.exc_text = None
            user = getattr(getattr(record, "request", None), "user", None)
            if user is not None and user.is_authenticated:
                record.msg, record.args = f"{record.msg} (user %s)", (*record.args, user.get_username())
        return True
