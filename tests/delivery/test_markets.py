"""Markets: local release times, and the country a fan's request comes from."""

import datetime as dt
import zoneinfo
from pathlib import Path

import pytest
from django.test import RequestFactory

from fans.geo import request_country
from releases import markets

FRIDAY = dt.date(2026, 12, 4)
MIDNIGHT = dt.time(0, 0)


@pytest.mark.parametrize(
    "market, utc",
    [
        ("GB", dt.datetime(2026, 12, 4, 0, 0, tzinfo=dt.UTC)),
        ("US", dt.datetime(2026, 12, 4, 5, 0, tzinfo=dt.UTC)),  # New York, EST
        ("JP", dt.datetime(2026, 12, 3, 15, 0, tzinfo=dt.UTC)),
        ("DE", dt.datetime(2026, 12, 3, 23, 0, tzinfo=dt.UTC)),
        ("AU", dt.datetime(2026, 12, 3, 13, 0, tzinfo=dt.UTC)),  # Sydney, daylight saving
        ("FR", dt.datetime(2026, 12, 3, 23, 0, tzinfo=dt.UTC)),  # from the system's zone table
        ("XK", dt.datetime(2026, 12, 3, 23, 0, tzinfo=dt.UTC)),  # Kosovo: not in the zone table
        ("FM", dt.datetime(2026, 12, 3, 13, 0, tzinfo=dt.UTC)),  # Micronesia: Palikir (UTC+11), not Chuuk
    ],
)
def test_release_goes_live_at_local_midnight(market, utc):
    assert markets.local_release_instant(FRIDAY, MIDNIGHT, market) == utc


def test_every_market_of_several_time_zones_has_its_capitals():
    """Where the zone table's first zone for a country keeps another time than the rest of it, the country is
    named in RELEASE_ZONES (its capital's zone), or is one checked to be its capital's."""
    first_is_the_capitals = {"CN", "GL", "KI", "MN", "PF", "PG", "UM", "AQ"}  # Beijing, Nuuk, Tarawa, …
    on = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
    zones: dict[str, list[str]] = {}
    table = next(Path(folder) / "zone.tab" for folder in zoneinfo.TZPATH if (Path(folder) / "zone.tab").exists())
    for line in table.read_text().splitlines():
        if line and not line.startswith("#"):
            country, _coordinates, zone, *_ = line.split("\t")
            zones.setdefault(country, []).append(zone)
    unsure = {
        country
        for country, names in zones.items()
        if len({on.astimezone(zoneinfo.ZoneInfo(name)).utcoffset() for name in names}) > 1
    }
    assert unsure - set(markets.RELEASE_ZONES) <= first_is_the_capitals


def test_earliest_release_instant_is_before_every_market():
    earliest = markets.earliest_release_instant(FRIDAY, MIDNIGHT)
    assert earliest == dt.datetime(2026, 12, 3, 10, 0, tzinfo=dt.UTC)
    for market in ("NZ", "JP", "GB", "US", "BR"):
        assert earliest <= markets.local_release_instant(FRIDAY, MIDNIGHT, market)


def test_unknown_market_uses_utc():
    assert markets.local_release_instant(FRIDAY, MIDNIGHT, "QQ") == dt.datetime(2026, 12, 4, tzinfo=dt.UTC)


@pytest.mark.parametrize("value, expected", [("gb", "GB"), (" us ", "US"), ("GBR", ""), ("1A", ""), ("", "")])
def test_market_codes_are_normalized(value, expected):
    assert markets.normalize(value) == expected


@pytest.mark.parametrize("value, expected", [("gb", "GB"), ("XK", "XK"), ("XX", ""), ("T1", ""), ("EU", ""), ("", "")])
def test_only_real_countries_are_markets(value, expected):
    assert markets.country(value) == expected


@pytest.mark.parametrize(
    "market, fan_country, expected",
    [("JP", "GB", "JP"), ("", "jp", "JP"), ("", "XX", ""), ("", "", ""), ("XX", "JP", ""), ("EU", "", "")],
)
def test_a_fans_market_is_their_pre_saves_else_for_one_without_their_country(market, fan_country, expected):
    """Only a blank market stands for the fan's country; an unreal one ("XX", "EU") stands for the campaign's
    default market ("")."""
    assert markets.of_fan(market, fan_country) == expected


@pytest.mark.parametrize(
    "headers, expected",
    [
        ({"HTTP_CF_IPCOUNTRY": "se"}, "SE"),
        ({"HTTP_CF_IPCOUNTRY": "XX", "HTTP_ACCEPT_LANGUAGE": "de-DE,de;q=0.9"}, "DE"),
        ({"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}, "GB"),
        ({"HTTP_ACCEPT_LANGUAGE": "fr;q=0.9, pt-BR"}, "BR"),
        ({"HTTP_ACCEPT_LANGUAGE": "zh-Hant-TW"}, "TW"),
        ({"HTTP_ACCEPT_LANGUAGE": "en"}, ""),
        ({"HTTP_ACCEPT_LANGUAGE": "x" * 5000}, ""),
        ({}, ""),
        # By q-value, not by place; q=0 means "not acceptable".
        ({"HTTP_ACCEPT_LANGUAGE": "fr-FR;q=0.1, de-DE;q=0.9"}, "DE"),
        ({"HTTP_ACCEPT_LANGUAGE": "de-DE;q=0, fr-FR"}, "FR"),
        ({"HTTP_ACCEPT_LANGUAGE": "de-DE;q=0.000, fr-FR;q=0.001"}, "FR"),
        ({"HTTP_ACCEPT_LANGUAGE": "de-DE;q=0"}, ""),
        ({"HTTP_ACCEPT_LANGUAGE": "en, en-GB;q=0.5, de-DE;q=0.4"}, "GB"),
        ({"HTTP_ACCEPT_LANGUAGE": "*;q=0.5, es-MX;q=0.8"}, "MX"),
        ({"HTTP_ACCEPT_LANGUAGE": "es-419, es-ES;q=0.9"}, "ES"),
        ({"HTTP_ACCEPT_LANGUAGE": "en_GB"}, "GB"),
        ({"HTTP_ACCEPT_LANGUAGE": "de-DE;q=0.5, fr-FR;q=0.5"}, "DE"),  # equal: as sent
        ({"HTTP_ACCEPT_LANGUAGE": "pt-BR;q=2, <script>"}, ""),  # malformed: tells nothing
        ({"HTTP_ACCEPT_LANGUAGE": "sv-SE," + "en;q=0.5," * 1000}, "SE"),  # cut at a comma within Django's cap
        ({"HTTP_CF_IPCOUNTRY": "IT", "HTTP_ACCEPT_LANGUAGE": "de-DE;q=0.9"}, "IT"),
        # Codes that name no country tell nothing: Tor, a region, a pseudo-locale.
        ({"HTTP_CF_IPCOUNTRY": "T1", "HTTP_ACCEPT_LANGUAGE": "fr-FR"}, "FR"),
        ({"HTTP_CF_IPCOUNTRY": "EU", "HTTP_ACCEPT_LANGUAGE": "de-DE"}, "DE"),
        ({"HTTP_ACCEPT_LANGUAGE": "en-XA, pt-BR;q=0.5"}, "BR"),
    ],
)
def test_country_seen_at_sign_up(headers, expected):
    assert request_country(RequestFactory().get("/", **headers)) == expected
