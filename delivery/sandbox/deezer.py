"""Deezer's OAuth and simple API, served under `/deezer`.

`/deezer/connect` stands for https://connect.deezer.com and `/deezer/api` for https://api.deezer.com. The
sandbox's users and catalog are shared with the other services; Deezer sees them under numeric ids derived
from the catalog's. As on Deezer, errors are answered with HTTP 200 and `{"error": {"type", "message",
"code"}}` (developers.deezer.com/api/errors), the quota included (code 4); server faults keep their 5xx.
Library writes are logged as `deezer:album:<catalog id>` (`track`, `artist`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web
from yarl import URL

from delivery.sandbox import login_page
from delivery.sandbox.faults import Kind
from delivery.sandbox.service_app import ServiceApiError, make_service_app
from delivery.sandbox.state import AccessToken, Album, Artist, Client, SandboxState, Track

PREFIX = "/deezer"
KEY = "deezer"
DEFAULT_APP_ID = "100001"
DEFAULT_SECRET = "sandbox-deezer-secret"
PERMS = {
    "basic_access": "Access your basic information",
    "email": "Get your email address",
    "offline_access": "Access your data at any time",
    "manage_library": "Manage your library",
    "manage_community": "Manage your friends",
    "delete_library": "Delete items from your library",
    "listening_history": "Access your listening history",
}
CODE_PREFIX = "fr"
TOKEN_PREFIX = "frDZ"
SERVER_ERROR_CODE = 700  # "Service busy"
CODES = {"album": "upc", "track": "isrc"}  # what /album/upc:… and /track/isrc:… look up
NO_DATA = ("DataException", "no data", 800)  # an unknown id, UPC, ISRC or path


class DeezerError(ServiceApiError):
    def __init__(self, kind: str, message: str, code: int) -> None:
        super().__init__(message)
        self.kind, self.message, self.code = kind, message, code

    def response(self, request: web.Request) -> web.Response:
        return web.json_response(error_body(self.kind, self.message, self.code))


def no_data() -> DeezerError:
    return DeezerError(*NO_DATA)


def error_body(kind: str, message: str, code: int) -> dict:
    return {"error": {"type": kind, "message": message, "code": code}}


def fault_error(
    status: int, message: str, *, reason: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    """Faults in Deezer's words: the quota is a 200 with code 4, server faults keep their status."""
    if status == 429:
        return web.json_response(error_body("Exception", "Quota limit exceeded", 4))
    return web.json_response(error_body("Exception", message, SERVER_ERROR_CODE), status=status)


def numeric_id(kind: str, catalog_id: str) -> int:
    """The Deezer id of a catalog item or user: a stable 9-digit number."""
    digest = hashlib.sha256(f"deezer:{kind}:{catalog_id}".encode()).digest()
    return 100_000_000 + int.from_bytes(digest[:8], "big") % 900_000_000


def make_deezer_app(state: SandboxState) -> web.Application:
    """The sub-application to mount at PREFIX; unknown API paths answer "no data", as Deezer does."""
    app = make_service_app(
        state,
        DeezerService(state),
        fault_error=fault_error,
        api_path=f"{PREFIX}/api/",
        unknown=lambda status: web.json_response(error_body(*NO_DATA)),
    )

    @web.middleware
    async def edge_denies(request: web.Request, handler) -> web.StreamResponse:
        """`faults.deezer_edge_denies`: the edge in front of Deezer's API answers 403 in HTML, no Deezer error."""
        if state.faults.deezer_edge_denies and request.path.startswith(f"{PREFIX}/api/"):
            return web.Response(
                status=403, text="<html><body><h1>403 Forbidden</h1></body></html>", content_type="text/html"
            )
        return await handler(request)

    app.middlewares.append(edge_denies)
    return app


class DeezerService:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        state.use_service_ids(KEY, lambda kind, catalog_id: str(numeric_id(kind, catalog_id)))
        self.codes: dict[str, tuple[str, str, str]] = {}  # code → (app id, user id, perms)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/connect/oauth/auth.php", self.authorize),
            web.post("/connect/oauth/decide", self.decide),
            web.get("/connect/oauth/access_token.php", self.access_token),
            web.get("/api/user/me", self.me),
            web.post("/api/user/me/albums", self.add_album),
            web.post("/api/user/me/tracks", self.add_track),
            web.post("/api/user/me/artists", self.follow_artist),
            web.get("/api/user/me/albums", self.list_albums),
            web.get("/api/album/{id}", self.album),
            web.get("/api/track/{id}", self.track),
        ]

    async def classify(self, request: web.Request) -> tuple[Kind, str | None]:
        path = request.path
        if path.startswith(f"{PREFIX}/api/"):
            # The quota counts the app's public catalog lookups (no token) as well as its fans' calls.
            token = self.state.access_tokens.get(request.query.get("access_token", ""))
            if token and token.service == KEY:
                return Kind.API, token.client_id
            app = self.state.service_apps.get(KEY)
            return Kind.API, app.id if app else None
        app_id = request.query.get("app_id", "")
        kind = Kind.TOKEN if path.endswith("access_token.php") else Kind.PAGE
        return kind, app_id if self._app(app_id) else None

    def _app(self, app_id: str) -> Client | None:
        app = self.state.service_apps.get(KEY)
        return app if app and app.id == app_id else None

    # OAuth

    async def authorize(self, request: web.Request) -> web.Response:
        """GET /oauth/auth.php?app_id&redirect_uri&perms[&state]: the login and consent page.
        developers.deezer.com/api/oauth"""
        params = self._authorize_params(request.query)
        return self._page(params)

    def _authorize_params(self, query: Mapping[str, object]) -> dict[str, str]:
        params = {name: str(query[name]) for name in ("app_id", "redirect_uri", "perms", "state") if name in query}
        app = self._app(params.get("app_id", ""))
        if app is None:
            raise login_page.page_error("Wrong app_id")
        if not app.accepts_redirect_uri(params.get("redirect_uri", "")):
            raise login_page.page_error("Wrong redirect_uri")
        perms = [perm for perm in params.get("perms", "").split(",") if perm]
        if any(perm not in PERMS for perm in perms):
            raise login_page.page_error("Wrong perms")
        return params

    def _page(self, params: dict[str, str], error: str = "", status: int = 200) -> web.Response:
        html = login_page.login_page(
            client_name="Presave (sandbox Deezer app)",
            params=params,
            scope_words=[PERMS[perm] for perm in params.get("perms", "").split(",") if perm],
            users=list(self.state.users.values()),
            error=error,
            service="Deezer",
            action=f"{PREFIX}/connect/oauth/decide",
        )
        return web.Response(text=html, content_type="text/html", status=status)

    async def decide(self, request: web.Request) -> web.Response:
        """The login page's form: allow redirects with `code`, cancel with `error_reason=user_denied`."""
        form = await request.post()
        params = self._authorize_params(form)
        back = {"state": params["state"]} if "state" in params else {}
        if form.get("decision") != "agree":
            raise web.HTTPFound(URL(params["redirect_uri"]).update_query(error_reason="user_denied", **back))
        user_id = login_page.chosen_user(self.state, str(form.get("user", "")), str(form.get("new_user", "")))
        if user_id is None:
            return self._page(params, error="Choose a user, or type a name for a new one.", status=400)
        code = CODE_PREFIX + hashlib.sha256(f"{user_id}:{len(self.codes)}:{self.state.now()}".encode()).hexdigest()
        self.codes[code] = (params["app_id"], user_id, params.get("perms", ""))
        raise web.HTTPFound(URL(params["redirect_uri"]).update_query(code=code, **back))

    async def access_token(self, request: web.Request) -> web.Response:
        """GET /oauth/access_token.php?app_id&secret&code[&output=json] → access_token and expires (0 with
        offline_access). developers.deezer.com/api/oauth"""
        query = request.query
        app = self._app(query.get("app_id", ""))
        if app is None or not hmac.compare_digest(query.get("secret", "").encode(), app.secret.encode()):
            raise DeezerError("OAuthException", "Wrong app_id or secret", 300)
        taken = self.codes.pop(query.get("code", ""), None)
        if taken is None or taken[0] != app.id:
            raise DeezerError("OAuthException", "Invalid OAuth code", 300)
        _, user_id, perms = taken
        token = self.state.issue_lasting_token(KEY, app.id, user_id, perms, TOKEN_PREFIX)
        expires = 0 if "offline_access" in token.scopes else 3600
        if query.get("output") == "json":
            return web.json_response({"access_token": token.token, "expires": expires})
        return web.Response(text=urlencode({"access_token": token.token, "expires": expires}))

    # API

    def _token(self, request: web.Request, perm: str | None = None) -> AccessToken:
        value = request.query.get("access_token", "")
        if not value:
            raise DeezerError(
                "OAuthException", "An active access token must be used to query information about the current user", 200
            )
        token = self.state.access_tokens.get(value)
        if token is None or token.service != KEY:
            raise DeezerError("OAuthException", "Invalid OAuth access token.", 300)
        if perm and perm not in token.scopes:
            raise DeezerError("OAuthException", "Permission denied", 200)
        return token

    async def me(self, request: web.Request) -> web.Response:
        """GET /user/me. developers.deezer.com/api/user"""
        token = self._token(request)
        user = self.state.users[token.user_id or ""]
        uid = numeric_id("user", user.id)
        body = {
            "id": uid,
            "name": user.display_name,
            "country": user.country,
            "link": f"https://www.deezer.com/profile/{uid}",
            "type": "user",
        }
        if "email" in token.scopes:
            body["email"] = user.email
        return web.json_response(body)

    async def add_album(self, request: web.Request) -> web.Response:
        """POST /user/me/albums?album_id= → true. developers.deezer.com/api/user/albums"""
        return self._write(request, "album")

    async def add_track(self, request: web.Request) -> web.Response:
        """POST /user/me/tracks?track_id= → true. developers.deezer.com/api/user/tracks"""
        return self._write(request, "track")

    async def follow_artist(self, request: web.Request) -> web.Response:
        """POST /user/me/artists?artist_id= → true. developers.deezer.com/api/user/artists"""
        return self._write(request, "artist")

    def _write(self, request: web.Request, kind: str) -> web.Response:
        token = self._token(request, "manage_library")
        raw = request.query.get(f"{kind}_id", "")
        if not raw:
            raise DeezerError("ParameterException", f"Missing parameters: {kind}_id", 501)
        catalog_id = self._catalog_id(kind, raw)
        self.state.save(token.user_id or "", f"{KEY}:{kind}:{catalog_id}", f"POST /user/me/{kind}s")
        return web.json_response(True)

    async def list_albums(self, request: web.Request) -> web.Response:
        """GET /user/me/albums: the fan's favourite albums. developers.deezer.com/api/user/albums"""
        token = self._token(request)
        library = self.state.library(token.user_id or "")
        prefix = f"{KEY}:album:"
        data = [
            self._album(self.state.albums[uri[len(prefix) :]])
            for uri in library.saved
            if uri.startswith(prefix) and uri[len(prefix) :] in self.state.albums
        ]
        return web.json_response({"data": data, "total": len(data)})

    async def album(self, request: web.Request) -> web.Response:
        """GET /album/<id> or /album/upc:<upc>. developers.deezer.com/api/album"""
        return web.json_response(self._album(self.state.albums[self._in_path(request, "album")]))

    async def track(self, request: web.Request) -> web.Response:
        """GET /track/<id> or /track/isrc:<isrc>. developers.deezer.com/api/track"""
        return web.json_response(self._track(self.state.tracks[self._in_path(request, "track")]))

    def _in_path(self, request: web.Request, kind: str) -> str:
        """The catalog id of the album or track in the path: its Deezer id, or `upc:<upc>` (`isrc:<isrc>`)."""
        raw = request.match_info["id"]
        code, sep, value = raw.partition(":")
        if not sep:
            return self._catalog_id(kind, raw)
        found = self.state.find_by_code(kind, value) if code == CODES[kind] else []
        if not found:
            raise no_data()
        return found[0].id

    def _catalog_id(self, kind: str, deezer_id: str) -> str:
        """The catalog id of the album, track or artist Deezer knows as `deezer_id` (one dict lookup)."""
        catalog_id = self.state.find_by_service_id(KEY, kind, deezer_id)
        if catalog_id is None:
            raise no_data()
        return catalog_id

    def _artist(self, artist_id: str) -> dict:
        artist: Artist | None = self.state.artists.get(artist_id)
        return {"id": numeric_id("artist", artist_id), "name": artist.name if artist else "", "type": "artist"}

    def _album(self, album: Album) -> dict:
        deezer_id = numeric_id("album", album.id)
        return {
            "id": deezer_id,
            "title": album.name,
            "upc": album.upc,
            "link": f"https://www.deezer.com/album/{deezer_id}",
            "release_date": album.release_date,
            "record_type": album.album_type,
            "available": bool(album.available_markets),
            "artist": self._artist(album.artist_id),
            "tracks": {"data": [self._album_track(track) for track in self._tracks_of(album)]},
            "type": "album",
        }

    def _tracks_of(self, album: Album) -> list[Track]:
        tracks = [self.state.tracks[track_id] for track_id in self.state.album_tracks.get(album.id, [])]
        return sorted(tracks, key=lambda track: (track.disc_number, track.track_number))

    def _album_track(self, track: Track) -> dict:
        """A track as the album lists it."""
        return _track_fields(track, self.state.track_markets(track))

    def _track(self, track: Track) -> dict:
        """A track on its own (/track/<id>): out in the same markets as in its album's list."""
        return {
            **_track_fields(track, self.state.track_markets(track)),
            "artist": self._artist(track.artist_id),
            "album": {"id": numeric_id("album", track.album_id), "type": "album"},
        }


def _track_fields(track: Track, available_countries: list[str]) -> dict:
    """What every track object carries, wherever Deezer lists it: id, title, ISRC, link, markets, type."""
    deezer_id = numeric_id("track", track.id)
    return {
        "id": deezer_id,
        "title": track.name,
        "isrc": track.isrc,
        "link": f"https://www.deezer.com/track/{deezer_id}",
        "available_countries": available_countries,
        "type": "track",
    }


def authorize_user(state: SandboxState, user_id: str, perms: str) -> AccessToken:
    """A fan who already agreed: mint a lasting token (the control API's direct authorization)."""
    app = state.service_apps[KEY]
    return state.issue_lasting_token(KEY, app.id, user_id, perms, TOKEN_PREFIX)
