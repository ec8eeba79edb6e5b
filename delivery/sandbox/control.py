"""The control API under `/_sandbox/`: JSON, no authentication (the sandbox binds to 127.0.0.1).

Tests and benchmarks use it to reset the world, flip fault switches, seed users, tokens and releases, and
read back what the services were asked to do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import UTC, datetime
from html import escape
from typing import Any

from aiohttp import web

from delivery.sandbox import apple_music, deezer, demo_catalog
from delivery.sandbox.faults import window_used
from delivery.sandbox.spotify import SCOPES
from delivery.sandbox.state import (
    ACCESS_TOKEN_SECONDS,
    Album,
    Artist,
    Faults,
    SandboxState,
    Track,
    User,
    base62_id,
    is_base62_id,
)

PREFIX = "/_sandbox"
DEFAULT_SCOPE = "user-library-modify user-follow-modify user-read-email"
MAX_LISTED_USERS = 200


def make_control_app(state: SandboxState) -> web.Application:
    """The sub-application to mount at PREFIX."""
    control = Control(state)
    app = web.Application()
    app.add_routes(
        [
            web.get("/", control.overview),
            web.get("/health", control.health),
            web.post("/reset", control.reset),
            web.get("/faults", control.get_faults),
            web.post("/faults", control.set_faults),
            web.get("/users", control.list_users),
            web.post("/users", control.add_user),
            web.post("/users/bulk-authorize", control.bulk_authorize),
            web.post("/users/{id}/revoke", control.revoke_user),
            web.post("/users/{id}/age", control.age_user),
            web.post("/users/{id}/authorize", control.authorize_user),
            web.get("/users/{id}/library", control.user_library),
            web.get("/users/{id}/playlists", control.user_playlists),
            web.post("/deezer/users/{id}/authorize", control.authorize_deezer_user),
            web.post("/apple_music/users/{id}/authorize", control.authorize_apple_music_user),
            web.post("/catalog/artists", control.add_artist),
            web.post("/catalog/albums", control.add_album),
            web.post("/catalog/tracks", control.add_track),
            web.post("/catalog/{kind}/{id}/markets", control.set_markets),
            web.get("/writes", control.writes),
            web.get("/counters", control.get_counters),
        ]
    )
    return app


class Control:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def health(self, request: web.Request) -> web.Response:
        """GET /_sandbox/health → {"ok": true}"""
        return web.json_response({"ok": True})

    async def reset(self, request: web.Request) -> web.Response:
        """POST /_sandbox/reset: back to the demo world, faults off, logs and counters cleared."""
        self.state.reset()
        demo_catalog.load(self.state)
        return web.json_response({"ok": True})

    # Faults

    async def get_faults(self, request: web.Request) -> web.Response:
        """GET /_sandbox/faults → every switch and its value."""
        return web.json_response(asdict(self.state.faults))

    async def set_faults(self, request: web.Request) -> web.Response:
        """POST /_sandbox/faults with any switches to change; answers every switch and its value."""
        body = await _json_body(request)
        faults = self.state.faults
        known = {f.name for f in fields(Faults)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise _bad_request(f"Unknown fault switches: {', '.join(unknown)}")
        changes = {name: _fault_value(name, value) for name, value in body.items()}
        for name, value in changes.items():
            if name == "seed":
                self.state.set_seed(value)
            else:
                setattr(faults, name, value)
        return web.json_response(asdict(faults))

    # Users and their tokens

    async def list_users(self, request: web.Request) -> web.Response:
        """GET /_sandbox/users → [user, ...]"""
        return web.json_response([_user_json(user) for user in self.state.users.values()])

    async def add_user(self, request: web.Request) -> web.Response:
        """POST /_sandbox/users {"id", "display_name", "email", "country"}: create (201) or replace (200)."""
        body = await _json_body(request)
        user_id = _text(body, "id")
        country = _text(body, "country", "GB")
        if not _is_market(country):
            raise _bad_request("country must be an ISO 3166-1 alpha-2 code such as GB")
        user, created = self.state.add_user(user_id, _text(body, "display_name", ""), _text(body, "email", ""), country)
        return web.json_response(_user_json(user), status=201 if created else 200)

    async def revoke_user(self, request: web.Request) -> web.Response:
        """POST /_sandbox/users/<id>/revoke: the fan removed the app; all their tokens die."""
        user = self._user(request)
        return web.json_response({"user": user.id, "revoked_grants": self.state.revoke_user(user.id)})

    async def age_user(self, request: web.Request) -> web.Response:
        """POST /_sandbox/users/<id>/age {"days": 190}: move their authorizations that far into the past."""
        user = self._user(request)
        days = _number(await _json_body(request), "days")
        return web.json_response({"user": user.id, "aged_grants": self.state.age_user(user.id, days * 86400)})

    async def authorize_user(self, request: web.Request) -> web.Response:
        """POST /_sandbox/users/<id>/authorize {"client_id", "scope"}: mint tokens as if the user had agreed
        on the login page and the app had exchanged the code (Basic client auth)."""
        user = self._user(request)
        body = await _json_body(request)
        client_id, scope = self._grant_request(body)
        grant = self.state.authorize(user.id, client_id, scope, public=False)
        token = self.state.issue_access_token(client_id, grant)
        return web.json_response(
            {
                "access_token": token.token,
                "token_type": "Bearer",
                "scope": scope,
                "expires_in": ACCESS_TOKEN_SECONDS,
                "refresh_token": grant.refresh_token,
            }
        )

    async def authorize_deezer_user(self, request: web.Request) -> web.Response:
        """POST /_sandbox/deezer/users/<id>/authorize {"perms": "basic_access,offline_access,manage_library"}:
        a lasting Deezer token, as if the user had agreed and the app had exchanged the code."""
        user = self._user(request)
        perms = _text(await _json_body(request), "perms", "basic_access,offline_access,manage_library")
        unknown = [perm for perm in perms.split(",") if perm not in deezer.PERMS]
        if unknown:
            raise _bad_request(f"Unknown perms: {','.join(unknown)}")
        token = deezer.authorize_user(self.state, user.id, perms)
        return web.json_response({"access_token": token.token, "expires": 0})

    async def authorize_apple_music_user(self, request: web.Request) -> web.Response:
        """POST /_sandbox/apple_music/users/<id>/authorize: a Music-User-Token, as if the user had allowed the
        app in MusicKit's sign-in window (needs a configured MusicKit key)."""
        user = self._user(request)
        if not self.state.musickit_keys:
            raise _bad_request("No MusicKit key is configured (--musickit-key-id, --musickit-public-key)")
        return web.json_response({"music_user_token": apple_music.authorize_user(self.state, user.id).token})

    async def bulk_authorize(self, request: web.Request) -> web.Response:
        """POST /_sandbox/users/bulk-authorize {"ids": [...], "client_id", "scope", "country"}: create the users
        that do not exist yet and authorize each one, as /users/<id>/authorize does one at a time (for
        seeding benchmarks). Answers {"<id>": {"refresh_token": ...}, ...}."""
        body = await _json_body(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(user_id, str) and user_id for user_id in ids):
            raise _bad_request("ids must be a list of user ids")
        country = _text(body, "country", "GB")
        if not _is_market(country):
            raise _bad_request("country must be an ISO 3166-1 alpha-2 code such as GB")
        client_id, scope = self._grant_request(body)
        tokens = {}
        for user_id in ids:
            if user_id not in self.state.users:
                self.state.add_user(user_id, country=country)
            grant = self.state.authorize(user_id, client_id, scope, public=False)
            tokens[user_id] = {"refresh_token": grant.refresh_token}
        return web.json_response(tokens)

    async def user_library(self, request: web.Request) -> web.Response:
        """GET /_sandbox/users/<id>/library → {"saved": [album/track URIs], "following": [artist URIs]}"""
        library = self.state.library(self._user(request).id)
        return web.json_response({"saved": list(library.saved), "following": list(library.following)})

    async def user_playlists(self, request: web.Request) -> web.Response:
        """GET /_sandbox/users/<id>/playlists → the Spotify playlists the user made, oldest first:
        [{"id", "name", "public", "collaborative", "description", "items": [track URIs, duplicates kept]}]"""
        library = self.state.library(self._user(request).id)
        shown = ("id", "name", "public", "collaborative", "description", "items")
        playlists = [asdict(self.state.playlists[playlist_id]) for playlist_id in library.playlists]
        return web.json_response([{key: playlist[key] for key in shown} for playlist in playlists])

    def _grant_request(self, body: Mapping[str, Any]) -> tuple[str, str]:
        """The client id and scope of a direct authorization, checked (default: the first client, all scopes)."""
        client_id = _text(body, "client_id", next(iter(self.state.clients)))
        if client_id not in self.state.clients:
            raise _bad_request(f"Unknown client_id: {client_id}")
        scope = " ".join(_text(body, "scope", DEFAULT_SCOPE).split())
        unknown = [name for name in scope.split() if name not in SCOPES]
        if unknown:
            raise _bad_request(f"Unknown scopes: {' '.join(unknown)}")
        return client_id, scope

    def _user(self, request: web.Request) -> User:
        user = self.state.users.get(request.match_info["id"])
        if user is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "Unknown user"}), content_type="application/json")
        return user

    # Catalog

    async def add_artist(self, request: web.Request) -> web.Response:
        """POST /_sandbox/catalog/artists {"id", "name", "genres"}; `id` defaults to one derived from
        the name (albums: from the UPC, tracks: from the ISRC)."""
        body = await _json_body(request)
        name = _text(body, "name")
        genres = body.get("genres", [])
        if not isinstance(genres, list) or not all(isinstance(genre, str) for genre in genres):
            raise _bad_request("genres must be a list of strings")
        artist = Artist(_id(body, f"artist:{name}"), name, genres)
        self.state.add_artist(artist)
        return _created("artist", artist)

    async def add_album(self, request: web.Request) -> web.Response:
        """POST /_sandbox/catalog/albums {"id", "name", "upc", "artist_id", "release_date", "total_tracks",
        "available_markets", "album_type", "release_date_precision", "label"}."""
        body = await _json_body(request)
        upc = _text(body, "upc")
        if not (upc.isdigit() and len(upc) in (12, 13)):
            raise _bad_request("upc must be 12 or 13 digits")
        artist_id = _text(body, "artist_id")
        if artist_id not in self.state.artists:
            raise _bad_request(f"Unknown artist_id: {artist_id}")
        album = Album(
            _id(body, f"album:{upc}"),
            _text(body, "name"),
            upc=upc,
            artist_id=artist_id,
            release_date=_text(body, "release_date"),
            total_tracks=int(_number(body, "total_tracks", 1)),
            available_markets=_markets(body, demo_catalog.MARKETS),
            release_date_precision=_text(body, "release_date_precision", "day"),
            album_type=_text(body, "album_type", "album"),
            label=_text(body, "label", ""),
        )
        self.state.add_album(album)
        return _created("album", album)

    async def add_track(self, request: web.Request) -> web.Response:
        """POST /_sandbox/catalog/tracks {"id", "name", "isrc", "album_id", "artist_id", "track_number",
        "duration_ms", "available_markets"}; artist and markets default to the album's."""
        body = await _json_body(request)
        isrc = _text(body, "isrc").upper()
        if not (len(isrc) == 12 and isrc[:5].isalnum() and isrc[5:].isdigit()):
            raise _bad_request("isrc must look like GBAYE2600001")
        album = self.state.albums.get(_text(body, "album_id"))
        if album is None:
            raise _bad_request("Unknown album_id")
        artist_id = _text(body, "artist_id", album.artist_id)
        if artist_id not in self.state.artists:
            raise _bad_request(f"Unknown artist_id: {artist_id}")
        track = Track(
            _id(body, f"track:{isrc}"),
            _text(body, "name"),
            isrc=isrc,
            album_id=album.id,
            artist_id=artist_id,
            available_markets=_markets(body, album.available_markets),
            track_number=int(_number(body, "track_number", 1)),
            duration_ms=int(_number(body, "duration_ms", 200_000)),
        )
        self.state.add_track(track)
        return _created("track", track)

    async def set_markets(self, request: web.Request) -> web.Response:
        """POST /_sandbox/catalog/<albums|tracks>/<id>/markets {"available_markets": [...]}: replace the
        markets where the release is available."""
        catalogs: Mapping[str, Mapping[str, Album | Track]] = {
            "albums": self.state.albums,
            "tracks": self.state.tracks,
        }
        kind = request.match_info["kind"]
        item = catalogs.get(kind, {}).get(request.match_info["id"])
        if item is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"Unknown {kind} id"}), content_type="application/json")
        item.available_markets = _markets(await _json_body(request), None)
        return _created(kind[:-1], item, status=200)

    # Logs

    async def writes(self, request: web.Request) -> web.Response:
        """GET /_sandbox/writes[?user=<id>] → [{"user_id", "uri", "endpoint", "at"}, ...], oldest first."""
        user_id = request.query.get("user")
        return web.json_response(
            [
                {"user_id": w.user_id, "uri": w.uri, "endpoint": w.endpoint, "at": _iso(w.at)}
                for w in self.state.writes
                if user_id is None or w.user_id == user_id
            ]
        )

    async def get_counters(self, request: web.Request) -> web.Response:
        """GET /_sandbox/counters → request, error and write counts, and the rate-limit window's use."""
        return web.json_response(self._counters())

    def _counters(self) -> dict[str, Any]:
        counters = dict(vars(self.state.counters))
        counters["writes_per_user"] = dict(self.state.counters.writes_per_user)
        counters["window_limit"] = self.state.faults.rate_limit
        counters["window_used"] = window_used(self.state, time.monotonic())
        return counters

    async def overview(self, request: web.Request) -> web.Response:
        """GET /_sandbox/: a page for people (counters, faults, users, what they saved and their playlists); it
        refreshes itself every five seconds."""
        state = self.state
        rows = []
        for user in list(state.users.values())[:MAX_LISTED_USERS]:
            library = state.library(user.id)
            saved = "<br>".join(escape(self._title(uri)) for uri in library.saved) or "—"
            following = "<br>".join(escape(self._title(uri)) for uri in library.following) or "—"
            playlists = "<br>".join(
                escape(f"{state.playlists[i].name} ({len(state.playlists[i].items)} tracks)") for i in library.playlists
            )
            rows.append(
                f"<tr><td>{escape(user.id)}</td><td>{escape(user.display_name)}</td>"
                f"<td>{escape(user.country)}</td><td>{saved}</td><td>{following}</td><td>{playlists or '—'}</td>"
                f"<td>{state.counters.writes_per_user[user.id]}</td></tr>"
            )
        counters = self._counters()
        counters.pop("writes_per_user")
        html = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="5"><title>Service sandbox</title>
<style>body {{ font: 15px/1.5 system-ui, sans-serif; margin: 2rem; }} table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; vertical-align: top; text-align: left; }}
.cols {{ display: flex; gap: 4rem; }}</style></head><body>
<h1>Service sandbox</h1>
<div class="cols"><div><h2>Counters</h2>{_items(counters)}</div>
<div><h2>Faults</h2>{_items(asdict(state.faults))}</div></div>
<h2>Users ({len(state.users)})</h2>
<table><tr><th>id</th><th>name</th><th>country</th><th>saved</th><th>following</th><th>playlists (Spotify)</th>
<th>writes</th></tr>
{"".join(rows)}</table></body></html>"""
        return web.Response(text=html, content_type="text/html")

    def _title(self, uri: str) -> str:
        """The catalog name of `uri`, e.g. "Glass Harbour (album)" or "Glass Harbour (album, deezer)"."""
        service, kind, item_id = uri.split(":")
        catalogs: Mapping[str, Mapping[str, Album | Track | Artist]] = {
            "album": self.state.albums,
            "track": self.state.tracks,
            "song": self.state.tracks,  # Apple Music's word
            "artist": self.state.artists,
        }
        item = catalogs.get(kind, {}).get(item_id)
        where = "" if service == "spotify" else f", {service}"
        return f"{item.name} ({kind}{where})" if item else uri


def _items(values: Mapping[str, object]) -> str:
    items = "".join(f"<li>{escape(name)}: <b>{escape(str(value))}</b></li>" for name, value in values.items())
    return f"<ul>{items}</ul>"


def _fault_value(name: str, value: object) -> Any:
    """Check one switch's value; raise a 400 naming the switch when it does not fit."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if name in ("error_rate", "timeout_rate"):
        if number is None or not 0 <= number <= 1:
            raise _bad_request(f"{name} must be a number from 0 to 1")
    elif name in ("latency_ms", "hang_seconds"):
        if number is None or number < 0:
            raise _bad_request(f"{name} must be a number of at least 0")
    elif name == "clock_offset_seconds":
        if number is None:
            raise _bad_request(f"{name} must be a number")
    elif name in ("rate_limit", "seed"):
        if value is not None and not (isinstance(number, int) and number >= 0):
            raise _bad_request(f"{name} must be a whole number of at least 0, or null")
    elif name in ("registered_users", "apple_unauthorized_users", "apple_unsubscribed_users", "apple_revoked_keys"):
        if value is not None and not (isinstance(value, list) and all(isinstance(u, str) and u for u in value)):
            raise _bad_request(f"{name} must be a list of user ids, or null")
    elif name == "errors_matching_after":
        if not (isinstance(number, int) and number >= 0):
            raise _bad_request(f"{name} must be a whole number of at least 0")
    elif name == "errors_matching":
        if not isinstance(value, str) or len(value) > 200:
            raise _bad_request(f"{name} must be a text of at most 200 characters")
    elif not isinstance(value, bool):
        raise _bad_request(f"{name} must be true or false")
    return value


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise _bad_request("The body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad_request("The body must be a JSON object")
    return body


def _text(body: Mapping[str, Any], name: str, default: str | None = None) -> str:
    """The string field `name`; required when there is no default."""
    value = body.get(name, default)
    if value is None:
        raise _bad_request(f"{name} is required")
    if not isinstance(value, str):
        raise _bad_request(f"{name} must be a string")
    return value


def _number(body: Mapping[str, Any], name: str, default: float | None = None) -> float:
    """The number field `name`; required when there is no default."""
    value = body.get(name, default)
    if value is None:
        raise _bad_request(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_request(f"{name} must be a number")
    return value


def _id(body: Mapping[str, Any], seed: str) -> str:
    """The body's `id`, checked, or a stable id derived from `seed`."""
    item_id = _text(body, "id", base62_id(seed))
    if not is_base62_id(item_id):
        raise _bad_request("id must be 22 base62 characters, like Spotify's ids")
    return item_id


def _markets(body: Mapping[str, Any], default: list[str] | None) -> list[str]:
    markets = body.get("available_markets", default)
    if markets is None:
        raise _bad_request("available_markets is required")
    if not isinstance(markets, list) or not all(isinstance(m, str) and _is_market(m) for m in markets):
        raise _bad_request("available_markets must be a list of ISO 3166-1 alpha-2 codes")
    return list(markets)


def _is_market(code: str) -> bool:
    return len(code) == 2 and code.isascii() and code.isalpha() and code.isupper()


def _user_json(user: User) -> dict[str, str]:
    return {
        "id": user.id,
        "display_name": user.display_name,
        "email": user.email,
        "country": user.country,
        "account_id": user.account_id,
    }


def _created(kind: str, item: Album | Track | Artist, status: int = 201) -> web.Response:
    return web.json_response({**asdict(item), "uri": f"spotify:{kind}:{item.id}"}, status=status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
