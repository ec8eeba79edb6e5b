"""The Web API's catalog: albums (and their tracks), tracks, artists and search, with the object shapes
they answer in."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar
from urllib.parse import urlencode

from aiohttp import web

from delivery.sandbox.spotify.access import access
from delivery.sandbox.spotify.errors import ApiError
from delivery.sandbox.spotify.params import int_param, paging
from delivery.sandbox.spotify.urls import api_base
from delivery.sandbox.state import AccessToken, Album, Artist, SandboxState, Track, is_base62_id

SEARCH_TYPES = ("album", "artist", "track")
MARKET = re.compile(r"[A-Z]{2}")

Item = TypeVar("Item", Album, Track, Artist)


class Catalog:
    """The catalog endpoints, sharing one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/albums/{id}/tracks", self.get_album_tracks),
            web.get("/api/v1/albums/{id}", self.get_album),
            web.get("/api/v1/tracks/{id}", self.get_track),
            web.get("/api/v1/artists/{id}", self.get_artist),
            web.get("/api/v1/search", self.search),
        ]

    async def get_album_tracks(self, request: web.Request) -> web.Response:
        """GET /v1/albums/{id}/tracks[?limit=&offset=&market=] → the album's tracks, as a paging object.
        developer.spotify.com/documentation/web-api/reference/get-an-albums-tracks"""
        token = access(self.state, request, user=False)
        album = _catalog_item(request, self.state.albums)
        limit = int_param(request.query, "limit", 20, 1, 50)
        offset = int_param(request.query, "offset", 0, 0, 100_000)
        market = self._market(request, token)
        _check_market(album.available_markets, market)
        api = api_base(request)
        track_ids = self.state.album_tracks.get(album.id, [])
        page = [self._simple_track(self.state.tracks[i], api) for i in track_ids[offset : offset + limit]]
        return web.json_response(paging(f"{api}/albums/{album.id}/tracks", page, offset, limit, len(track_ids)))

    async def get_album(self, request: web.Request) -> web.Response:
        """GET /v1/albums/{id}[?market=].
        developer.spotify.com/documentation/web-api/reference/get-an-album"""
        token = access(self.state, request, user=False)
        album = _catalog_item(request, self.state.albums)
        market = self._market(request, token)
        _check_market(album.available_markets, market)
        return web.json_response(self._album(album, api_base(request), market, full=True))

    async def get_track(self, request: web.Request) -> web.Response:
        """GET /v1/tracks/{id}[?market=]. developer.spotify.com/documentation/web-api/reference/get-track"""
        token = access(self.state, request, user=False)
        track = _catalog_item(request, self.state.tracks)
        market = self._market(request, token)
        _check_market(self.state.track_markets(track), market)
        return web.json_response(self._track(track, api_base(request), market))

    async def get_artist(self, request: web.Request) -> web.Response:
        """GET /v1/artists/{id}. developer.spotify.com/documentation/web-api/reference/get-an-artist"""
        access(self.state, request, user=False)
        artist = _catalog_item(request, self.state.artists)
        return web.json_response(self._artist(artist, api_base(request), full=True))

    async def search(self, request: web.Request) -> web.Response:
        """GET /v1/search?q=&type=[&market=&limit=&offset=]; `upc:` finds albums, `isrc:` tracks, other
        words match names. developer.spotify.com/documentation/web-api/reference/search"""
        token = access(self.state, request, user=False)
        query = request.query
        q = query.get("q", "").strip()
        if not q:
            raise ApiError(400, "No search query")
        types = query.get("type", "").split(",")
        if types == [""]:
            raise ApiError(400, "Missing parameter type")
        if any(kind not in SEARCH_TYPES for kind in types):
            raise ApiError(400, "Bad search type field")
        limit = int_param(query, "limit", 20, 0, 50)
        offset = int_param(query, "offset", 0, 0, 1000)
        market = self._market(request, token)
        api = api_base(request)
        words, filters = _parse_query(q)
        body = {}
        for kind in types:
            found = [item for item in self._search(kind, words, filters) if self._available(item, market)]
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
            **self._markets(self.state.track_markets(track), market),
            "external_ids": {"isrc": track.isrc},
        }

    def _available(self, item: Album | Track | Artist, market: str | None) -> bool:
        if market is None or isinstance(item, Artist):
            return True
        return market in (self.state.track_markets(item) if isinstance(item, Track) else item.available_markets)

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
