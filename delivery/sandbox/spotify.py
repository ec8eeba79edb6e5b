"""Spotify's Accounts service and Web API, as documented, served under `/spotify`.

`/spotify/accounts` stands for https://accounts.spotify.com and `/spotify/api` for https://api.spotify.com,
so a real Spotify client works against the sandbox with only its base URLs changed. Paths, methods, status
codes, headers and error bodies follow developer.spotify.com; each handler names the page it follows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy
from yarl import URL

from delivery.sandbox import login_page
from delivery.sandbox.faults import Kind
from delivery.sandbox.service_app import ServiceApiError, make_service_app
from delivery.sandbox.state import (
    ACCESS_TOKEN_SECONDS,
    AUTHORIZATION_LIFETIME_SECONDS,
    AccessToken,
    Album,
    Artist,
    Client,
    Playlist,
    SandboxState,
    Track,
    is_base62_id,
)

PREFIX = "/spotify"
TOKEN_PATH = f"{PREFIX}/accounts/api/token"
API_PATH = f"{PREFIX}/api/"

# developer.spotify.com/documentation/web-api/concepts/scopes, in the words a user reads when asked.
SCOPES = {
    "ugc-image-upload": "Upload images to your playlists",
    "user-read-playback-state": "Read what you are playing and your Spotify Connect devices",
    "user-modify-playback-state": "Control playback on your Spotify clients and devices",
    "user-read-currently-playing": "Read what you are playing right now",
    "app-remote-control": "Control Spotify on your other devices",
    "streaming": "Play content and control playback",
    "playlist-read-private": "Access your private playlists",
    "playlist-read-collaborative": "Access your collaborative playlists",
    "playlist-modify-private": "Manage your private playlists",
    "playlist-modify-public": "Manage your public playlists",
    "user-follow-modify": "Manage who you are following",
    "user-follow-read": "See who you are following",
    "user-read-playback-position": "Read your position in content you have played",
    "user-top-read": "Read your top artists and content",
    "user-read-recently-played": "Access your recently played items",
    "user-library-modify": "Manage your saved content (albums, tracks, Your Library)",
    "user-library-read": "Access your saved content",
    "user-read-email": "Get your real email address",
    "user-read-private": "Access your subscription details and country",
}
AUTHORIZE_PARAMS = (
    "client_id",
    "response_type",
    "redirect_uri",
    "state",
    "scope",
    "code_challenge_method",
    "code_challenge",
    "show_dialog",
)
LIBRARY_MAX_URIS = 40
PLAYLIST_MAX_URIS = 100
PLAYLIST_NAME_MAX = 100  # longer names are cut to this by Spotify's apps; the sandbox refuses them
NOT_OWNER = "You cannot add tracks to a playlist you don't own."
SEARCH_TYPES = ("album", "artist", "track")
MARKET = re.compile(r"[A-Z]{2}")
GATEWAY_ERRORS = {404: "Service not found", 405: "Method not allowed"}

Item = TypeVar("Item", Album, Track, Artist)


class ApiError(ServiceApiError):
    """A Web API error: `{"error": {"status", "message"}}`.
    developer.spotify.com/documentation/web-api/concepts/api-calls#response-status-codes"""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    def response(self, request: web.Request) -> web.Response:
        return api_error(self.status, self.message, headers=self.headers)


class PlainRefusal(ServiceApiError):
    """A 403 Spotify answers in plain text, not JSON (client libraries report failing to decode it):
    "User not registered in the Developer Dashboard" (github.com/zmb3/spotify/issues/232, 46 bytes) and
    "Active premium subscription required for the owner of the app…" (github.com/zmb3/spotify/issues/301)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self, request: web.Request) -> web.Response:
        return web.Response(status=403, text=self.message, content_type="text/plain")


NOT_REGISTERED = "User not registered in the Developer Dashboard"
OWNER_PREMIUM_REQUIRED = (
    "Active premium subscription required for the owner of the app. When the subscription status changes, it can "
    "take a few hours before requests are allowed again."
)


class OAuthError(ServiceApiError):
    """An Accounts service error: `{"error", "error_description"}` (RFC 6749 section 5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status

    def response(self, request: web.Request) -> web.Response:
        return web.json_response({"error": self.error, "error_description": self.description}, status=self.status)


def api_error(
    status: int, message: str, *, reason: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    error: dict[str, object] = {"status": status, "message": message}
    if reason:
        error["reason"] = reason
    return web.json_response({"error": error}, status=status, headers=headers)


def make_spotify_app(state: SandboxState) -> web.Application:
    """The sub-application to mount at PREFIX; unknown API paths answer like Spotify's gateway."""
    return make_service_app(
        state,
        SpotifyService(state),
        fault_error=api_error,
        api_path=API_PATH,
        unknown=lambda status: api_error(status, GATEWAY_ERRORS[status]),
    )


@dataclass(frozen=True)
class AuthorizeRequest:
    client: Client
    params: dict[str, str]  # the query parameters to carry through the login form
    redirect_uri: str
    state: str | None
    scope: str
    code_challenge: str | None


class SpotifyService:
    """The route handlers, sharing one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        me = "/api/v1/me"
        return [
            web.get("/accounts/authorize", self.authorize),
            web.post("/accounts/authorize/decide", self.decide),
            web.post("/accounts/api/token", self.token),
            web.get(me, self.me),
            web.put(f"{me}/library", self.save_library_items),
            web.delete(f"{me}/library", self.remove_library_items),
            web.get(f"{me}/library/contains", self.check_library_items),
            web.put(f"{me}/albums", self.save_albums),
            web.delete(f"{me}/albums", self.remove_albums),
            web.get(f"{me}/albums/contains", self.check_albums),
            web.put(f"{me}/tracks", self.save_tracks),
            web.delete(f"{me}/tracks", self.remove_tracks),
            web.get(f"{me}/tracks/contains", self.check_tracks),
            web.put(f"{me}/following", self.follow),
            web.delete(f"{me}/following", self.unfollow),
            web.get(f"{me}/following/contains", self.check_following),
            web.get(f"{me}/playlists", self.my_playlists),
            web.post(f"{me}/playlists", self.create_playlist),
            web.post("/api/v1/playlists/{id}/items", self.add_playlist_items),
            web.get("/api/v1/albums/{id}/tracks", self.get_album_tracks),
            web.get("/api/v1/albums/{id}", self.get_album),
            web.get("/api/v1/tracks/{id}", self.get_track),
            web.get("/api/v1/artists/{id}", self.get_artist),
            web.get("/api/v1/search", self.search),
        ]

    async def classify(self, request: web.Request) -> tuple[Kind, str | None]:
        """The request's kind and the registered app it counts against (None when it names none)."""
        path = request.path
        kind = Kind.API if path.startswith(API_PATH) else Kind.TOKEN if path == TOKEN_PATH else Kind.PAGE
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = self.state.access_tokens.get(header[7:])
            return kind, token.client_id if token else None
        if header.startswith("Basic "):
            client_id = (_basic_credentials(header) or ("", ""))[0]
        else:
            client_id = request.query.get("client_id", "")
            if not client_id and request.method == "POST":
                client_id = str((await request.post()).get("client_id", ""))
        return kind, client_id if client_id in self.state.clients else None

    # Accounts service: authorization

    async def authorize(self, request: web.Request) -> web.Response:
        """GET /authorize: the login and consent page.
        developer.spotify.com/documentation/web-api/tutorials/code-flow and .../code-pkce-flow"""
        return self._login_page(self._authorize_request(request.query))

    async def decide(self, request: web.Request) -> web.Response:
        """The login page's form: Agree redirects with a code, Cancel with error=access_denied."""
        form = await request.post()
        auth = self._authorize_request(form)
        if form.get("decision") != "agree":
            raise web.HTTPFound(_redirect(auth, error="access_denied"))
        user_id = login_page.chosen_user(self.state, str(form.get("user", "")), str(form.get("new_user", "")))
        if user_id is None:
            return self._login_page(auth, error="Choose a user, or type a name for a new one.", status=400)
        code = self.state.issue_code(auth.client.id, user_id, auth.redirect_uri, auth.scope, auth.code_challenge)
        raise web.HTTPFound(_redirect(auth, code=code.code))

    def _authorize_request(self, params: Mapping[str, object]) -> AuthorizeRequest:
        """Check /authorize parameters in Spotify's order: errors about the client or redirect URI are
        shown as a page; the others go back to the app's redirect URI."""
        values = {name: str(params[name]) for name in AUTHORIZE_PARAMS if name in params}
        client = self.state.clients.get(values.get("client_id", ""))
        if client is None:
            raise login_page.page_error("INVALID_CLIENT: Invalid client")
        redirect_uri = values.get("redirect_uri", "")
        if not client.accepts_redirect_uri(redirect_uri):
            raise login_page.page_error("INVALID_CLIENT: Invalid redirect URI")
        scope = " ".join(values.get("scope", "").split())
        auth = AuthorizeRequest(client, values, redirect_uri, values.get("state"), scope, values.get("code_challenge"))
        if values.get("response_type") != "code":
            raise web.HTTPFound(_redirect(auth, error="unsupported_response_type"))
        if any(name not in SCOPES for name in scope.split()):
            raise login_page.page_error("Illegal scope")
        method = values.get("code_challenge_method")
        if (method is not None or auth.code_challenge is not None) and (method != "S256" or not auth.code_challenge):
            raise web.HTTPFound(_redirect(auth, error="invalid_request"))
        return auth

    def _login_page(self, auth: AuthorizeRequest, *, error: str = "", status: int = 200) -> web.Response:
        html = login_page.login_page(
            client_name=auth.client.name,
            params=auth.params,
            scope_words=[SCOPES[name] for name in auth.scope.split()],
            users=list(self.state.users.values()),
            error=error,
        )
        return web.Response(text=html, content_type="text/html", status=status)

    # Accounts service: tokens

    async def token(self, request: web.Request) -> web.Response:
        """POST /api/token: authorization_code, refresh_token and client_credentials grants.
        developer.spotify.com/documentation/web-api/tutorials/code-flow, .../code-pkce-flow,
        .../refreshing-tokens, .../client-credentials-flow"""
        form = await request.post()
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("unsupported_grant_type", "grant_type parameter is missing")
        if grant_type not in ("authorization_code", "refresh_token", "client_credentials"):
            raise OAuthError(
                "unsupported_grant_type",
                "grant_type must be client_credentials, authorization_code or refresh_token",
            )
        client, confidential = self._token_client(request, form)
        if grant_type == "authorization_code":
            return self._exchange_code(form, client, confidential)
        if grant_type == "refresh_token":
            return self._refresh(form, client, confidential)
        if not confidential:
            raise OAuthError("invalid_client", "Invalid client")
        token = self.state.issue_access_token(client.id)
        return web.json_response(
            {"access_token": token.token, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECONDS}
        )

    def _token_client(self, request: web.Request, form: MultiDictProxy) -> tuple[Client, bool]:
        """The calling app, and whether it proved itself with its secret (Basic header or form fields).
        Without a secret it is a PKCE client that named itself with `client_id`."""
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            credentials = _basic_credentials(header)
            if credentials is None:
                raise OAuthError("invalid_client", "Invalid client")
            client_id, secret = credentials
        else:
            client_id = str(form.get("client_id", ""))
            secret = str(form["client_secret"]) if "client_secret" in form else None
        client = self.state.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "Invalid client")
        if secret is None:
            return client, False
        if not hmac.compare_digest(secret.encode(), client.secret.encode()):
            raise OAuthError("invalid_client", "Invalid client secret")
        return client, True

    def _exchange_code(self, form: MultiDictProxy, client: Client, confidential: bool) -> web.Response:
        verifier = str(form["code_verifier"]) if "code_verifier" in form else None
        if not confidential and verifier is None:
            raise OAuthError("invalid_request", "code_verifier required")
        code = self.state.take_code(str(form.get("code", "")))
        if code is None or code.client_id != client.id:
            raise OAuthError("invalid_grant", "Invalid authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "Invalid redirect URI")
        if (code.code_challenge is not None or verifier is not None) and (
            verifier is None or code.code_challenge is None or _s256(verifier) != code.code_challenge
        ):
            raise OAuthError("invalid_grant", "code_verifier was incorrect")
        grant = self.state.authorize(code.user_id, client.id, code.scope, public=not confidential)
        token = self.state.issue_access_token(client.id, grant)
        return _token_response(token, grant.scope, grant.refresh_token)

    def _refresh(self, form: MultiDictProxy, client: Client, confidential: bool) -> web.Response:
        refresh_token = str(form.get("refresh_token", ""))
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token must be supplied")
        grant = self.state.refresh_tokens.get(refresh_token)
        if grant is None or grant.client_id != client.id:
            raise OAuthError("invalid_grant", "Invalid refresh token")
        if not confidential and not grant.public:
            raise OAuthError("invalid_client", "Invalid client")
        if grant.revoked:
            raise OAuthError("invalid_grant", "Refresh token revoked")
        if self.state.now() >= grant.authorized_at + AUTHORIZATION_LIFETIME_SECONDS:
            raise OAuthError("invalid_grant", "Refresh token expired")
        token = self.state.issue_access_token(client.id, grant)
        rotated = self.state.rotate_refresh_token(grant) if self.state.faults.rotate_refresh_tokens else None
        return _token_response(token, grant.scope, rotated)

    # Web API: access

    def _access(self, request: web.Request, *scopes: str, user: bool = True) -> AccessToken:
        """The request's valid access token holding `scopes`; `user` endpoints refuse app tokens.
        developer.spotify.com/documentation/web-api/concepts/access-token"""
        header = request.headers.get("Authorization")
        if not header:
            raise ApiError(401, "No token provided", {"WWW-Authenticate": 'Bearer realm="spotify"'})
        scheme, _, value = header.partition(" ")
        if scheme != "Bearer" or not value:
            raise ApiError(400, "Only valid bearer authentication supported")
        token = self.state.access_tokens.get(value)
        if token is None or token.service != "spotify":
            raise _unauthorized("Invalid access token")
        if token.expires_at <= self.state.now():
            raise _unauthorized("The access token expired")
        if self.state.faults.owner_premium_lapsed:  # development mode's apps need their owner on Premium
            raise PlainRefusal(OWNER_PREMIUM_REQUIRED)
        if user and token.user_id is None:
            raise ApiError(403, "Insufficient client scope")
        listed = self.state.faults.registered_users if self.state.faults.development_mode else None
        if user and listed is not None and token.user_id not in listed:  # the sign-in worked; the API refuses
            raise PlainRefusal(NOT_REGISTERED)
        _require_scopes(token, scopes)
        return token

    # Web API: the current user

    async def me(self, request: web.Request) -> web.Response:
        """GET /v1/me. developer.spotify.com/documentation/web-api/reference/get-current-users-profile

        `email` needs user-read-email; `country` and `product` need user-read-private and are gone in
        development mode (February 2026); `account_id` (May 2026) is the stable key."""
        token = self._access(request)
        user = self.state.users[token.user_id or ""]
        body: dict[str, object] = {
            "display_name": user.display_name,
            "external_urls": {"spotify": f"https://open.spotify.com/user/{user.id}"},
            "followers": {"href": None, "total": 0},
            "href": f"{_api_base(request)}/users/{user.id}",
            "id": user.id,
            "images": [],
            "type": "user",
            "uri": f"spotify:user:{user.id}",
            "account_id": user.account_id,
        }
        if "user-read-email" in token.scopes:
            body["email"] = user.email
        if "user-read-private" in token.scopes and not self.state.faults.development_mode:
            body["country"] = user.country
            body["product"] = user.product
        return web.json_response(body)

    # Web API: Your Library (February 2026)

    async def save_library_items(self, request: web.Request) -> web.Response:
        """PUT /v1/me/library?uris=. developer.spotify.com/documentation/web-api/reference/save-library-items
        Artist URIs follow the artist (needs user-follow-modify)."""
        return await self._write_library(request, self.state.save, "PUT /v1/me/library")

    async def remove_library_items(self, request: web.Request) -> web.Response:
        """DELETE /v1/me/library?uris=.
        developer.spotify.com/documentation/web-api/reference/remove-library-items"""
        return await self._write_library(request, self.state.remove, "DELETE /v1/me/library")

    async def check_library_items(self, request: web.Request) -> web.Response:
        """GET /v1/me/library/contains?uris=.
        developer.spotify.com/documentation/web-api/reference/check-library-contains"""
        token = self._access(request)
        uris = _split(request.query.get("uris"), "uris", LIBRARY_MAX_URIS)
        _require_scopes(token, _library_scopes(self._known_uris(uris), write=False))
        return web.json_response([self.state.contains(token.user_id or "", uri) for uri in uris])

    async def _write_library(
        self, request: web.Request, write: Callable[[str, str, str], None], endpoint: str
    ) -> web.Response:
        token = self._access(request)
        uris = await _ids_param(request, "uris", LIBRARY_MAX_URIS)
        _require_scopes(token, _library_scopes(self._known_uris(uris), write=True))
        for uri in uris:
            write(token.user_id or "", uri, endpoint)
        return web.Response(status=200)

    def _known_uris(self, uris: list[str]) -> set[str]:
        """Check every URI names an album, track or artist in the catalog; returns the kinds named."""
        kinds = set()
        for uri in uris:
            parts = uri.split(":")
            if len(parts) != 3 or parts[0] != "spotify" or not is_base62_id(parts[2]):
                raise ApiError(400, "Invalid base62 id")
            kind, item_id = parts[1], parts[2]
            if item_id not in self._catalog(kind):
                raise ApiError(400, f"Non existing id: {uri}")
            kinds.add(kind)
        return kinds

    def _catalog(self, kind: str) -> Mapping[str, object]:
        return {"album": self.state.albums, "track": self.state.tracks, "artist": self.state.artists}.get(kind, {})

    # Web API: the older library and follow endpoints (extended quota apps)

    async def save_albums(self, request: web.Request) -> web.Response:
        """PUT /v1/me/albums?ids= (or JSON {"ids": [...]}), at most 20.
        developer.spotify.com/documentation/web-api/reference/save-albums-user"""
        return await self._write_ids(request, "album", 20, self.state.save, "PUT /v1/me/albums")

    async def remove_albums(self, request: web.Request) -> web.Response:
        """DELETE /v1/me/albums?ids=.
        developer.spotify.com/documentation/web-api/reference/remove-albums-user"""
        return await self._write_ids(request, "album", 20, self.state.remove, "DELETE /v1/me/albums")

    async def check_albums(self, request: web.Request) -> web.Response:
        """GET /v1/me/albums/contains?ids=.
        developer.spotify.com/documentation/web-api/reference/check-users-saved-albums"""
        return self._check_ids(request, "album", 20, "user-library-read")

    async def save_tracks(self, request: web.Request) -> web.Response:
        """PUT /v1/me/tracks?ids= (or JSON {"ids": [...]}), at most 50.
        developer.spotify.com/documentation/web-api/reference/save-tracks-user"""
        return await self._write_ids(request, "track", 50, self.state.save, "PUT /v1/me/tracks")

    async def remove_tracks(self, request: web.Request) -> web.Response:
        """DELETE /v1/me/tracks?ids=.
        developer.spotify.com/documentation/web-api/reference/remove-tracks-user"""
        return await self._write_ids(request, "track", 50, self.state.remove, "DELETE /v1/me/tracks")

    async def check_tracks(self, request: web.Request) -> web.Response:
        """GET /v1/me/tracks/contains?ids=.
        developer.spotify.com/documentation/web-api/reference/check-users-saved-tracks"""
        return self._check_ids(request, "track", 50, "user-library-read")

    async def follow(self, request: web.Request) -> web.Response:
        """PUT /v1/me/following?type=artist&ids= → 204.
        developer.spotify.com/documentation/web-api/reference/follow-artists-users"""
        _follow_type(request)
        return await self._write_ids(request, "artist", 50, self.state.save, "PUT /v1/me/following", status=204)

    async def unfollow(self, request: web.Request) -> web.Response:
        """DELETE /v1/me/following?type=artist&ids= → 204.
        developer.spotify.com/documentation/web-api/reference/unfollow-artists-users"""
        _follow_type(request)
        return await self._write_ids(request, "artist", 50, self.state.remove, "DELETE /v1/me/following", status=204)

    async def check_following(self, request: web.Request) -> web.Response:
        """GET /v1/me/following/contains?type=artist&ids=.
        developer.spotify.com/documentation/web-api/reference/check-current-user-follows"""
        _follow_type(request)
        return self._check_ids(request, "artist", 50, "user-follow-read")

    async def _write_ids(
        self,
        request: web.Request,
        kind: str,
        limit: int,
        write: Callable[[str, str, str], None],
        endpoint: str,
        status: int = 200,
    ) -> web.Response:
        token = self._access(request, _WRITE_SCOPE[kind])
        uris = self._known_ids(kind, await _ids_param(request, "ids", limit))
        for uri in uris:
            write(token.user_id or "", uri, endpoint)
        return web.Response(status=status)

    def _check_ids(self, request: web.Request, kind: str, limit: int, scope: str) -> web.Response:
        token = self._access(request, scope)
        uris = self._known_ids(kind, _split(request.query.get("ids"), "ids", limit))
        return web.json_response([self.state.contains(token.user_id or "", uri) for uri in uris])

    def _known_ids(self, kind: str, ids: list[str]) -> list[str]:
        uris = [f"spotify:{kind}:{item_id}" for item_id in ids]
        self._known_uris(uris)
        return uris

    # Web API: playlists (February 2026: /v1/me/playlists creates, /v1/playlists/{id}/items adds)

    async def create_playlist(self, request: web.Request) -> web.Response:
        """POST /v1/me/playlists {"name", "public", "collaborative", "description"} → 201 with the playlist.
        developer.spotify.com/documentation/web-api/reference/create-playlist: `public` defaults to true; a
        collaborative playlist must be private; playlist-modify-public or -private, as the playlist will be."""
        token = self._access(request)
        body = await _json_object(request)
        name, public = body.get("name"), body.get("public", True)
        collaborative, description = body.get("collaborative", False), body.get("description", "")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "Missing required field: name")
        if len(name) > PLAYLIST_NAME_MAX:
            raise ApiError(400, "Invalid name")
        if not isinstance(public, bool) or not isinstance(collaborative, bool) or not isinstance(description, str):
            raise ApiError(400, "Error parsing json")
        if collaborative and public:
            raise ApiError(400, "Collaborative playlists must be private")
        _require_scopes(token, [_playlist_scope(public)])
        playlist = self.state.create_playlist(
            token.user_id or "",
            name,
            public=public,
            collaborative=collaborative,
            description=description,
            endpoint="POST /v1/me/playlists",
        )
        return web.json_response(self._playlist(playlist, _api_base(request)), status=201)

    async def my_playlists(self, request: web.Request) -> web.Response:
        """GET /v1/me/playlists[?limit=&offset=] → the user's playlists, newest first, as a paging object.
        developer.spotify.com/documentation/web-api/reference/get-a-list-of-current-users-playlists: private
        playlists only with playlist-read-private (collaborative ones with playlist-read-collaborative)."""
        token = self._access(request)
        limit = _int_param(request.query, "limit", 20, 1, 50)
        offset = _int_param(request.query, "offset", 0, 0, 100_000)
        ids = reversed(self.state.library(token.user_id or "").playlists)
        visible = [
            playlist
            for playlist in (self.state.playlists[i] for i in ids)
            if playlist.public
            or (playlist.collaborative and "playlist-read-collaborative" in token.scopes)
            or (not playlist.collaborative and "playlist-read-private" in token.scopes)
        ]
        api = _api_base(request)
        page = [self._playlist(playlist, api) for playlist in visible[offset : offset + limit]]
        return web.json_response(_paging(f"{api}/me/playlists", page, offset, limit, len(visible)))

    async def add_playlist_items(self, request: web.Request) -> web.Response:
        """POST /v1/playlists/{id}/items {"uris": [...]} (or ?uris=), 100 at most → 201 {"snapshot_id"}.
        developer.spotify.com/documentation/web-api/reference/add-items-to-playlist: only the owner (or, on a
        collaborative playlist, its collaborators) may add; playlist-modify-public or -private, as it is."""
        token = self._access(request)
        playlist_id = request.match_info["id"]
        if not is_base62_id(playlist_id):
            raise ApiError(400, "Invalid base62 id")
        playlist = self.state.playlists.get(playlist_id)
        if playlist is None:
            raise ApiError(404, "Resource not found")
        _require_scopes(token, [_playlist_scope(playlist.public)])
        if playlist.owner_id != token.user_id and not playlist.collaborative:
            raise ApiError(403, NOT_OWNER)
        uris = await _ids_param(request, "uris", PLAYLIST_MAX_URIS)
        for uri in uris:
            kind, _, item_id = uri.removeprefix("spotify:").partition(":")
            if not uri.startswith("spotify:") or kind != "track" or item_id not in self.state.tracks:
                raise ApiError(400, f"Invalid track uri: {uri}")
        endpoint = "POST /v1/playlists/{id}/items"
        self.state.add_to_playlist(token.user_id or "", playlist, uris, endpoint)
        return web.json_response({"snapshot_id": _snapshot_id(playlist)}, status=201)

    def _playlist(self, playlist: Playlist, api: str) -> dict[str, object]:
        """A playlist object; February 2026 renamed its `tracks` to `items`."""
        owner = self.state.users.get(playlist.owner_id)
        return {
            "collaborative": playlist.collaborative,
            "description": playlist.description,
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{playlist.id}"},
            "href": f"{api}/playlists/{playlist.id}",
            "id": playlist.id,
            "images": [],
            "name": playlist.name,
            "owner": {
                "display_name": owner.display_name if owner else playlist.owner_id,
                "external_urls": {"spotify": f"https://open.spotify.com/user/{playlist.owner_id}"},
                "href": f"{api}/users/{playlist.owner_id}",
                "id": playlist.owner_id,
                "type": "user",
                "uri": f"spotify:user:{playlist.owner_id}",
            },
            "public": playlist.public,
            "snapshot_id": _snapshot_id(playlist),
            "items": {"href": f"{api}/playlists/{playlist.id}/items", "total": len(playlist.items)},
            "type": "playlist",
            "uri": f"spotify:playlist:{playlist.id}",
        }

    # Web API: catalog

    async def get_album_tracks(self, request: web.Request) -> web.Response:
        """GET /v1/albums/{id}/tracks[?limit=&offset=&market=] → the album's tracks, as a paging object.
        developer.spotify.com/documentation/web-api/reference/get-an-albums-tracks"""
        token = self._access(request, user=False)
        album = _catalog_item(request, self.state.albums)
        limit = _int_param(request.query, "limit", 20, 1, 50)
        offset = _int_param(request.query, "offset", 0, 0, 100_000)
        market = self._market(request, token)
        _check_market(album.available_markets, market)
        api = _api_base(request)
        track_ids = self.state.album_tracks.get(album.id, [])
        page = [self._simple_track(self.state.tracks[i], api) for i in track_ids[offset : offset + limit]]
        return web.json_response(_paging(f"{api}/albums/{album.id}/tracks", page, offset, limit, len(track_ids)))

    async def get_album(self, request: web.Request) -> web.Response:
        """GET /v1/albums/{id}[?market=].
        developer.spotify.com/documentation/web-api/reference/get-an-album"""
        token = self._access(request, user=False)
        album = _catalog_item(request, self.state.albums)
        market = self._market(request, token)
        _check_market(album.available_markets, market)
        return web.json_response(self._album(album, _api_base(request), market, full=True))

    async def get_track(self, request: web.Request) -> web.Response:
        """GET /v1/tracks/{id}[?market=]. developer.spotify.com/documentation/web-api/reference/get-track"""
        token = self._access(request, user=False)
        track = _catalog_item(request, self.state.tracks)
        market = self._market(request, token)
        _check_market(track.available_markets, market)
        return web.json_response(self._track(track, _api_base(request), market))

    async def get_artist(self, request: web.Request) -> web.Response:
        """GET /v1/artists/{id}. developer.spotify.com/documentation/web-api/reference/get-an-artist"""
        self._access(request, user=False)
        artist = _catalog_item(request, self.state.artists)
        return web.json_response(self._artist(artist, _api_base(request), full=True))

    async def search(self, request: web.Request) -> web.Response:
        """GET /v1/search?q=&type=[&market=&limit=&offset=]; `upc:` finds albums, `isrc:` tracks, other
        words match names. developer.spotify.com/documentation/web-api/reference/search"""
        token = self._access(request, user=False)
        query = request.query
        q = query.get("q", "").strip()
        if not q:
            raise ApiError(400, "No search query")
        types = query.get("type", "").split(",")
        if types == [""]:
            raise ApiError(400, "Missing parameter type")
        if any(kind not in SEARCH_TYPES for kind in types):
            raise ApiError(400, "Bad search type field")
        limit = _int_param(query, "limit", 20, 0, 50)
        offset = _int_param(query, "offset", 0, 0, 1000)
        market = self._market(request, token)
        api = _api_base(request)
        words, filters = _parse_query(q)
        body = {}
        for kind in types:
            found = [item for item in self._search(kind, words, filters) if _available(item, market)]
            page = found[offset : offset + limit]
            body[f"{kind}s"] = {
                "href": _search_href(api, q, kind, offset, limit),
                "items": [self._render(item, api, market) for item in page],
                "limit": limit,
                "next": _search_href(api, q, kind, offset + limit, limit) if offset + limit < len(found) else None,
                "offset": offset,
                "previous": _search_href(api, q, kind, max(0, offset - limit), limit) if offset else None,
                "total": len(found),
            }
        return web.json_response(body)

    def _search(self, kind: str, words: list[str], filters: dict[str, str]) -> list[Album | Track | Artist]:
        state = self.state
        code = {"album": "upc", "track": "isrc"}.get(kind)
        if code is not None and code in filters:
            return state.find_by_code(kind, filters[code])
        if filters or not words:
            return []
        items: Iterable[Album | Track | Artist] = {
            "album": state.albums,
            "track": state.tracks,
            "artist": state.artists,
        }[kind].values()
        return [item for item in items if all(word in item.name.lower() for word in words)]

    def _market(self, request: web.Request, token: AccessToken) -> str | None:
        """The `market` parameter: an ISO 3166-1 alpha-2 code, or from_token for the user's country."""
        market = request.query.get("market")
        if market == "from_token":
            user = self.state.users.get(token.user_id or "")
            if user is None:
                raise ApiError(400, "Invalid market code")
            return user.country
        if market is not None and not MARKET.fullmatch(market):
            raise ApiError(400, "Invalid market code")
        return market

    # Web API: object shapes (developer.spotify.com/documentation/web-api/reference/get-an-album etc.)

    def _render(self, item: Album | Track | Artist, api: str, market: str | None) -> dict[str, object]:
        if isinstance(item, Album):
            return self._album(item, api, market, full=False)
        if isinstance(item, Track):
            return self._track(item, api, market)
        return self._artist(item, api, full=True)

    def _album(self, album: Album, api: str, market: str | None, *, full: bool) -> dict[str, object]:
        body: dict[str, object] = {
            "album_type": album.album_type,
            "total_tracks": album.total_tracks,
            **self._markets(album.available_markets, market),
            "external_urls": {"spotify": f"https://open.spotify.com/album/{album.id}"},
            "href": f"{api}/albums/{album.id}",
            "id": album.id,
            "images": [],
            "name": album.name,
            "release_date": album.release_date,
            "release_date_precision": album.release_date_precision,
            "type": "album",
            "uri": f"spotify:album:{album.id}",
            "artists": self._artists_of(album.artist_id, api),
            "external_ids": {"upc": album.upc},
        }
        if full:
            track_ids = self.state.album_tracks.get(album.id, [])
            body["label"] = album.label
            body["tracks"] = {
                "href": f"{api}/albums/{album.id}/tracks?offset=0&limit=50",
                "items": [self._simple_track(self.state.tracks[i], api) for i in track_ids[:50]],
                "limit": 50,
                "next": None,
                "offset": 0,
                "previous": None,
                "total": len(track_ids),
            }
        return body

    def _track(self, track: Track, api: str, market: str | None) -> dict[str, object]:
        album = self.state.albums.get(track.album_id)
        return {
            "album": self._album(album, api, market, full=False) if album else None,
            **self._simple_track(track, api),
            **self._markets(track.available_markets, market),
            "external_ids": {"isrc": track.isrc},
        }

    def _simple_track(self, track: Track, api: str) -> dict[str, object]:
        return {
            "artists": self._artists_of(track.artist_id, api),
            "disc_number": track.disc_number,
            "duration_ms": track.duration_ms,
            "explicit": track.explicit,
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track.id}"},
            "href": f"{api}/tracks/{track.id}",
            "id": track.id,
            "is_local": False,
            "name": track.name,
            "track_number": track.track_number,
            "type": "track",
            "uri": f"spotify:track:{track.id}",
        }

    def _artist(self, artist: Artist, api: str, *, full: bool) -> dict[str, object]:
        uri = f"spotify:artist:{artist.id}"
        body: dict[str, object] = {
            "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist.id}"},
            "href": f"{api}/artists/{artist.id}",
            "id": artist.id,
            "name": artist.name,
            "type": "artist",
            "uri": uri,
        }
        if full:
            body["followers"] = {"href": None, "total": self.state.artist_followers[uri]}
            body["genres"] = artist.genres
            body["images"] = []
        return body

    def _artists_of(self, artist_id: str, api: str) -> list[dict[str, object]]:
        artist = self.state.artists.get(artist_id)
        return [self._artist(artist, api, full=False)] if artist else []

    def _markets(self, available: list[str], market: str | None) -> dict[str, object]:
        """With a market Spotify answers `is_playable`; without one it lists `available_markets`, a field
        development mode no longer shows (February 2026)."""
        if market is not None:
            return {"is_playable": market in available}
        if self.state.faults.development_mode:
            return {}
        return {"available_markets": available}


_WRITE_SCOPE = {
    "album": "user-library-modify",
    "track": "user-library-modify",
    "artist": "user-follow-modify",
}
_READ_SCOPE = {"album": "user-library-read", "track": "user-library-read", "artist": "user-follow-read"}


def _library_scopes(kinds: set[str], *, write: bool) -> set[str]:
    return {(_WRITE_SCOPE if write else _READ_SCOPE)[kind] for kind in kinds}


def _require_scopes(token: AccessToken, scopes: Iterable[str]) -> None:
    if not token.scopes.issuperset(scopes):
        raise ApiError(403, "Insufficient client scope")


def _paging(href: str, items: list, offset: int, limit: int, total: int) -> dict[str, object]:
    """A paging object of `items`, the page at `offset` of `total` at `href`.
    developer.spotify.com/documentation/web-api/concepts/api-calls#pagination"""

    def at(start: int) -> str:
        return f"{href}?offset={start}&limit={limit}"

    return {
        "href": at(offset),
        "items": items,
        "limit": limit,
        "next": at(offset + limit) if offset + limit < total else None,
        "offset": offset,
        "previous": at(max(0, offset - limit)) if offset else None,
        "total": total,
    }


def _playlist_scope(public: bool) -> str:
    return "playlist-modify-public" if public else "playlist-modify-private"


def _snapshot_id(playlist: Playlist) -> str:
    return base64.b64encode(f"{playlist.version},{playlist.id}".encode()).decode()


async def _json_object(request: web.Request) -> dict:
    """The request's JSON object body; 400 as Spotify answers a body it can't read."""
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Error parsing json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Error parsing json")
    return body


def _catalog_item(request: web.Request, catalog: Mapping[str, Item]) -> Item:
    """The catalog entry whose id is in the path."""
    item_id = request.match_info["id"]
    if not is_base62_id(item_id):
        raise ApiError(400, "Invalid base62 id")
    item = catalog.get(item_id)
    if item is None:
        raise ApiError(404, "non existing id")
    return item


def _check_market(available: list[str], market: str | None) -> None:
    if market is not None and market not in available:
        raise ApiError(404, "Resource not found")


def _available(item: Album | Track | Artist, market: str | None) -> bool:
    return market is None or isinstance(item, Artist) or market in item.available_markets


def _follow_type(request: web.Request) -> None:
    if request.query.get("type") != "artist":
        raise ApiError(400, "type must be artist")


def _split(raw: str | None, name: str, limit: int) -> list[str]:
    values = [value for value in (raw or "").split(",") if value]
    if not values:
        raise ApiError(400, f"Missing required field: {name}")
    if len(values) > limit:
        raise ApiError(400, "Too many ids requested")
    return values


async def _ids_param(request: web.Request, name: str, limit: int) -> list[str]:
    """Comma-separated ids from the query string, or a JSON body `{name: [...]}` when the query has none."""
    if name in request.query or not request.can_read_body:
        return _split(request.query.get(name), name, limit)
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "Error parsing json") from None
    values = body.get(name) if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise ApiError(400, f"Missing required field: {name}")
    return _split(",".join(values), name, limit)


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(query.get(name, default))
    except ValueError:
        raise ApiError(400, f"Invalid {name}") from None
    if not low <= value <= high:
        raise ApiError(400, f"Invalid {name}")
    return value


def _parse_query(q: str) -> tuple[list[str], dict[str, str]]:
    """Split a search query into plain words and `field:value` filters."""
    words, filters = [], {}
    for part in q.split():
        field, sep, value = part.partition(":")
        if sep and value:
            filters[field.lower()] = value
        else:
            words.append(part.lower())
    return words, filters


def _search_href(api: str, q: str, kind: str, offset: int, limit: int) -> str:
    return f"{api}/search?{urlencode({'query': q, 'type': kind, 'offset': offset, 'limit': limit})}"


def _token_response(token: AccessToken, scope: str, refresh_token: str | None) -> web.Response:
    body = {
        "access_token": token.token,
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": ACCESS_TOKEN_SECONDS,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return web.json_response(body)


def _unauthorized(message: str) -> ApiError:
    challenge = f'Bearer realm="spotify", error="invalid_token", error_description="{message}"'
    return ApiError(401, message, {"WWW-Authenticate": challenge})


def _redirect(auth: AuthorizeRequest, **params: str) -> URL:
    """The app's redirect URI with `params` and the app's `state` added to its query."""
    if auth.state is not None:
        params["state"] = auth.state
    return URL(auth.redirect_uri).update_query(params)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """(client_id, client_secret) from an `Authorization: Basic …` header, or None when malformed."""
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError are both ValueErrors
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


def _s256(verifier: str) -> str:
    """The PKCE S256 challenge of `verifier` (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _api_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{PREFIX}/api/v1"
