"""After the release the campaign URL is a smart link: one button per place to listen, in the order that
suits the fan's country, with the platform the fan chose last time first.

The destinations are the release's links entered by the label (ReleaseLink) and, for enabled services the
label entered no link for, the service's own listen URL. A click goes through our redirect view, which only
ever sends the fan to one of these destinations (never to a URL from the request).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass

from django.urls import reverse
from django.utils import dateformat

from delivery.services import enabled_services
from fans.errors import NotOutYet
from releases.models import Campaign, Release, ReleaseLink, is_web_url

PREFERENCE_COOKIE = "fans_platform"
PREFERENCE_MAX_AGE = 365 * 86_400

# Which platforms fans of a country reach for first (market shares as reported by the press, rounded to an
# order); platforms not listed follow in DEFAULT_ORDER. Edit freely: it only orders buttons.
DEFAULT_ORDER = [
    "spotify",
    "apple_music",
    "youtube_music",
    "amazon_music",
    "deezer",
    "tidal",
    "soundcloud",
    "bandcamp",
]
COUNTRY_ORDER: dict[str, list[str]] = {
    "US": ["spotify", "apple_music", "amazon_music", "youtube_music"],
    "CA": ["spotify", "apple_music", "amazon_music", "youtube_music"],
    "GB": ["spotify", "apple_music", "amazon_music", "youtube_music"],
    "DE": ["spotify", "amazon_music", "apple_music", "deezer"],
    "FR": ["deezer", "spotify", "apple_music", "youtube_music"],
    "BE": ["spotify", "deezer", "apple_music"],
    "BR": ["spotify", "deezer", "youtube_music", "amazon_music"],
    "JP": ["apple_music", "amazon_music", "youtube_music", "spotify"],
    "KR": ["youtube_music", "apple_music", "spotify"],
    "IN": ["youtube_music", "spotify", "amazon_music", "apple_music"],
    "NO": ["spotify", "tidal", "apple_music"],
}


@dataclass(frozen=True)
class Destination:
    key: str  # a ReleaseLink.Platform value or a service key
    label: str
    url: str


def destinations(release: Release, links: Iterable[ReleaseLink]) -> list[Destination]:
    """Every place to listen: the label's links, then enabled services' own listen URLs not already there."""
    found = {
        link.platform: Destination(link.platform, link.get_platform_display(), link.url)
        for link in links
        if is_web_url(link.url)  # a row that slipped past validation never becomes a button or a redirect
    }
    for cls in enabled_services():
        if cls.key not in found and (url := cls().listen_url(release)):
            found[cls.key] = Destination(cls.key, cls.label, url)
    return list(found.values())


def ordered(found: list[Destination], *, country: str = "", preferred: str = "") -> list[Destination]:
    """`found` in the order for `country`, the fan's `preferred` platform first."""
    order = COUNTRY_ORDER.get(country, []) + DEFAULT_ORDER

    def rank(destination: Destination) -> tuple[int, int]:
        if destination.key == preferred:
            return (0, 0)
        return (1, order.index(destination.key) if destination.key in order else len(order))

    return sorted(found, key=rank)


def find(found: list[Destination], key: str) -> Destination | None:
    return next((destination for destination in found if destination.key == key), None)


def listen_url(campaign: Campaign, found: list[Destination], key: str) -> str:
    """Where a "Listen now" for the service `key` goes (the thank-you page's): the smart link's click for it, which
    counts it and redirects, when `found` has a destination there; else the campaign page, the smart link itself."""
    if find(found, key) is None:
        return campaign.get_absolute_url()
    return reverse("fans:listen", args=[campaign.slug, key])


def not_out_yet(campaign: Campaign, country: str = "") -> NotOutYet:
    """What a smart-link click gets where the release is not out yet: when it comes out for the fan, at their
    market's local release time on a per-market campaign, and the way back to the campaign page."""
    release_at, zone = campaign.firing_time(country), campaign.release_zone(country)
    local = release_at.astimezone(zoneinfo.ZoneInfo(zone))
    when = f"{dateformat.format(local, 'l j F Y')} at {dateformat.format(local, 'H:i')} ({zone})"
    title = campaign.release.title
    if campaign.firing == Campaign.Firing.PER_MARKET and country:
        message = f"{title} isn't out in your country yet: it comes out there on {when}, your local time."
    else:
        message = f"{title} isn't out yet: it comes out on {when}."
    return NotOutYet(message, retry_url=campaign.get_absolute_url())
