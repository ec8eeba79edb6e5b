"""Everything cached about a campaign page, so that a warm page view reads no database row.

Two things are in the `pages` cache, never anything about a visitor: the page's data (`campaign_page`: the
campaign with its release and artist, and the release's links), and the page rendered once per variant
(`campaign_html`: state, in-app browser, smart-link order, the visitor's release time) from fans.pages' context,
with slots for the per-request parts, which `fill_campaign_html` fills: the UTM fields, the countdown and, in
Android in-app browsers, the "open in your browser" link (it carries the visit's UTM values). Views with no UTM
values, most of them, share the filled page within each second, in each process's memory (`page_content`).
The page holds no CSRF token: its forms fetch one when pressed (fans.views.form_token), so a view mints none. A
warm view's page view waits in fans.tracking's ViewBuffer, written with others in one query: most warm views
make no query at all, none more than one. Each load of the data gets a new `stamp`, which
names its rendered variants, so dropping the data retires them too.

The cache is the `pages` alias (presave_site/settings.py): Redis when REDIS_URL is set, so every server
process sees an edit at once; otherwise each process's memory, where an edit reaches the process that saved
it at once and the others within PAGE_CACHE_SECONDS. fans/signals.py calls `forget` whenever staff save or
delete a campaign, release, artist or link, and when the delivery engine moves a campaign's status. A fan's
pre-save start (fans.authorization.start) reads the campaign's status from the database, so a page another
process still holds can't start a sign-in for a pre-save that has closed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote, unquote

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.template.loader import render_to_string
from django.utils.html import escape

from fans import consent, inapp, smartlink
from fans.errors import NotFound
from fans.pages import Countdown, campaign_context
from releases.models import Campaign, ReleaseLink

CACHE_ALIAS = "pages"
_MISSING = "missing"
SLUG_MAX = Campaign._meta.get_field("slug").max_length
NO_SUCH_PAGE = "There's no pre-save at this address. Check the link, or ask the artist for a new one."


@dataclass(frozen=True)
class CampaignPage:
    campaign: Campaign  # with release and artist loaded
    links: list[ReleaseLink]
    stamp: str  # new at each load: names the rendered variants of this version of the page

    @property
    def release(self):
        return self.campaign.release


class ObjectCache(LocMemCache):
    """The `pages` cache without Redis: Django's local-memory cache, keeping values as they are instead of
    pickling them (a warm page view would unpickle twice). Only for values nobody mutates: the CampaignPage
    (a frozen dataclass whose models the views only read) and the pages' HTML pieces (copied before filling)."""

    def get(self, key, default=None, version=None):
        key = self.make_key(key, version=version)
        with self._lock:
            if self._has_expired(key):
                self._delete(key)
                return default
            return self._cache[key]

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        key = self.make_key(key, version=version)
        with self._lock:
            self._set(key, value, timeout)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        key = self.make_key(key, version=version)
        with self._lock:
            if self._has_expired(key):
                self._set(key, value, timeout)
                return True
            return False

    def incr(self, key, delta=1, version=None):
        raise NotImplementedError("ObjectCache holds pages, not counters.")


def key(slug: str) -> str:
    """The page's cache key. It names the consent wording (fans.consent.WORDING_VERSION): pages a shared cache
    kept from before a deploy that changed the words are not shown, since each consent records the version."""
    return f"fans:campaign:{consent.WORDING_VERSION}:{slug}"


def load(slug: str) -> CampaignPage | None:
    campaign = Campaign.objects.public().filter(slug=slug).first()
    if campaign is None:
        return None
    links = list(ReleaseLink.objects.filter(release_id=campaign.release_id))
    return CampaignPage(campaign, links, stamp=secrets.token_hex(8))


def campaign_page(slug: str) -> CampaignPage:
    """The visible campaign at `slug` and its links, from the cache when warm; a 404 otherwise."""
    if len(slug) > SLUG_MAX:
        raise NotFound(NO_SUCH_PAGE)
    cache = caches[CACHE_ALIAS]
    page = cache.get(key(slug))
    if page is None:
        page = load(slug) or _MISSING
        # Unknown slugs are remembered briefly too, so a flood of bad addresses stays off the database.
        cache.set(key(slug), page, settings.PAGE_CACHE_SECONDS if page != _MISSING else 10)
    if page == _MISSING:
        raise NotFound(NO_SUCH_PAGE)
    return page


def forget(slugs: Iterable[str]) -> None:
    caches[CACHE_ALIAS].delete_many([key(slug) for slug in set(slugs) if slug])


# The page rendered once per variant: per-request parts are slots ------------------------------------------

SLOT = "\x00"  # slots are "\x00name\x00": the cached page is kept split on SLOT, names at the odd places
UTM_SLOT = f"{SLOT}utm{SLOT}"
INTENT_SLOT = "intent:"  # "\x00intent:<page URL, %-encoded>\x00": the Android intent link to that page, with the UTM


def intent_slot(page_url: str) -> str:
    """The slot of the Android "open in your browser" link to `page_url`: %-encoded, so the template's escaping
    leaves the URL as it is."""
    return f"{SLOT}{INTENT_SLOT}{quote(page_url, safe='')}{SLOT}"


class CountdownSlots:
    """Stands in for a Countdown when the page is rendered once for the cache: each value is a slot that
    `fill_campaign_html` replaces with the time left at each request."""

    parts = [(f"{SLOT}countdown:{unit}{SLOT}", unit) for unit in ("days", "hours", "minutes", "seconds")]
    seconds_left = f"{SLOT}countdown:left{SLOT}"


class Rendered(NamedTuple):
    """A variant of the page, rendered: `parts` is its HTML split around its slots, `key` names it."""

    key: str
    parts: list[str]
    countdown: Countdown | None  # the time left, to fill the countdown's slots with


def campaign_html(page: CampaignPage, *, country: str, preferred: str, in_app: inapp.InAppBrowser | None) -> Rendered:
    """The campaign page's HTML split around its slots (the UTM fields, the countdown and the Android intent
    link), and the countdown to fill them with. From the `pages` cache, keyed by what makes two
    renderings differ (the page's stamp, its state, the in-app browser, the smart-link order, and per market the
    release time in the visitor's market); rendered on a miss. The state is read from the clock at each request,
    never cached: at the release instant a pre-save rendering cached a moment before is simply no longer asked
    for, whatever its lifetime left, in Redis or in each process's memory."""
    release, campaign = page.release, page.campaign
    seen = campaign.seen_from(country)  # per market, the visitor's release time: part of what the page says
    order = ""
    if seen.is_out:
        links = smartlink.ordered(smartlink.destinations(release, page.links), country=country, preferred=preferred)
        order = ",".join(link.key for link in links)
    state = "out" if seen.is_out else ("open" if seen.accepting else "closed")
    browser = in_app.key + in_app.os if in_app else ""
    html_key = f"fans:html:{page.stamp}:{state}:{browser}:{order}:{seen.release_at.timestamp():.0f}"
    cache = caches[CACHE_ALIAS]
    parts = cache.get(html_key)
    if parts is None:
        page_url = page.campaign.public_url()
        context = campaign_context(
            page, country=country, preferred=preferred, in_app=in_app, page_url=page_url, seen=seen
        )
        slotted = {
            **context,
            "token_on_submit": True,  # no {% csrf_token %}: the forms fetch it when pressed
            "utm_slot": UTM_SLOT,
            "intent_url": intent_slot(page_url) if context["intent_url"] else "",
            "countdown": CountdownSlots() if context["countdown"] else None,
        }
        # Forms strip NUL characters from what staff type, so the only ones in the page are the slots'.
        parts = render_to_string("fans/campaign.html", slotted).split(SLOT)
        cache.set(html_key, parts, settings.PAGE_CACHE_SECONDS)
    return Rendered(html_key, parts, Countdown(seen.release_at) if not seen.is_out else None)


# The filled page of a view with no UTM values (most views), per variant and second: nothing in it is about the
# visitor, and only the countdown changes, once a second. A few dozen entries at most, cleared when full.
_filled: dict[tuple[str, str], bytes] = {}
FILLED_MAX = 64


def page_content(rendered: Rendered, *, utm: dict[str, str]) -> bytes:
    """The page's bytes, its slots filled. A view with no UTM values gets the bytes another such view of the same
    variant got in the same second, if there was one, in this process: a busy page is filled once a second."""
    if utm:
        return fill_campaign_html(rendered.parts, utm=utm, countdown=rendered.countdown).encode()
    key = (rendered.key, rendered.countdown.seconds_left if rendered.countdown else "")
    content = _filled.get(key)
    if content is None:
        if len(_filled) >= FILLED_MAX:
            _filled.clear()
        content = _filled[key] = fill_campaign_html(rendered.parts, utm={}, countdown=rendered.countdown).encode()
    return content


def fill_campaign_html(parts: list[str], *, utm: dict[str, str], countdown: Countdown | None) -> str:
    """The page with its slots filled: one join over the cached pieces."""
    slots = {
        "utm": "".join(
            f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
            for name, value in sorted(utm.items())
        ),
    }
    if countdown is not None:
        slots.update((f"countdown:{unit}", value) for value, unit in countdown.parts)
        slots["countdown:left"] = countdown.seconds_left
    filled = parts.copy()
    for index in range(1, len(parts), 2):
        name = parts[index]
        if name.startswith(INTENT_SLOT):
            filled[index] = escape(inapp.android_intent_url(unquote(name.removeprefix(INTENT_SLOT)), utm))
        else:
            filled[index] = slots.get(name, "")
    return "".join(filled)
