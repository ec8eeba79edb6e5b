"""Where a fan's request comes from: its country (a proxy's country header, else the browser's language region)
and its client's IP address."""

from __future__ import annotations

import functools
import ipaddress

from django.conf import settings
from django.http import HttpRequest
from django.utils.translation.trans_real import parse_accept_lang_header

from releases import markets


@functools.lru_cache(maxsize=8)
def meta_key(header: str) -> str:
    """Where WSGI puts a header in request.META: CF-IPCountry → HTTP_CF_IPCOUNTRY."""
    return "HTTP_" + header.upper().replace("-", "_")


def request_country(request: HttpRequest) -> str:
    """A two-letter country code, or "" when the request does not tell: the proxy's country header, else the
    region of the most preferred language in Accept-Language that names one (by q-value; q=0 means "not
    acceptable" and never counts). Django's own parser reads the header: it caps its length, orders the tags by
    q-value (equal ones as sent) and reads a malformed header as none."""
    name = settings.COUNTRY_HEADER
    header = request.META.get(meta_key(name), "") if name else ""
    if code := markets.country(header):  # not a proxy's "XX" (unknown) or "T1" (Tor), which name no country
        return code
    accepted = parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "").replace("_", "-"))
    for tag, quality in accepted:
        parts = tag.split("-")
        if quality > 0 and len(parts) >= 2 and (code := markets.country(parts[-1])):
            return code
    return ""


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address: behind a proxy, from the header RATELIMIT_IP_META_KEY names (the address the
    rate limits count), else REMOTE_ADDR; None when that is no IP address."""
    value = request.META.get(settings.RATELIMIT_IP_META_KEY or "REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def rate_limit_key(group: str, request: HttpRequest) -> str:
    """What django-ratelimit counts a request under: its client's address (`client_ip`), IPv6 by /64 network
    (one subscriber's block, as django-ratelimit's own "ip" key does). A request whose proxy header is missing or
    not an address (a probe that bypassed the proxy) is counted with every other such request, never a 500 as
    the "ip" key raises."""
    ip = client_ip(request)
    if ip is None:
        return "no-client-address"
    if ":" in ip:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return ip
