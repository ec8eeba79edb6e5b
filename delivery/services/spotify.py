"""Spotify: Authorization Code flow with PKCE, the fan's profile, and release-day library writes.

Base URLs come from settings (SPOTIFY_ACCOUNTS_URL, SPOTIFY_API_URL) so the same code talks to Spotify or to
the project's sandbox (delivery/sandbox/).
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.conf import settings

from delivery.services.base import (
    APP_REFUSED_PAUSE_SECONDS,
    AccountNotAllowed,
    Call,
    DeliveryCalls,
    Profile,
    RateLimited,
    ReleaseNotFound,
    Reply,
    Service,
    ServiceError,
    ServicePaused,
    TokenRevoked,
    Tokens,
    basic_auth,
    bearer,
    catalog_lookup,
    not_found_by_code,
    parse_retry_after,
)

if TYPE_CHECKING:
    from releases.models import Artist, Campaign, Release

RETRY_AFTER_SECONDS = 1.0  # when a 429 names no Retry-After
APP_CALLS = frozenset({"app-token", "resolve", "availability", "album-tracks"})  # made with our app's token
# Development mode's 403s, worded differently over the years and sent as plain text or JSON: "User not registered
# in the Developer Dashboard", "User not approved for app", "…the user may not be registered", "The user is not
# registered for this application…" (github.com/zmb3/spotify/issues/232, spotipy-dev/spotipy/issues/688).
NOT_REGISTERED = re.compile(r"not (be )?registered|not approved for app", re.IGNORECASE)
# The app owner's Premium lapsed: "Active premium subscription required for the owner of the app…" (plain text,
# github.com/zmb3/spotify/issues/301; developer.spotify.com's February 2026 migration guide).
OWNER_PREMIUM_REQUIRED = re.compile(r"premium subscription required for the owner", re.IGNORECASE)
ACTION_WORDS = {
    "save": "Save this release to your Spotify library on release day.",
    "follow": "Follow the artist on Spotify.",
    "playlist": "Create a private playlist “{playlist}” in your Spotify account on release day, and add this release "
    "to it.",
}
# The scope each action needs. A follow asks user-follow-modify through /v1/me/library (an artist URI) as through
# the legacy /v1/me/following: the sandbox requires it for an artist URI (the reference leaves that scope open ⚠).
# The playlist needs no read scope: a later try finds the playlist an earlier one made by the id it kept
# (`PLAYLIST_MADE`), where listing the fan's playlists would need playlist-read-private (all their private ones).
ACTION_SCOPES = {"save": "user-library-modify", "follow": "user-follow-modify", "playlist": "playlist-modify-private"}
PLAYLIST_MADE = "playlist-made:"  # + the playlist's id, in Subscription.done_calls once it is created
PLAYLIST_MAX_URIS = 100  # per add: developer.spotify.com/documentation/web-api/reference/add-items-to-playlist
ALBUM_TRACKS_PAGE = 50
MISSING_SCOPE = "Insufficient client scope"  # Spotify's 403 for a token without the scope an endpoint needs
SCOPE_WORDS = {
    "user-read-email": "Read your email address, so we can email you when it drops.",
}
# Spotify's consent screen in its own words (developer.spotify.com/documentation/web-api/concepts/scopes): a
# permission wider than the action we take with it, named on our page so the fan isn't surprised on Spotify's.
SCREEN_WORDS = {
    "user-library-modify": "Manage your saved content",
    "user-follow-modify": "Manage who you are following",
    "playlist-modify-private": "Manage your private playlists",
}


class Spotify(Service):
    key = "spotify"
    label = "Spotify"
    # Refresh tokens expire six months after the fan authorized, however often they are refreshed.
    # developer.spotify.com/blog/2026-06-18-refresh-token-expiration
    authorization_lifetime = dt.timedelta(days=182)
    can_add_to_playlist = True
    action_words = ACTION_WORDS
    scope_words = SCOPE_WORDS
    screen_words = SCREEN_WORDS
    # Every authorization shares the fan's public profile: developer.spotify.com/documentation/web-api/reference/
    # get-current-users-profile (display_name, id, account_id) needs no scope.
    identity_words = "See your Spotify name and account id."

    def __init__(self) -> None:
        super().__init__()
        self.accounts_url = settings.SPOTIFY_ACCOUNTS_URL
        self.api_url = settings.SPOTIFY_API_URL
        self.client_id = settings.SPOTIFY_CLIENT_ID
        self.client_secret = settings.SPOTIFY_CLIENT_SECRET
        self.legacy_library = settings.SPOTIFY_LIBRARY_API == "legacy"
        self._app_token: tuple[str, float] | None = None  # (token, monotonic expiry) for catalog reads
        self.track_uris: dict[str, list[str]] = {}  # release URI → its tracks' URIs (`prepare_delivery`)
        self._app_token_lock = threading.Lock()  # markets are checked from several threads at once

    @classmethod
    def is_enabled(cls) -> bool:
        return settings.SPOTIFY_ENABLED

    def scopes_for(self, campaign: Campaign, *, email_opt_in: bool) -> list[str]:
        scopes = [ACTION_SCOPES[action] for action in self.actions(campaign)]
        if email_opt_in:
            scopes.append("user-read-email")
        return scopes

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
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        return self.parse_tokens(self.run(self._token_call("exchange", form)))

    def refresh_call(self, refresh_token: str) -> Call:
        """developer.spotify.com/documentation/web-api/tutorials/refreshing-tokens

        The answer may carry a new refresh token; the old one must then be treated as dead.
        """
        return self._token_call("refresh", {"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token_call(self, name: str, form: dict[str, str]) -> Call:
        return Call(
            name,
            "POST",
            f"{self.accounts_url}/api/token",
            form=form,
            headers=basic_auth(self.client_id, self.client_secret),
        )

    def parse_tokens(self, reply: Reply) -> Tokens:
        body = self.json_object(reply)
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
        body = self.json_object(self.run(Call("profile", "GET", f"{self.api_url}/v1/me", headers=bearer(access_token))))
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
        return bool(release.spotify_uri or release.upc or release.isrc)

    def release_identifiers(self, release: Release) -> str:
        return "Spotify URI, UPC or ISRC"

    def follow_needs(self, artist: Artist) -> str:
        return "" if artist.spotify_uri else "the artist's Spotify URI"

    def listen_url(self, release: Release) -> str:
        """open.spotify.com/album/<id> or /track/<id>, from the release's Spotify URI."""
        if not release.spotify_uri:
            return ""
        kind, spotify_id = release.spotify_uri.split(":")[1:]
        return f"https://open.spotify.com/{kind}/{spotify_id}"

    def delivery_calls(
        self, access_token: str, campaign: Campaign, market: str = "", *, done: Sequence[str] = ()
    ) -> DeliveryCalls:
        """developer.spotify.com/documentation/web-api/reference/save-library-items (PUT /v1/me/library, with
        the artist's URI to follow); with SPOTIFY_LIBRARY_API=legacy: .../save-albums-user, .../save-tracks-user
        and .../follow-artists-users (PUT /v1/me/following?type=artist); then the playlist (`playlist_calls`)."""
        release = campaign.release
        actions = self.actions(campaign)
        if "save" in actions:
            kind, spotify_id = release.spotify_uri.split(":")[1:]
            if self.legacy_library:
                yield self._put(access_token, "save", f"/v1/me/{kind}s", ids=spotify_id)
            else:
                yield self._put(access_token, "save", "/v1/me/library", uris=release.spotify_uri)
        if "follow" in actions:  # only with the artist's URI (follow_needs)
            artist_uri = release.artist.spotify_uri
            if self.legacy_library:
                artist_id = artist_uri.rsplit(":", 1)[1]
                yield self._put(access_token, "follow", "/v1/me/following", type="artist", ids=artist_id)
            else:
                yield self._put(access_token, "follow", "/v1/me/library", uris=artist_uri)
        if "playlist" in actions and "playlist" not in done:
            yield from self.playlist_calls(access_token, campaign, done)

    def playlist_calls(self, access_token: str, campaign: Campaign, done: Sequence[str]) -> DeliveryCalls:
        """developer.spotify.com/documentation/web-api/reference/create-playlist (POST /v1/me/playlists → 201,
        the playlist), then .../add-items-to-playlist (POST /v1/playlists/{id}/items, 100 URIs at most → 201).

        The action is done ("playlist") once the release's tracks are in. The creation is kept with the new
        playlist's id (PLAYLIST_MADE), so a try after a failed add adds to that playlist instead of making another."""
        made = [entry.removeprefix(PLAYLIST_MADE) for entry in done if entry.startswith(PLAYLIST_MADE)]
        if made:
            playlist_id = made[0]
        else:
            body = {"name": campaign.playlist_name, "public": False, "description": self.playlist_description(campaign)}
            created = yield self._post_json(
                access_token, "playlist-create", "/v1/me/playlists", body, done_as=self.playlist_made
            )
            playlist_id = self.playlist_made(created).removeprefix(PLAYLIST_MADE)
        uris = self.release_tracks(campaign.release.spotify_uri)
        chunks = [uris[start : start + PLAYLIST_MAX_URIS] for start in range(0, len(uris), PLAYLIST_MAX_URIS)]
        for number, chunk in enumerate(chunks, 1):
            # An album of more than 100 tracks takes several adds: each is done once, the last completes the action.
            # Each recorded in Subscription.done_calls, which has no length limit however many adds an album takes.
            name = "playlist" if number == len(chunks) else f"playlist:{number}"
            yield self._post_json(access_token, name, f"/v1/playlists/{playlist_id}/items", {"uris": chunk})

    def playlist_left(self, done: Sequence[str]) -> str:
        """Made (PLAYLIST_MADE) but not filled ("playlist", the last add): "partly filled" after an add of an album
        of more than 100 tracks went through ("playlist:1"), "empty" before."""
        if "playlist" in done or not any(entry.startswith(PLAYLIST_MADE) for entry in done):
            return ""
        return "partly filled" if any(entry.startswith("playlist:") for entry in done) else "empty"

    def playlist_description(self, campaign: Campaign) -> str:
        release = campaign.release
        return f"{release.title} by {release.artist.name}, added on release day because you pre-saved it."

    def playlist_made(self, reply: Reply | None) -> str:
        """What the creation's answer is recorded as: PLAYLIST_MADE and the new playlist's id."""
        playlist_id = self.json_object(reply).get("id") if reply is not None else None
        if not playlist_id or not isinstance(playlist_id, str):
            raise ServiceError("Spotify's answer to the playlist's creation had no playlist id.")
        return PLAYLIST_MADE + playlist_id

    def _post_json(self, access_token: str, name: str, path: str, body: dict, **options) -> Call:
        url = f"{self.api_url}{path}"
        # Neither the creation nor an add is idempotent: each sent again makes a playlist, or adds tracks, again.
        return Call(name, "POST", url, json=body, headers=bearer(access_token), once=True, idempotent=False, **options)

    def _put(self, access_token: str, name: str, path: str, **params: str) -> Call:
        return Call(name, "PUT", f"{self.api_url}{path}", params=params, headers=bearer(access_token), once=True)

    # Catalog reads with the app's own token (client credentials)
    def app_token(self) -> str:
        """developer.spotify.com/documentation/web-api/tutorials/client-credentials-flow"""
        with self._app_token_lock:
            if self._app_token is None or self._app_token[1] <= time.monotonic():
                call = self._token_call("app-token", {"grant_type": "client_credentials"})
                tokens = self.parse_tokens(self.run(call))
                self._app_token = (tokens.access_token, time.monotonic() + tokens.expires_in - 60)
            return self._app_token[0]

    def resolve_release(self, release: Release) -> str:
        """developer.spotify.com/documentation/web-api/reference/search (q=upc:… type=album; q=isrc:… type=track)"""
        if release.spotify_uri:
            return release.spotify_uri
        kind, code, value = catalog_lookup(release)
        query = f"{code}:{value}"
        call = Call(
            "resolve",
            "GET",
            f"{self.api_url}/v1/search",
            params={"q": query, "type": kind, "limit": "1"},
            headers=bearer(self.app_token()),
        )
        items = (self.json_object(self.run(call)).get(f"{kind}s") or {}).get("items") or []
        if not items or not items[0].get("uri"):
            raise not_found_by_code(self.label, release)
        release.spotify_uri, release.spotify_uri_found_by = str(items[0]["uri"]), code  # Release.FoundBy: upc, isrc
        type(release).objects.filter(pk=release.pk).update(
            spotify_uri=release.spotify_uri, spotify_uri_found_by=release.spotify_uri_found_by
        )
        return release.spotify_uri

    def prepare_delivery(self, campaign: Campaign) -> None:
        """The release, and for a playlist its tracks (`release_tracks`): looked up once per run, not per fan."""
        uri = self.resolve_release(campaign.release)
        if "playlist" in self.actions(campaign):
            self.release_tracks(uri)

    def release_tracks(self, uri: str) -> list[str]:
        """The URIs of the release's tracks, in order: a track's own, an album's from
        developer.spotify.com/documentation/web-api/reference/get-an-albums-tracks (GET /v1/albums/{id}/tracks,
        50 a page). Kept for this client's life."""
        if uri in self.track_uris:
            return self.track_uris[uri]
        kind, spotify_id = uri.split(":")[1:]
        uris = [uri] if kind == "track" else []
        offset = 0
        while kind == "album":
            call = Call(
                "album-tracks",
                "GET",
                f"{self.api_url}/v1/albums/{spotify_id}/tracks",
                params={"limit": str(ALBUM_TRACKS_PAGE), "offset": str(offset)},
                headers=bearer(self.app_token()),
            )
            page = self.json_object(self.run(call))
            items = [item for item in page.get("items") or [] if isinstance(item, dict) and item.get("uri")]
            uris += [str(item["uri"]) for item in items]
            offset += ALBUM_TRACKS_PAGE
            if not items or not page.get("next"):
                break
        if not uris:  # an album announced before its tracks: its fans wait, as for a release not out
            raise ReleaseNotFound(f"Spotify lists no tracks for this album yet ({uri}).")
        self.track_uris[uri] = uris
        return uris

    def is_available(self, release: Release, market: str) -> bool:
        """developer.spotify.com/documentation/web-api/reference/get-an-album (…/get-track) with `market`:
        404 when the release is not available there (yet)."""
        kind, spotify_id = release.spotify_uri.split(":")[1:]
        call = Call(
            "availability",
            "GET",
            f"{self.api_url}/v1/{kind}s/{spotify_id}",
            params={"market": market},
            headers=bearer(self.app_token()),
        )
        try:
            body = self.json_object(self.run(call))
        except ServiceError as exc:
            if exc.status == 404:
                return False
            raise
        return body.get("is_playable", True) is not False

    def raise_for_reply(self, call: Call, reply: Reply) -> None:
        """One place turns Spotify's error answers into ServiceErrors.

        Accounts errors: {"error": "invalid_grant", "error_description": "..."} (developer.spotify.com/
        documentation/web-api/tutorials/refreshing-tokens); Web API errors: {"error": {"status", "message"}}
        (developer.spotify.com/documentation/web-api/concepts/api-calls#response-status-codes); a few 403s come
        in plain text (NOT_REGISTERED, OWNER_PREMIUM_REQUIRED). A 403 on a call made with our app's token
        (APP_CALLS) is about the app, never a fan's failure.
        """
        status = reply.status
        body = reply.json_or_none()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code, detail = str(error.get("reason", "")), str(error.get("message", ""))
        elif isinstance(body, dict):
            code, detail = str(error or ""), str(body.get("error_description", ""))
        else:  # some refusals come in plain text (PlainRefusal in the sandbox)
            code, detail = "", reply.text()
        detail = detail[:200]
        if status == 429:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"), RETRY_AFTER_SECONDS)
            reason = "Spotify quota exceeded." if code == "QUOTA_EXCEEDED" else "Rate limited by Spotify."
            raise RateLimited(retry_after, reason)
        if code == "invalid_grant":
            message = f"The fan's Spotify authorization is no longer valid ({detail or 'invalid_grant'})."
            raise TokenRevoked(message, status=status)
        if code == "invalid_client":  # our app's fault, not the fan's: every worker waits, the fans too
            message = "Spotify rejected our app's credentials (check SPOTIFY_CLIENT_ID/SECRET); delivery waits."
            raise ServicePaused(APP_REFUSED_PAUSE_SECONDS, message, status=status)
        if status == 401 and call.name == "refresh":
            raise TokenRevoked("Spotify refused to refresh the fan's authorization (401).", status=status)
        if status >= 500:
            raise ServiceError(f"Spotify had a server error ({status}).", status=status)
        if status == 401:
            # An access token we just received was refused: the next attempt refreshes and learns the truth.
            raise ServiceError("Spotify refused the access token (401).", status=status)
        if status == 403 and OWNER_PREMIUM_REQUIRED.search(detail):  # our app's fault, not the fan's: all wait
            message = (
                "Spotify refuses every call of our app: the Spotify account that owns it has no Premium "
                "subscription any more (development mode needs one). Renew it; Spotify can take a few hours to "
                "notice. Delivery waits."
            )
            raise ServicePaused(APP_REFUSED_PAUSE_SECONDS, message, status=status)
        if status == 403 and NOT_REGISTERED.search(detail):
            message = "Spotify's development mode: this fan is not one of the users listed in our app's dashboard."
            raise AccountNotAllowed(message, status=status)
        if status == 403 and call.name in APP_CALLS:  # made with our app's token: never the fan's failure
            raise ServiceError(f"Spotify refused our app's request ({detail or 'forbidden'}, 403).", status=status)
        if status == 403 and detail == MISSING_SCOPE:  # the campaign added an action after the fan agreed
            action = re.split(r"[-:]", call.name)[0]  # playlist-create and playlist:2 are the playlist's
            message = (
                f"Spotify refused the {action}: the fan's permission doesn't cover it (they pre-saved before the "
                f"campaign offered it; {MISSING_SCOPE}, 403)."
            )
            raise ServiceError(message, permanent=True, status=status)
        if status == 403:
            message = f"Spotify refused the action: {detail or 'forbidden'} (403)."
            raise ServiceError(message, permanent=True, status=status)
        message = f"Spotify rejected the request: {detail or code or 'error'} ({status})."
        raise ServiceError(message, permanent=True, status=status)
