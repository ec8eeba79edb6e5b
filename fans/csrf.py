"""The campaign page's CSRF token, made cheaply.

The campaign page is the one page fans view at volume, and Django's `get_token` is most of its per-visitor
cost: it draws each character of a new secret and of the mask with its own `secrets.choice` (an `os.urandom`
call per character, 64 for a new visitor) and re-sends the year-long CSRF cookie at every view to renew it.
`page_token` makes the same masked token from one `os.urandom` call per string, and has CsrfViewMiddleware
send the cookie only to a browser that has no valid one.

The token is Django's own format (django.middleware.csrf: a random mask, then the secret with each character
shifted by the mask's, both over CSRF_ALLOWED_CHARS), so CsrfViewMiddleware checks the page's forms as it
checks any; tests/fans/test_page_cache.py posts one back. The mask is still new at every response (BREACH),
each character uniformly drawn (bytes that would bias the modulo are dropped).
"""

from __future__ import annotations

import os

from django.http import HttpRequest
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH

_CHARS = CSRF_ALLOWED_CHARS
_UNBIASED = 256 - 256 % len(_CHARS)  # bytes below this map uniformly onto the characters; the rest are dropped
_BYTE_TO_CHAR = bytes(ord(_CHARS[byte % len(_CHARS)]) for byte in range(256))
_DROPPED = bytes(range(_UNBIASED, 256))
# secret character + mask character → token character: Django's (index + index) % len(CSRF_ALLOWED_CHARS)
_SHIFTED = {(s, m): _CHARS[(i + j) % len(_CHARS)] for i, s in enumerate(_CHARS) for j, m in enumerate(_CHARS)}


def random_chars(count: int = CSRF_SECRET_LENGTH) -> str:
    """`count` characters of CSRF_ALLOWED_CHARS, each uniformly random (os.urandom, rejection sampling)."""
    chars = b""
    while len(chars) < count:
        chars += os.urandom(count + 8).translate(_BYTE_TO_CHAR, _DROPPED)
    return chars[:count].decode("ascii")


def page_token(request: HttpRequest) -> str:
    """A freshly masked CSRF token for `request`'s forms. A browser without a valid CSRF cookie gets a new
    secret, which CsrfViewMiddleware sets as the cookie; a valid cookie is left as it is."""
    secret = request.META.get("CSRF_COOKIE")
    if not secret:
        secret = random_chars()
        request.META.update({"CSRF_COOKIE": secret, "CSRF_COOKIE_NEEDS_UPDATE": True})
    mask = random_chars()
    return mask + "".join(map(_SHIFTED.__getitem__, zip(secret, mask, strict=True)))
