"""Spotify: Authorization Code flow with PKCE, the fan's profile, and release-day library writes.

Base URLs come from settings (SPOTIFY_ACCOUNTS_URL, SPOTIFY_API_URL) so the same code talks to Spotify or to
the project's sandbox (delivery/sandbox/).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import requests
from django.conf import settings

from delivery.services.base import Profile, RateLimited, Service, ServiceError, TokenRevoked, Tokens

if TYPE_CHECKING:
    from releases.models import Campaign, Release

SCOPE_WORDS = {
    "user-library-modify": "Save this release to your Spotify library on release day.",
    "user-follow-modify": "Follow the artist on Spotify.",
    "user-read-email": "Read your email address, so we can email you when it drops.",
}


class Spotify(Service):
    key = "spotify"
    label = "Spotify"
    # Refresh tokens expire six months after the fan authorized, however often they are refreshed.
    # developer.spotify.com/blog/2026-06-18-refresh-token-expiration
    authorization_lifetime = dt.timedelta(days=182)

    def __init__(self) -> None:
        super().__init__()
        self.accounts_url = settings.SPOTIFY_ACCOUNTS_URL
        self.api_url = settings.SPOTIFY_API_URL
        self.client_id = settings.SPOTIFY_CLIENT_ID
        self.client_secret = settings.SPOTIFY_CLIENT_SECRET
        self.legacy_library = settings.SPOTIFY_LIBRARY_API == "legacy"

    @classmethod
    def is_enabled(cls) -> bool:
        return settings.SPOTIFY_ENABLED

    def scopes_for(self, campaign: Campaign, *, email_opt_in: bool) -> list[str]:
        scopes = ["user-library-modify"]
        if campaign.follow_artist:
            scopes.append("user-follow-modify")
        if email_opt_in:
            scopes.append("user-read-email")
        return scopes

    def scope_descriptions(self, scopes: list[str]) -> list[str]:
        return [SCOPE_WORDS[scope] for scope in scopes if scope in SCOPE_WORDS]

    def authorize_url(self, *, redirect_uri: str, state: str, scopes: list[str], code_challenge: str) -> str:
        """developer.spotify.com/documentation/web-api/tutorials/code-pkce-flow"""
        query = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": " ".join(scopes),
            "code_challenge_method": "S256",
            "code_challenge": code_challenge,
        }
        return f"{self.accounts_url}/authorize?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        """developer.spotify.com/documentation/web-api/tutorials/code-flow (Basic client auth, plus PKCE)"""
        return self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )

    def refresh(self, refresh_token: str) -> Tokens:
        """developer.spotify.com/documentation/web-api/tutorials/refreshing-tokens

        The answer may carry a new refresh token; the old one must then be treated as dead.
        """
        return self._token_request({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_request(self, form: dict[str, str]) -> Tokens:
        response = self.request(
            "POST", f"{self.accounts_url}/api/token", data=form, auth=(self.client_id, self.client_secret)
        )
        body = self._json(response)
        try:
            return Tokens(
                access_token=body["access_token"],
                refresh_token=body.get("refresh_token"),
                expires_in=int(body.get("expires_in", 3600)),
                scope=body.get("scope", ""),
            )
        except (KeyError, TypeError, ValueError):
            raise ServiceError("Spotify's token answer was not understood.") from None

    def profile(self, access_token: str) -> Profile:
        """developer.spotify.com/documentation/web-api/reference/get-current-users-profile

        `account_id` (May 2026) is the stable key where present; `email` and `country` may be absent.
        """
        body = self._json(self.request("GET", f"{self.api_url}/v1/me", headers=self._bearer(access_token)))
        user_id = body.get("account_id") or body.get("id")
        if not user_id:
            raise ServiceError("Spotify's profile answer had no user id.")
        return Profile(
            user_id=str(user_id),
            display_name=body.get("display_name") or str(body.get("id", "")),
            email=body.get("email") or "",
            country=body.get("country") or "",
        )

    def can_deliver(self, release: Release) -> bool:
        return bool(release.spotify_uri)

    def listen_url(self, release: Release) -> str:
        """open.spotify.com/album/<id> or /track/<id>, from the release's Spotify URI."""
        if not release.spotify_uri:
            return ""
        kind, spotify_id = release.spotify_uri.split(":")[1:]
        return f"https://open.spotify.com/{kind}/{spotify_id}"

    def save_release(self, access_token: str, release: Release) -> None:
        """developer.spotify.com/documentation/web-api/reference/save-library-items (PUT /v1/me/library);
        with SPOTIFY_LIBRARY_API=legacy: .../save-albums-user and .../save-tracks-user."""
        kind, spotify_id = release.spotify_uri.split(":")[1:]
        if self.legacy_library:
            self.request(
                "PUT",
                f"{self.api_url}/v1/me/{kind}s",
                params={"ids": spotify_id},
                headers=self._bearer(access_token),
            )
        else:
            self._put_library(access_token, [release.spotify_uri])

    def follow_artist(self, access_token: str, release: Release) -> None:
        """developer.spotify.com/documentation/web-api/reference/save-library-items with an artist URI;
        with SPOTIFY_LIBRARY_API=legacy: .../follow-artists-users (PUT /v1/me/following?type=artist)."""
        artist_uri = release.artist.spotify_uri
        if self.legacy_library:
            self.request(
                "PUT",
                f"{self.api_url}/v1/me/following",
                params={"type": "artist", "ids": artist_uri.rsplit(":", 1)[1]},
                headers=self._bearer(access_token),
            )
        else:
            self._put_library(access_token, [artist_uri])

    def _put_library(self, access_token: str, uris: list[str]) -> None:
        self.request(
            "PUT",
            f"{self.api_url}/v1/me/library",
            params={"uris": ",".join(uris)},
            headers=self._bearer(access_token),
        )

    @staticmethod
    def _bearer(access_token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {access_token}"}

    @staticmethod
    def _json(response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            raise ServiceError("Spotify answered with something that is not JSON.") from None
        if not isinstance(body, dict):
            raise ServiceError("Spotify answered with an unexpected JSON shape.")
        return body

    def raise_for_response(self, response: requests.Response) -> None:
        """One place turns Spotify's error answers into ServiceErrors.

        Accounts errors: {"error": "invalid_grant", "error_description": "..."} (developer.spotify.com/
        documentation/web-api/tutorials/refreshing-tokens); Web API errors: {"error": {"status", "message"}}
        (developer.spotify.com/documentation/web-api/concepts/api-calls#response-status-codes).
        """
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code, detail = str(error.get("reason", "")), str(error.get("message", ""))
        else:
            code, detail = (
                str(error or ""),
                str(body.get("error_description", "")) if isinstance(body, dict) else "",
            )
        if status == 429:
            retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            reason = "Spotify quota exceeded." if code == "QUOTA_EXCEEDED" else "Rate limited by Spotify."
            raise RateLimited(retry_after, reason)
        if code == "invalid_grant":
            raise TokenRevoked(
                f"The fan's Spotify authorization is no longer valid ({detail or 'invalid_grant'}).",
                status=status,
            )
        if code == "invalid_client":
            raise ServiceError(
                "Spotify rejected our app's credentials (check SPOTIFY_CLIENT_ID/SECRET).",
                permanent=True,
                status=status,
            )
        if status == 401 and response.request.url.startswith(self.accounts_url):
            raise TokenRevoked("Spotify refused to refresh the fan's authorization (401).", status=status)
        if status >= 500:
            raise ServiceError(f"Spotify had a server error ({status}).", status=status)
        if status == 401:
            # An access token we just received was refused: the next attempt refreshes and learns the truth.
            raise ServiceError("Spotify refused the access token (401).", status=status)
        if status == 403:
            raise ServiceError(
                f"Spotify refused the action: {detail or 'forbidden'} (403).", permanent=True, status=status
            )
        raise ServiceError(
            f"Spotify rejected the request: {detail or code or 'error'} ({status}).",
            permanent=True,
            status=status,
        )


def _parse_retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0
