"""The campaign page's data, cached so that a warm page view reads no database row.

Two things are cached, never a CSRF token or anything about a visitor: the page's data (the campaign with its
release and artist, and the release's links), and the page rendered once per variant (state, in-app browser,
smart-link order) with slots for the per-request parts, which fans.pages.fill_campaign_html fills at each
request: the CSRF token, the UTM fields and the countdown. A warm view then writes one FunnelEvent: that INSERT
is its one database query. Each load of the data gets a new `stamp`, which names its rendered variants, so
dropping the data drops them too.

The cache is the `pages` alias (presave_site/settings.py): Redis when REDIS_URL is set, so every server
process sees an edit at once; otherwise each process's memory, where an edit reaches the process that saved
it at once and the others within PAGE_CACHE_SECONDS. fans/signals.py calls `forget` whenever staff save or
delete a campaign, release, artist or link.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache

from fans import consent
from fans.errors import NotFound
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
