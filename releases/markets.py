"""Markets (ISO 3166-1 alpha-2 country codes) and when a release goes live in each.

Streaming services release at local midnight (or the release's local time) in each market. A market's
clock is its capital's time zone; countries spanning several zones use the one their music industry
releases by (e.g. New York for the US).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from pathlib import Path

MARKET_PATTERN = re.compile(r"^[A-Z]{2}$")

# The zone releases follow in countries with several time zones, and in markets zone.tab does not list.
RELEASE_ZONES = {
    "US": "America/New_York",
    "CA": "America/Toronto",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "ID": "Asia/Jakarta",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "DE": "Europe/Berlin",
    "MY": "Asia/Kuala_Lumpur",
    "CD": "Africa/Kinshasa",
    "EC": "America/Guayaquil",
    "UA": "Europe/Kyiv",
    "XK": "Europe/Belgrade",  # Kosovo: a market with no code of its own in the tz database's zone.tab
    "FM": "Pacific/Pohnpei",  # Micronesia: its capital's (zone.tab lists Chuuk, an hour behind, first)
}

# Where a release goes live first: local midnight on the international date line's west side; and last.
EARLIEST_ZONE = "Pacific/Kiritimati"  # UTC+14
LATEST_ZONE = "Etc/GMT+12"  # UTC-12 (Baker Island): no market is later


@functools.cache
def _zone_table() -> dict[str, str]:
    """Country → first zone listed for it in the system's tz database (zone.tab)."""
    table: dict[str, str] = {}
    for folder in zoneinfo.TZPATH:
        path = Path(folder) / "zone.tab"
        if path.exists():
            for line in path.read_text().splitlines():
                if line and not line.startswith("#"):
                    country, _coordinates, zone, *_ = line.split("\t")
                    table.setdefault(country, zone)
            break
    return table


def normalize(market: str) -> str:
    """An upper-case two-letter market code, or "" when `market` is not one."""
    market = (market or "").strip().upper()
    return market if MARKET_PATTERN.match(market) else ""


def is_known(market: str) -> bool:
    """Whether `market` is a country this module knows the release clock of (else: UTC, a guess). Without the
    system's tz database (zone.tab) none can be checked, and every code passes."""
    table = _zone_table()
    return market in RELEASE_ZONES or market in table or not table


def country(value: str) -> str:
    """`value` as a market code when it names a real country (`is_known`), else "": a proxy's "XX" (unknown) or
    "T1" (Tor), a region such as "EU", a blank or a typo."""
    market = normalize(value)
    return market if market and is_known(market) else ""


def of_fan(market: str, fan_country: str) -> str:
    """A fan's market, from their pre-save's `market` and their `fan_country` (Fan.country), as issue #4 orders
    them: the market when it names a real country (the service profile's, else the country seen at sign-up); for
    a pre-save without one (a sign-up that learnt no country, an older row, an admin's edit, an import), the fan's
    country when that names one; else "" (`Campaign.market_for` reads it as the campaign's default market)."""
    return country(market) or ("" if market else country(fan_country))


def zone_for(market: str) -> zoneinfo.ZoneInfo:
    name = RELEASE_ZONES.get(market) or _zone_table().get(market) or "UTC"
    return zoneinfo.ZoneInfo(name)


def instant(day: dt.date, time: dt.time, zone: str) -> dt.datetime:
    """The UTC instant of the local `day` and `time` in the time zone named `zone` (e.g. Europe/London)."""
    return dt.datetime.combine(day, time, tzinfo=zoneinfo.ZoneInfo(zone)).astimezone(dt.UTC)


def local_release_instant(release_date: dt.date, release_time: dt.time, market: str) -> dt.datetime:
    """The UTC instant the release goes live in `market` (its local date and time there)."""
    return instant(release_date, release_time, zone_for(market).key)


def earliest_release_instant(release_date: dt.date, release_time: dt.time) -> dt.datetime:
    """The first instant the release is live anywhere on Earth."""
    return instant(release_date, release_time, EARLIEST_ZONE)


def latest_release_instant(release_date: dt.date, release_time: dt.time) -> dt.datetime:
    """The instant the release is live everywhere on Earth (the last market's local time)."""
    return instant(release_date, release_time, LATEST_ZONE)


def next_release_instant(release_date: dt.date, release_time: dt.time, after: dt.datetime) -> dt.datetime | None:
    """The first instant after `after` at which the release goes live in some market; None once it is out in
    every market (markets: the system's zone table and RELEASE_ZONES)."""
    instants = (
        local_release_instant(release_date, release_time, market) for market in {*_zone_table(), *RELEASE_ZONES}
    )
    return min((instant for instant in instants if instant > after), default=None)
