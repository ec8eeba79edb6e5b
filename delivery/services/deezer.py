"""Deezer: OAuth with offline_access, the fan's profile, and release-day favourites and follows.

Base URLs come from settings (DEEZER_CONNECT_URL, DEEZER_API_URL) so the same code talks to Deezer or to the
project's sandbox (delivery/sandbox/deezer.py). Deezer has no refresh flow and no PKCE: with `offline_access`
the access token never expires, so it is the credential the vault keeps (`refresh_call` is None).

Deezer answers most errors with HTTP 200 and a body `{"error": {"type", "message", "code"}}`
(developers.deezer.com/api/errors); `check` looks inside every answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.conf import settings

from delivery.services.base import (
    Call,
    DeliveryCalls,
    Profile,
    RateLimited,
    Reply,
    Service,
    ServiceError,
    ServicePaused,
    TokenRevoked,
    Tokens,
    catalog_lookup,
    not_found_by_code,
)

if TYPE_CHECKING:
    from releases.models import Campaign, Release

ACTION_WORDS = {  # both through manage_library
    "save": "Add this release to your Deezer favourites on release day.",
    "follow": "Follow the artist on Deezer on release day.",
}
SCOPE_WORDS = {
    "basic_access": "See your Deezer name and account id.",
    "offline_access": "Keep this permission so we can act on release day, until that work is done or you take it back.",
    "email": "Read your email address, so we can email you when it drops.",
}

# developers.deezer.com/api/errors
QUOTA = 4
TOKEN_INVALID = 300
SERVICE_BUSY = 700
QUOTA_RETRY_AFTER_SECONDS = 5.0  # the quota counts requests over 5 seconds
# A 401/403 without Deezer's error body is its CDN or firewall refusing us, not a fan's token: every worker waits.
EDGE_DENIED_RETRY_SECONDS = 60.0
COMPILATION_ARTIST = "Various Artists"  # the artist Deezer files compilations under: never followed


class Deezer(Service):
    key = "deezer"
    label = "Deezer"
    action_words = ACTION_WORDS
    library_word = "favourites"  # Deezer's own word, and the consent's (ACTION_WORDS)
    scope_words = SCOPE_WORDS

    def __init__(self) -> None:
        super().__init__()
        self.connect_url = settings.DEEZER_CONNECT_URL
        self.api_url = settings.DEEZER_API_URL
        self.app_id = settings.DEEZER_APP_ID
        self.secret = settings.DEEZER_SECRET
        # release pk → (kind, Deezer id, Deezer artist id), found by resolve_release for this client's life
        self.found: dict[int, tuple[str, str, str]] = {}

    @classmethod
    def is_enabled(cls) -> bool:
        return settings.DEEZER_ENABLED

    def scopes_for(self, campaign: Campaign, *, email_opt_in: bool) -> list[str]:
        perms = ["basic_access", "offline_access"]
        if self.actions(campaign):  # adding favourites and following artists are both manage_library
            perms.append("manage_library")
        if email_opt_in:
            perms.append("email")
        return perms

    def authorize_url(self, *, redirect_uri: str, state: str, scopes: list[str], code_challenge: str) -> str:
        """developers.deezer.com/api/oauth (auth.php: app_id, redirect_uri, perms; no PKCE)"""
        query = {"app_id": self.app_id, "redirect_uri": redirect_uri, "perms": ",".join(scopes), "state": state}
        return f"{self.connect_url}/oauth/auth.php?{urlencode(query)}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> Tokens:
        """developers.deezer.com/api/oauth (access_token.php with app_id, secret, code; output=json).

        With offline_access `expires` is 0: the token lasts until the fan takes it back."""
        call = Call(
            "exchange",
            "GET",
            f"{self.connect_url}/oauth/access_token.php",
            params={"app_id": self.app_id, "secret": self.secret, "code": code, "output": "json"},
        )
        body = self.json_object(self.run(call))
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ServiceError("Deezer's token answer was not understood.")
        try:
            expires = int(body.get("expires", 0))
        except (TypeError, ValueError):
            expires = 0
        if expires:
            raise ServiceError("Deezer gave a token that expires (was offline_access granted?).", permanent=True)
        return Tokens(access_token=token, refresh_token=token, expires_in=0)

    def callback_error(self, params: Mapping[str, str]) -> str:
        """developers.deezer.com/api/oauth: a fan who refuses comes back with `error_reason=user_denied`."""
        reason = params.get("error_reason", "") or params.get("error", "")
        return "access_denied" if reason == "user_denied" else reason

    def profile(self, access_token: str) -> Profile:
        """developers.deezer.com/api/user (GET /user/me: id, name, email with the email permission, country)"""
        call = Call("profile", "GET", f"{self.api_url}/user/me", params={"access_token": access_token})
        body = self.json_object(self.run(call))
        if not body.get("id"):
            raise ServiceError("Deezer's profile answer had no user id.")
        return Profile(
            user_id=str(body["id"]),
            display_name=str(body.get("name") or body["id"]),
            email=str(body.get("email") or ""),
            country=str(body.get("country") or ""),
        )

    def resolve_release(self, release: Release) -> str:
        """developers.deezer.com/api/album (GET /album/upc:<upc>) and developers.deezer.com/api/track
        (GET /track/isrc:<isrc>); the answer names the artist to follow too."""
        found = self.found.get(release.pk)
        if found:
            return found[1]
        kind, code, value = catalog_lookup(release)
        lookup = f"{code}:{value}"
        try:
            body = self.json_object(self.run(Call("resolve", "GET", f"{self.api_url}/{kind}/{lookup}")))
        except ServiceError as exc:
            if exc.permanent:  # DataException 800: no such UPC/ISRC (yet)
                raise not_found_by_code(self.label, release) from None
            raise
        artist = body.get("artist") or {}
        item_id, artist_id = body.get("id"), artist.get("id")
        if not item_id:
            raise not_found_by_code(self.label, release)
        if str(artist.get("name") or "").strip().casefold() == COMPILATION_ARTIST.casefold():
            artist_id = None  # a compilation: following "Various Artists" is nobody's wish
        self.found[release.pk] = (kind, str(item_id), str(artist_id or ""))
        return str(item_id)

    def is_available(self, release: Release, market: str) -> bool:
        """developers.deezer.com/api/track (`available_countries`) and developers.deezer.com/api/album: an
        album's `available` is true once it is out anywhere, so the market is read from its first track's
        `available_countries` (`tracks.data`) when the album lists it, else from `available`."""
        self.resolve_release(release)
        kind, item_id, _ = self.found[release.pk]
        body = self.json_object(self.run(Call("availability", "GET", f"{self.api_url}/{kind}/{item_id}")))
        if kind == "album":
            first = first_track(body)
            if not isinstance(first.get("available_countries"), list):
                return body.get("available") is not False
            body = first
        return market in (body.get("available_countries") or [])

    def delivery_calls(
        self, access_token: str, campaign: Campaign, market: str = "", *, done: Sequence[str] = ()
    ) -> DeliveryCalls:
        """developers.deezer.com/api/user/albums and .../user/tracks (POST album_id / track_id: add to
        favourites), developers.deezer.com/api/user/artists (POST artist_id: follow). Each answers `true`."""
        self.resolve_release(campaign.release)
        kind, item_id, artist_id = self.found[campaign.release.pk]
        actions = self.actions(campaign)
        if "save" in actions:
            yield self._post(access_token, "save", f"/user/me/{kind}s", **{f"{kind}_id": item_id})
        if "follow" in actions and artist_id:
            yield self._post(access_token, "follow", "/user/me/artists", artist_id=artist_id)

    def delivery_note(self, campaign: Campaign) -> str:
        if "follow" in self.actions(campaign) and not self.found.get(campaign.release.pk, ("", "", ""))[2]:
            return "Not followed: Deezer names no artist for this release (a compilation's is never followed)."
        return ""

    def _post(self, access_token: str, name: str, path: str, **params: str) -> Call:
        return Call(name, "POST", f"{self.api_url}{path}", params={**params, "access_token": access_token}, once=True)

    # The one place that turns Deezer's answers into success or a ServiceError

    def check(self, call: Call, reply: Reply) -> Reply:
        """Errors come with HTTP 200 inside the body; library writes must answer `true`."""
        if reply.status >= 400:
            self.raise_for_reply(call, reply)
        body = reply.json_or_none()
        if isinstance(body, dict) and "error" in body:
            self.raise_for_reply(call, reply)
        if call.method == "POST" and body is not True:
            raise ServiceError(f"Deezer did not confirm the {call.name} (it answered {str(body)[:40]}).")
        return reply

    def raise_for_reply(self, call: Call, reply: Reply) -> None:
        """developers.deezer.com/api/errors: OAuthException and code 300 mean the fan's token is gone; code 4
        is the quota (wait and retry); 700 is "service busy"; the rest are final."""
        body = reply.json_or_none()
        error = body.get("error") if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        kind, message = str(error.get("type", "")), str(error.get("message", ""))[:200]
        try:
            code = int(error.get("code", 0))
        except (TypeError, ValueError):
            code = 0
        if reply.status == 429 or code == QUOTA:
            raise RateLimited(QUOTA_RETRY_AFTER_SECONDS, "Deezer quota exceeded.")
        status = reply.status
        if status >= 500 or code == SERVICE_BUSY:
            raise ServiceError(f"Deezer had a server error ({code or status}).", status=status)
        if status in (401, 403) and not error:
            raise ServicePaused(
                EDGE_DENIED_RETRY_SECONDS,
                f"Deezer's edge refused our requests (HTTP {status} without a Deezer error); delivery waits.",
                status=status,
            )
        if call.name == "exchange" and kind == "OAuthException":
            raise TokenRevoked(f"Deezer refused the sign-in code ({message or kind}).", status=status)
        if kind == "OAuthException" or code == TOKEN_INVALID or status == 401:
            message = f"The fan's Deezer authorization is no longer valid ({message or 'invalid token'})."
            raise TokenRevoked(message, status=status)
        detail = message or kind or f"HTTP {status}"
        raise ServiceError(f"Deezer rejected the {call.name}: {detail} (code {code}).", permanent=True, status=status)


def first_track(album: dict) -> dict:
    """The first track an album object lists (`tracks.data`), or {} when it lists none."""
    tracks = album.get("tracks")
    data = tracks.get("data") if isinstance(tracks, dict) else None
    return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
