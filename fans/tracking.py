"""Funnel tracking: one FunnelEvent row per page view, button click, authorization, email opt-in and
smart-link click. Each is a single INSERT, but page views, the bulk of them, are written in batches
(ViewBuffer: one binary COPY on PostgreSQL) so that tracking never slows the page.

Privacy by design:
- no IP address is stored, for any event;
- the visitor is a random id in a first-party cookie (VISITOR_COOKIE), stored only as a hash salted with a
  key that changes every day (derived from SECRET_KEY and the UTC date), so visits can be counted within a
  day but not followed across days, and the hash cannot be turned back into the cookie;
- a browser that sends `DNT: 1` or `Sec-GPC: 1` gets no cookie and a blank visitor;
- UTM values, the referrer's domain and the user agent's traits are cleaned and truncated to what the
  columns hold; anything odd becomes blank rather than an error.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.cookies import Morsel

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from fans import inapp
from fans.geo import request_country
from fans.models import FunnelEvent, Subscription
from releases.models import Campaign

logger = logging.getLogger(__name__)

VISITOR_COOKIE = "fv"
VISITOR_COOKIE_MAX_AGE = 180 * 86_400
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign")
UTM_MAX = 100
DOMAIN_MAX = 100
UTM_SESSION_KEY = "fans.utm"  # the UTM values of the last click, per campaign slug, for the authorization
_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_DOMAIN = re.compile(r"^[a-z0-9.-]+$")
_REFERER = re.compile(r"^https?://([^/?#@]+@)?([^/?#:]+)", re.IGNORECASE)
_UTM_OK = re.compile(r"[^\w .,:/@+#&()!?'=-]", re.UNICODE)


@dataclass
class Visit:
    """What one request tells about its visitor, cleaned; `new_cookie` is set when the visitor got an id now."""

    visitor: str = ""
    new_cookie: str = ""
    utm: dict[str, str] = field(default_factory=dict)
    referrer_domain: str = ""
    country: str = ""
    device: str = ""
    in_app_browser: str = ""
    in_app: inapp.InAppBrowser | None = None


def header(request: HttpRequest, meta_key: str) -> str:
    """A request header read straight from META (`HTTP_USER_AGENT`): request.headers would build a dict of
    every header at the first look, which the campaign page, the hot path, can do without."""
    return request.META.get(meta_key, "")


def tracking_refused(request: HttpRequest) -> bool:
    """True when the browser asks not to be tracked: Do Not Track or Global Privacy Control."""
    return header(request, "HTTP_DNT").strip() == "1" or header(request, "HTTP_SEC_GPC").strip() == "1"


def daily_salt(day: str | None = None) -> bytes:
    """The key the day's visitor hashes are made with: from SECRET_KEY and the UTC date, derived once a day."""
    return _salt_of_day(day or timezone.now().date().isoformat(), settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _salt_of_day(day: str, secret_key: str) -> bytes:
    return hashlib.sha256(f"fans.tracking.visitor:{day}:{secret_key}".encode()).digest()


def visitor_hash(visitor_id: str, day: str | None = None) -> str:
    """Keyed BLAKE2b (a MAC, like HMAC, in one call) of the cookie's id with the day's salt: 32 hex digits."""
    return hashlib.blake2b(visitor_id.encode(), key=daily_salt(day), digest_size=16).hexdigest()


def clean_utm(value: str) -> str:
    """A UTM value as stored: printable, no markup characters, single spaces, lower case, at most 100 chars."""
    value = _UTM_OK.sub("", value[: UTM_MAX * 4])
    return " ".join(value.split()).lower()[:UTM_MAX]


def utm_values(params) -> dict[str, str]:
    values = {}
    for name in UTM_FIELDS:
        raw = params.get(name)
        if raw and isinstance(raw, str) and (cleaned := clean_utm(raw)):
            values[name] = cleaned
    return values


def referrer_domain(request: HttpRequest) -> str:
    """The host of the Referer header, without `www.`; blank for our own pages and anything malformed."""
    referer = header(request, "HTTP_REFERER")[:2000]
    match = _REFERER.match(referer) if referer else None
    if not match:
        return ""
    host = match.group(2).lower().rstrip(".")
    if not _DOMAIN.match(host) or host == request.get_host().split(":")[0].lower():
        return ""
    return host.removeprefix("www.")[:DOMAIN_MAX]


def device_of(user_agent: str) -> str:
    if not user_agent:
        return ""
    if "iPad" in user_agent or "Tablet" in user_agent or ("Android" in user_agent and "Mobile" not in user_agent):
        return "tablet"
    if any(token in user_agent for token in ("Mobi", "iPhone", "iPod", "Android")):
        return "mobile"
    return "desktop"


_BOTS = re.compile(r"bot|crawl|spider|slurp|facebookexternalhit|embedly|preview|curl|wget|python-", re.IGNORECASE)


@dataclass(frozen=True)
class Traits:
    """What a user agent says: in-app browser, device, and whether it is a bot."""

    in_app: inapp.InAppBrowser | None
    device: str
    bot: bool


@functools.lru_cache(maxsize=1024)
def traits(user_agent: str) -> Traits:
    """The traits of a user agent (already cut to inapp.USER_AGENT_MAX). Cached: most views come from a few
    hundred distinct user agents, and matching one costs more than the rest of a visit."""
    return Traits(inapp.detect(user_agent), device_of(user_agent), bool(_BOTS.search(user_agent[:500])))


def user_agent_of(request: HttpRequest) -> str:
    return header(request, "HTTP_USER_AGENT")[: inapp.USER_AGENT_MAX]


def is_bot(request: HttpRequest) -> bool:
    """Link-preview fetchers and crawlers (a shared link is fetched by each app that shows it): not a view."""
    return traits(user_agent_of(request)).bot


def visit(request: HttpRequest, *, may_set_cookie: bool = False, params=None) -> Visit:
    """What `request` tells about its visitor. With `may_set_cookie`, a new visitor gets a fresh id (which the
    view sets as a cookie with `remember_visitor`) unless the browser refuses tracking. UTM values come from
    `params` (the query string unless given: a form carries them as hidden fields)."""
    seen = traits(user_agent_of(request))
    if params is None:
        params = request.GET if request.META.get("QUERY_STRING") else {}  # {}: no QueryDict parsed for nothing
    result = Visit(
        in_app=seen.in_app,
        utm=utm_values(params),
        referrer_domain=referrer_domain(request),
        country=request_country(request),
        device=seen.device,
        in_app_browser=seen.in_app.key if seen.in_app else "",
    )
    if tracking_refused(request):
        return result
    visitor_id = request.COOKIES.get(VISITOR_COOKIE, "")
    if not _VISITOR_ID.match(visitor_id):
        visitor_id = ""
        if may_set_cookie:
            visitor_id = result.new_cookie = secrets.token_urlsafe(16)
    if visitor_id:
        result.visitor = visitor_hash(visitor_id)
    return result


@functools.lru_cache(maxsize=2)
def _visitor_cookie(secure: bool) -> Morsel:
    """The visitor cookie's attributes, the same for every visitor: Morsel checks them once a process, and each
    new visitor's cookie is a copy. What Django's `set_cookie` writes, but for `Expires`: every browser reads
    `Max-Age` (RFC 6265), and `set_cookie` would format a date for each new visitor on the page's hot path."""
    morsel = Morsel()
    morsel.set(VISITOR_COOKIE, "", "")
    morsel.update(
        {"max-age": VISITOR_COOKIE_MAX_AGE, "path": "/", "secure": secure, "httponly": True, "samesite": "Lax"}
    )
    return morsel


def remember_visitor(response: HttpResponse, seen: Visit) -> HttpResponse:
    """Set a new visitor's cookie."""
    if seen.new_cookie:
        morsel = _visitor_cookie(settings.SESSION_COOKIE_SECURE).copy()
        morsel.set(VISITOR_COOKIE, seen.new_cookie, seen.new_cookie)  # token_urlsafe's letters need no quoting
        response.cookies[VISITOR_COOKIE] = morsel
    return response


def event(
    kind: str,
    campaign: Campaign | int,
    seen: Visit,
    *,
    service: str = "",
    subscription: Subscription | None = None,
    utm: dict[str, str] | None = None,
) -> FunnelEvent:
    return FunnelEvent(
        campaign_id=campaign if isinstance(campaign, int) else campaign.pk,
        kind=kind,
        service=service[:20],
        visitor=seen.visitor,
        subscription=subscription,
        referrer_domain=seen.referrer_domain,
        country=seen.country,
        device=seen.device,
        in_app_browser=seen.in_app_browser,
        created_at=timezone.now(),
        **(seen.utm if utm is None else utm),
    )


def record(kind: str, campaign: Campaign | int, seen: Visit, **fields) -> None:
    """Write one FunnelEvent now: a single INSERT. `utm` overrides the request's own (a callback has none)."""
    event(kind, campaign, seen, **fields).save(force_insert=True)


class ViewBuffer:
    """Page views wait here, per process, as plain rows, and are written together when FUNNEL_BATCH_SIZE have
    gathered or the oldest is FUNNEL_FLUSH_SECONDS old (a timer, armed when a view starts waiting; checked at
    each view too, and at exit): one binary COPY on PostgreSQL (a few microseconds a row, against tens for an
    INSERT's parameters), `bulk_create` elsewhere. Most warm views then make no database query at all, and
    none makes more than one. The price: a crashed process loses the views it had not written yet (at most a
    batch). Clicks, authorizations, opt-ins and smart-link clicks are never buffered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[tuple] = []
        self.oldest = 0.0
        self.timer: threading.Timer | None = None

    def add(self, row: tuple) -> None:
        with self.lock:
            if not self.rows:
                self.oldest = time.monotonic()
            self.rows.append(row)
            due = (
                len(self.rows) >= settings.FUNNEL_BATCH_SIZE
                or time.monotonic() - self.oldest >= settings.FUNNEL_FLUSH_SECONDS
            )
            batch, self.rows = (self.rows, []) if due else ([], self.rows)
            if self.rows and self.timer is None:  # a quiet page: its views are written on time all the same
                self.timer = threading.Timer(settings.FUNNEL_FLUSH_SECONDS, self.flush_on_time)
                self.timer.daemon = True
                self.timer.start()
            elif not self.rows and self.timer is not None:  # nothing waits any more
                self.timer.cancel()
                self.timer = None
        if batch:
            self.write(batch)

    def flush(self) -> None:
        with self.lock:
            batch, self.rows = self.rows, []
            timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()
        if batch:
            self.write(batch)

    def flush_on_time(self) -> None:
        """The timer's: write what waits, on this thread's own database connection, then close it."""
        try:
            self.flush()
        finally:
            connection.close()

    def write(self, batch: list[tuple]) -> None:
        try:
            if connection.vendor == "postgresql":
                table, columns = FunnelEvent._meta.db_table, ", ".join(VIEW_COLUMNS)
                with (
                    connection.cursor() as cursor,
                    connection.wrap_database_errors,
                    cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN (FORMAT BINARY)') as copy,
                ):
                    copy.set_types(list(VIEW_COLUMNS.values()))
                    for row in batch:
                        copy.write_row(row)
            else:
                events = [FunnelEvent(**dict(zip(VIEW_COLUMNS, row, strict=True))) for row in batch]
                FunnelEvent.objects.bulk_create(events)
        except DatabaseError as exc:  # a campaign deleted meanwhile, the database away: never the fan's problem
            logger.warning("Dropped %d page views: %s", len(batch), exc.__class__.__name__)


# A buffered page view's columns, with their types for a binary COPY: nothing for either end to format or parse
# as text (half the client's CPU a row of a text COPY).
VIEW_COLUMNS = {
    "campaign_id": "bigint",
    "kind": "text",
    "visitor": "text",
    "referrer_domain": "text",
    "country": "text",
    "device": "text",
    "in_app_browser": "text",
    "created_at": "timestamptz",
    **dict.fromkeys(UTM_FIELDS, "text"),
    "service": "text",
}
views = ViewBuffer()
atexit.register(views.flush)


def record_view(campaign: Campaign, seen: Visit) -> None:
    """Buffer a page view: a row of VIEW_COLUMNS (no model instance: views are the page's hot path)."""
    utm = seen.utm
    views.add(
        (
            campaign.pk,
            FunnelEvent.Kind.VIEW.value,
            seen.visitor,
            seen.referrer_domain,
            seen.country,
            seen.device,
            seen.in_app_browser,
            timezone.now(),
            *(utm.get(name, "") for name in UTM_FIELDS),
            "",
        )
    )


def keep_utm_for_authorization(session, slug: str, seen: Visit) -> None:
    """Remember the click's UTM values so the authorization, which comes back without them, carries them."""
    if seen.utm:
        kept = {k: v for k, v in session.get(UTM_SESSION_KEY, {}).items() if k != slug}
        session[UTM_SESSION_KEY] = {**dict(list(kept.items())[-9:]), slug: seen.utm}


def utm_for_authorization(session, slug: str) -> dict[str, str]:
    kept = session.get(UTM_SESSION_KEY, {}).get(slug, {})
    return {name: clean_utm(str(kept[name])) for name in UTM_FIELDS if isinstance(kept, dict) and kept.get(name)}
