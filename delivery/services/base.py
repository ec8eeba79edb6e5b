"""What every streaming service client offers, and the errors it raises.

One class per service (delivery/services/<service>.py) implements `Service`. Callers never ask which service
they hold: they call these methods and handle `ServiceError` by its flags.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import requests
from django.conf import settings

if TYPE_CHECKING:
    from releases.models import Campaign, Release


class ServiceError(Exception):
    """A call to a service failed. `message` is short and safe to show to label staff.

    `permanent` errors are not retried. `revoked` means the fan's authorization is gone (never retried).
    `retry_after` is the wait, in seconds, the service asked for (429).
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        revoked: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent or revoked
        self.revoked = revoked
        self.retry_after = retry_after
        self.status = status


class TokenRevoked(ServiceError):
    def __init__(
        self, message: str = "The fan's authorization was revoked or has expired.", **kwargs
    ) -> None:
        super().__init__(message, revoked=True, **kwargs)


class RateLimited(ServiceError):
    def __init__(self, retry_after: float, message: str = "Rate limited by the service.", **kwargs) -> None:
        super().__init__(message, retry_after=retry_after, status=429, **kwargs)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str | None  # a new one when the service rotated it; None when it kept the old one
    expires_in: int
    scope: str = ""

    def __repr__(self) -> str:  # never print a token
        rotated = self.refresh_token is not None
        return f"Tokens(expires_in={self.expires_in}, scope={self.scope!r}, rotated={rotated})"


@dataclass(frozen=True)
class Profile:
    user_id: str  # the stable account key
    display_name: str
    email: str = ""
    country: str = ""


class Service:
    """The interface one streaming service implements (see delivery/services/spotify.py)."""

    key: ClassVar[str]
    label: ClassVar[str]
    # How long an authorization lasts however often it is refreshed (None: until revoked).
    authorization_lifetime: ClassVar[dt.timedelta | None] = None

    def __init__(self) -> None:
        self.timeout = settings.SERVICE_TIMEOUT_SECONDS
        self.http = requests.Session()

    @classmethod
    def is_enabled(cls) -> bool:
        raise NotImplementedError

    # Authorization (the fan's browser, then our callback)
    def scopes_for(self, campaign: Campaign, *, email_opt_in: bool) -> list[str]:
        raise NotImplementedError

    def scope_descriptions(self, scopes: list[str]) -> list[str]:
        raise NotImplementedError

    def authorize_url(self, *, redirect_uri: str, state: str, scopes: list[str], code_challenge: str) -> str:
        raise NotImplementedError

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        raise NotImplementedError

    def profile(self, access_token: str) -> Profile:
        raise NotImplementedError

    # Release day (the worker)
    def refresh(self, refresh_token: str) -> Tokens:
        raise NotImplementedError

    def save_release(self, access_token: str, release: Release) -> None:
        raise NotImplementedError

    def follow_artist(self, access_token: str, release: Release) -> None:
        raise NotImplementedError

    def can_deliver(self, release: Release) -> bool:
        """Whether the release carries what this service needs to save it (e.g. its URI)."""
        raise NotImplementedError

    # Public pages
    def listen_url(self, release: Release) -> str:
        """A public web link to the release on this service ("" when the release has no id here)."""
        return ""

    # One place turns an HTTP failure into a ServiceError
    def request(self, method: str, url: str, **kwargs) -> requests.Response:
        try:
            response = self.http.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise ServiceError(f"{self.label} did not answer in time.") from None
        except requests.ConnectionError:
            raise ServiceError(f"Could not connect to {self.label}.") from None
        if response.status_code >= 400:
            self.raise_for_response(response)
        return response

    def raise_for_response(self, response: requests.Response) -> None:
        raise NotImplementedError
