"""The Web API's library: Your Library (PUT/DELETE /v1/me/library, February 2026) and the older albums,
tracks and following endpoints (extended quota apps)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from delivery.sandbox.spotify.access import access, require_scopes
from delivery.sandbox.spotify.errors import ApiError
from delivery.sandbox.spotify.params import ids_param, split_ids
from delivery.sandbox.state import SandboxState, is_base62_id

LIBRARY_MAX_URIS = 40


class Library:
    """The library and follow endpoints, sharing one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        me = "/api/v1/me"
        return [
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
        ]

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
        token = access(self.state, request)
        uris = split_ids(request.query.get("uris"), "uris", LIBRARY_MAX_URIS)
        require_scopes(token, _library_scopes(self._known_uris(uris), write=False))
        return web.json_response([self.state.contains(token.user_id or "", uri) for uri in uris])

    async def _write_library(
        self, request: web.Request, write: Callable[[str, str, str], None], endpoint: str
    ) -> web.Response:
        token = access(self.state, request)
        uris = await ids_param(request, "uris", LIBRARY_MAX_URIS)
        require_scopes(token, _library_scopes(self._known_uris(uris), write=True))
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
        token = access(self.state, request, _WRITE_SCOPE[kind])
        uris = self._known_ids(kind, await ids_param(request, "ids", limit))
        for uri in uris:
            write(token.user_id or "", uri, endpoint)
        return web.Response(status=status)

    def _check_ids(self, request: web.Request, kind: str, limit: int, scope: str) -> web.Response:
        token = access(self.state, request, scope)
        uris = self._known_ids(kind, split_ids(request.query.get("ids"), "ids", limit))
        return web.json_response([self.state.contains(token.user_id or "", uri) for uri in uris])

    def _known_ids(self, kind: str, ids: list[str]) -> list[str]:
        uris = [f"spotify:{kind}:{item_id}" for item_id in ids]
        self._known_uris(uris)
        return uris


_WRITE_SCOPE = {
    "album": "user-library-modify",
    "track": "user-library-modify",
    "artist": "user-follow-modify",
}
_READ_SCOPE = {"album": "user-library-read", "track": "user-library-read", "artist": "user-follow-read"}


def _library_scopes(kinds: set[str], *, write: bool) -> set[str]:
    return {(_WRITE_SCOPE if write else _READ_SCOPE)[kind] for kind in kinds}


def _follow_type(request: web.Request) -> None:
    if request.query.get("type") != "artist":
        raise ApiError(400, "type must be artist")
