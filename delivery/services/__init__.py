"""The streaming services the project talks to, by key.

`SERVICES` is the one registry: choices, templates and delivery are built from it.
"""

from delivery.services.apple_music import AppleMusic
from delivery.services.base import (
    AccountNotAllowed,
    Profile,
    RateLimited,
    ReleaseNotFound,
    Service,
    ServiceError,
    ServicePaused,
    TokenRevoked,
    Tokens,
)
from delivery.services.deezer import Deezer
from delivery.services.spotify import Spotify

SERVICES: dict[str, type[Service]] = {cls.key: cls for cls in (Spotify, AppleMusic, Deezer)}


def service_choices() -> list[tuple[str, str]]:
    return [(key, cls.label) for key, cls in SERVICES.items()]


def get_service(key: str) -> Service:
    return SERVICES[key]()


def enabled_services() -> list[type[Service]]:
    return [cls for cls in SERVICES.values() if cls.is_enabled()]


def staff_warnings(campaign) -> list[str]:
    """Each offered service's warnings about `campaign`, for the campaign admin."""
    return [warning for cls in campaign.offered_services() for warning in cls().staff_warnings(campaign)]


__all__ = [
    "SERVICES",
    "AccountNotAllowed",
    "Profile",
    "RateLimited",
    "Service",
    "ReleaseNotFound",
    "ServiceError",
    "ServicePaused",
    "TokenRevoked",
    "Tokens",
    "enabled_services",
    "get_service",
    "service_choices",
    "staff_warnings",
]
