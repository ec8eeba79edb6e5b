"""Apple Music API and a MusicKit JS stand-in, served under `/apple_music`.

`/apple_music/api` stands for https://api.music.apple.com; `/apple_music/musickit.js` for Apple's MusicKit JS
(the small part the project uses: `MusicKit.configure`, `getInstance().authorize()`, the `musickitloaded`
event). Every API request must carry a developer token signed with the configured MusicKit key: the sandbox
checks its ES256 signature with the public key, its `kid`, `iss`, `iat` and `exp` (401 otherwise); personal
endpoints also need a valid Music-User-Token (403 otherwise; 401 for the users a fault switch names, Apple's
other answer to a token it no longer honours). Errors are `{"errors": [{"id", "title",
"detail", "status", "code"}]}` (developer.apple.com/documentation/applemusicapi/handling-requests-and-responses).
Catalog ids are numeric strings derived from the shared catalog; writes are logged as
`apple_music:album:<catalog id>` (`song`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from pathlib import Path

import jwt
from aiohttp import web

from delivery.sandbox.faults import Kind
from delivery.sandbox.login_page import chosen_user
from delivery.sandbox.service_app import ServiceApiError, make_service_app
from delivery.sandbox.state import AccessToken, Album, MusicKitKey, SandboxState, Track

PREFIX = "/apple_music"
KEY = "apple_music"
MAX_TOKEN_SECONDS = 15_777_000  # six months
TOKEN_PREFIX = "AmUT"
MUSICKIT_JS = Path(__file__).with_name("musickit_standin.js")
KINDS = {"albums": "album", "songs": "song"}  # Apple's resource types, and its word for one of them
CATALOG_KINDS = {"albums": "album", "songs": "track"}  # … and the sandbox catalog's
CODES = {"albums": "upc", "songs": "isrc"}  # the filter[…] that finds them by code
UNKNOWN = {404: "Resource Not Found", 405: "Method Not Allowed"}


class AppleError(ServiceApiError):
    def __init__(self, status: int, code: str, title: str, detail: str = "") -> None:
        super().__init__(title)
        self.status, self.code, self.title, self.detail = status, code, title, detail

    def response(self, request: web.Request) -> web.Response:
        return error_response(self.status, self.title, detail=self.detail, code=self.code, headers=_cors(request))


def error_response(
    status: int,
    message: str,
    *,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
    detail: str = "",
    code: str = "",
) -> web.Response:
    """`{"errors": [{"id", "title", "detail", "status", "code"}]}`."""
    error = {"id": secrets.token_hex(8).upper(), "title": message, "status": str(status), "code": code or f"{status}00"}
    if detail:
        error["detail"] = detail
    return web.json_response({"errors": [error]}, status=status, headers=headers)


def catalog_id(kind: str, item_id: str) -> str:
    """Apple's numeric catalog id for a catalog item of the sandbox (`kind`: album, song)."""
    digest = hashlib.sha256(f"apple:{kind}:{item_id}".encode()).digest()
    return str(1_000_000_000 + int.from_bytes(digest[:8], "big") % 900_000_000)


def catalog_id_of(kind: str, item_id: str) -> str:
    """Apple's catalog id for the sandbox catalog's `kind` (album, track, artist) of item."""
    return catalog_id("song" if kind == "track" else kind, item_id)


def make_apple_music_app(state: SandboxState) -> web.Application:
    """The sub-application to mount at PREFIX."""
    return make_service_app(
        state,
        AppleMusicService(state),
        fault_error=error_response,
        api_path=f"{PREFIX}/api/",
        unknown=lambda status: error_response(status, UNKNOWN[status]),
    )


class AppleMusicService:
    def __init__(self, state: SandboxState) -> None:
        self.state = state
        state.use_service_ids(KEY, lambda kind, catalog_id: catalog_id_of(kind, catalog_id))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/musickit.js", self.musickit_js),
            web.post("/musickit/authorize", self.musickit_authorize),
            web.options("/musickit/authorize", self.preflight),
            web.get("/api/v1/me/storefront", self.storefront),
            web.get("/api/v1/storefronts/{id:[a-z]{2}}", self.storefront_by_id),
            web.post("/api/v1/me/library", self.add_to_library),
            web.get("/api/v1/catalog/{storefront}/{kind:albums|songs}", self.by_code),
            web.get("/api/v1/catalog/{storefront}/{kind}/{id}", self.catalog_item),
            web.get("/api/v1/catalog/{storefront}/{kind}/{id}/library", self.library_relationship),
        ]

    async def classify(self, request: web.Request) -> tuple[Kind, str | None]:
        path = request.path
        kind = Kind.API if path.startswith(f"{PREFIX}/api/") else Kind.TOKEN if "authorize" in path else Kind.PAGE
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            try:
                kid = jwt.get_unverified_header(header[7:]).get("kid")
            except jwt.PyJWTError:
                kid = None
            return kind, kid if kid in self.state.musickit_keys else None
        return kind, None

    # Tokens

    def _developer(self, token: str) -> MusicKitKey:
        """The MusicKit key that signed `token`, after checking the token as Apple does."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AppleError(401, "40100", "Unauthenticated", "Malformed developer token") from None
        key = self.state.musickit_keys.get(str(header.get("kid", "")))
        if header.get("alg") != "ES256" or key is None:
            raise AppleError(401, "40100", "Unauthenticated", "Unknown key id or algorithm")
        if key.key_id in (self.state.faults.apple_revoked_keys or ()):
            raise AppleError(401, "40100", "Unauthenticated", "The key that signed the developer token was revoked")
        try:
            claims = jwt.decode(
                token,
                key.public_key_pem,
                algorithms=["ES256"],
                issuer=key.team_id,
                options={"require": ["iss", "iat", "exp"], "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise AppleError(401, "40100", "Unauthenticated", f"Invalid developer token: {exc}") from None
        now = self.state.now()
        if not isinstance(claims["exp"], int | float) or not isinstance(claims["iat"], int | float):
            raise AppleError(401, "40100", "Unauthenticated", "iat and exp must be numbers")
        if claims["exp"] <= now:
            raise AppleError(401, "40100", "Unauthenticated", "The developer token expired")
        if claims["iat"] > now + 60 or claims["exp"] - claims["iat"] > MAX_TOKEN_SECONDS:
            raise AppleError(401, "40100", "Unauthenticated", "iat is in the future or exp is beyond six months")
        return key

    def _bearer(self, request: web.Request) -> MusicKitKey:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise AppleError(401, "40100", "Unauthenticated", "A developer token is required")
        return self._developer(header[7:])

    def _user(self, request: web.Request) -> AccessToken:
        self._bearer(request)
        token = self.state.access_tokens.get(request.headers.get("Music-User-Token", ""))
        if token is None or token.service != KEY:
            raise AppleError(403, "40300", "Forbidden", "Invalid authentication")
        if token.user_id in (self.state.faults.apple_unauthorized_users or ()):
            raise AppleError(401, "40100", "Unauthenticated", "Invalid Music-User-Token")
        if token.user_id in (self.state.faults.apple_unsubscribed_users or ()):
            detail = "User does not have access to privilege: CloudLibrary"
            raise AppleError(400, "40015", "Insufficient Privileges", detail)
        return token

    # MusicKit JS stand-in

    async def musickit_js(self, request: web.Request) -> web.Response:
        """The MusicKit JS stand-in: MusicKit.configure, getInstance().authorize() with a sandbox consent step."""
        return web.Response(
            text=MUSICKIT_JS.read_text(), content_type="application/javascript", headers={"Cache-Control": "no-cache"}
        )

    async def preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers=_cors(request))

    async def musickit_authorize(self, request: web.Request) -> web.Response:
        """What Apple's sign-in window does for MusicKit JS: the fan agreed as `user`; answer a Music-User-Token
        for the app whose developer token is given. Body (JSON): {"developerToken", "user"}."""
        try:
            body = json.loads(await request.text())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AppleError(400, "40000", "Bad Request", "The body must be a JSON object")
        key = self._developer(str(body.get("developerToken", "")))
        user_id = chosen_user(self.state, "", str(body.get("user", "")))
        if user_id is None:
            raise AppleError(400, "40000", "Bad Request", "Type a name to sign in as")
        token = authorize_user(self.state, user_id, key)
        return web.json_response({"musicUserToken": token.token}, headers=_cors(request))

    # API

    async def storefront(self, request: web.Request) -> web.Response:
        """GET /v1/me/storefront. developer.apple.com/documentation/applemusicapi/get-a-user-s-storefront"""
        token = self._user(request)
        return web.json_response({"data": [_storefront(self.state.users[token.user_id or ""].country.lower())]})

    async def storefront_by_id(self, request: web.Request) -> web.Response:
        """GET /v1/storefronts/{id}: a catalog call (the developer token only).
        developer.apple.com/documentation/applemusicapi/get-a-storefront"""
        self._bearer(request)
        return web.json_response({"data": [_storefront(request.match_info["id"])]})

    async def add_to_library(self, request: web.Request) -> web.Response:
        """POST /v1/me/library?ids[albums]=…&ids[songs]=… → 202, no body; ids it can't add (unknown, or not in
        the fan's own storefront) are silently ignored.
        developer.apple.com/documentation/applemusicapi/add-a-resource-to-a-library"""
        token = self._user(request)
        ids = {kind: request.query.get(f"ids[{kind}]", "") for kind in KINDS}
        if not any(ids.values()):
            raise AppleError(400, "40000", "Bad Request", "ids[albums] or ids[songs] is required")
        if self.state.faults.apple_ignores_library_adds:
            return web.Response(status=202)
        storefront = self.state.users[token.user_id or ""].country
        for kind, raw in ids.items():
            for value in filter(None, raw.split(",")):
                item = self._item(kind, value)
                if item is not None and _in(item, storefront):
                    uri = f"{KEY}:{KINDS[kind]}:{item.id}"
                    self.state.save(token.user_id or "", uri, "POST /v1/me/library")
        return web.Response(status=202)

    async def by_code(self, request: web.Request) -> web.Response:
        """GET /v1/catalog/{storefront}/albums?filter[upc]= and …/songs?filter[isrc]=.
        developer.apple.com/documentation/applemusicapi/get-multiple-catalog-albums-by-upc and
        …/get-multiple-catalog-songs-by-isrc"""
        self._bearer(request)
        kind, storefront = request.match_info["kind"], request.match_info["storefront"]
        name = f"filter[{CODES[kind]}]"
        code = request.query.get(name, "")
        if not code:
            raise AppleError(400, "40000", "Bad Request", f"{name} is required")
        items = [item for item in self.state.find_by_code(CATALOG_KINDS[kind], code) if _in(item, storefront)]
        return web.json_response({"data": [self._render(item, storefront) for item in items]})

    async def catalog_item(self, request: web.Request) -> web.Response:
        """GET /v1/catalog/{storefront}/albums/{id} (…/songs/{id}): 404 where it is not available.
        developer.apple.com/documentation/applemusicapi/get-a-catalog-album"""
        self._bearer(request)
        kind, storefront = request.match_info["kind"], request.match_info["storefront"]
        item = self._item(kind, request.match_info["id"])
        if item is None or not _in(item, storefront):
            raise AppleError(404, "40400", "Resource Not Found", "Resource with requested id was not found")
        return web.json_response({"data": [self._render(item, storefront)]})

    async def library_relationship(self, request: web.Request) -> web.Response:
        """GET /v1/catalog/{storefront}/albums/{id}/library: the fan's library copy, if they have one.
        developer.apple.com/documentation/applemusicapi/get-a-catalog-album-s-relationship-directly-by-name"""
        token = self._user(request)
        kind = request.match_info["kind"]
        item = self._item(kind, request.match_info["id"])
        if item is None:
            raise AppleError(404, "40400", "Resource Not Found", "Resource with requested id was not found")
        uri = f"{KEY}:{KINDS[kind]}:{item.id}"
        if not self.state.contains(token.user_id or "", uri):
            return web.json_response({"data": []})
        library_id = "l." + hashlib.sha256(f"{token.user_id}:{uri}".encode()).hexdigest()[:7]
        return web.json_response({"data": [{"id": library_id, "type": f"library-{kind}", "attributes": {}}]})

    def _item(self, kind: str, value: str) -> Album | Track | None:
        item_id = self._find(kind, value)
        if item_id is None:
            return None
        return (self.state.albums if kind == "albums" else self.state.tracks).get(item_id)

    def _find(self, kind: str, value: str) -> str | None:
        """The catalog id of the album or song (`kind`: albums, songs) Apple knows as `value` (one dict lookup)."""
        return self.state.find_by_service_id(KEY, CATALOG_KINDS.get(kind, ""), value)

    def _render(self, item: Album | Track, storefront: str) -> dict:
        return self._album(item, storefront) if isinstance(item, Album) else self._song(item, storefront)

    def _album(self, album: Album, storefront: str) -> dict:
        apple_id = catalog_id("album", album.id)
        artist = self.state.artists.get(album.artist_id)
        return {
            "id": apple_id,
            "type": "albums",
            "href": f"/v1/catalog/{storefront}/albums/{apple_id}",
            "attributes": {
                "name": album.name,
                "artistName": artist.name if artist else "",
                "upc": album.upc,
                "releaseDate": album.release_date,
                "trackCount": album.total_tracks,
                "isSingle": album.album_type == "single",
                "url": f"https://music.apple.com/{storefront}/album/{apple_id}",
                "playParams": {"id": apple_id, "kind": "album"},
            },
        }

    def _song(self, track: Track, storefront: str) -> dict:
        apple_id = catalog_id("song", track.id)
        return {
            "id": apple_id,
            "type": "songs",
            "href": f"/v1/catalog/{storefront}/songs/{apple_id}",
            "attributes": {
                "name": track.name,
                "isrc": track.isrc,
                "durationInMillis": track.duration_ms,
                "url": f"https://music.apple.com/{storefront}/song/{apple_id}",
                "playParams": {"id": apple_id, "kind": "song"},
            },
        }


def authorize_user(state: SandboxState, user_id: str, key: MusicKitKey | None = None) -> AccessToken:
    """A fan who agreed in MusicKit's sign-in window: a Music-User-Token for the app (no expiry, no refresh)."""
    key = key or next(iter(state.musickit_keys.values()))
    return state.issue_lasting_token(KEY, key.key_id, user_id, "library", TOKEN_PREFIX)


def _storefront(storefront: str) -> dict:
    return {"id": storefront, "type": "storefronts", "href": f"/v1/storefronts/{storefront}", "attributes": {}}


def _in(item: Album | Track, storefront: str) -> bool:
    return storefront.upper() in item.available_markets


def _cors(request: web.Request) -> dict[str, str]:
    """MusicKit JS runs on the app's own pages: its calls to the sandbox are cross-origin."""
    return {
        "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type",
        "Vary": "Origin",
    }
