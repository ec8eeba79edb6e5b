"""The Web API's playlists (February 2026: /v1/me/playlists creates, /v1/playlists/{id}/items adds)."""

from __future__ import annotations

import base64

from aiohttp import web

from delivery.sandbox.spotify.access import access, require_scopes
from delivery.sandbox.spotify.errors import ApiError
from delivery.sandbox.spotify.params import ids_param, int_param, json_object, paging
from delivery.sandbox.spotify.urls import api_base
from delivery.sandbox.state import Playlist, SandboxState, is_base62_id

PLAYLIST_MAX_URIS = 100
PLAYLIST_NAME_MAX = 100  # longer names are cut to this by Spotify's apps; the sandbox refuses them
NOT_OWNER = "You cannot add tracks to a playlist you don't own."


class Playlists:
    """The playlist endpoints, sharing one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        me = "/api/v1/me"
        return [
            web.get(f"{me}/playlists", self.my_playlists),
            web.post(f"{me}/playlists", self.create_playlist),
            web.post("/api/v1/playlists/{id}/items", self.add_playlist_items),
        ]

    async def create_playlist(self, request: web.Request) -> web.Response:
        """POST /v1/me/playlists {"name", "public", "collaborative", "description"} → 201 with the playlist.
        developer.spotify.com/documentation/web-api/reference/create-playlist: `public` defaults to true; a
        collaborative playlist must be private; playlist-modify-public or -private, as the playlist will be."""
        token = access(self.state, request)
        body = await json_object(request)
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
        require_scopes(token, [_playlist_scope(public)])
        playlist = self.state.create_playlist(
            token.user_id or "",
            name,
            public=public,
            collaborative=collaborative,
            description=description,
            endpoint="POST /v1/me/playlists",
        )
        return web.json_response(self._playlist(playlist, api_base(request)), status=201)

    async def my_playlists(self, request: web.Request) -> web.Response:
        """GET /v1/me/playlists[?limit=&offset=] → the user's playlists, newest first, as a paging object.
        developer.spotify.com/documentation/web-api/reference/get-a-list-of-current-users-playlists: private
        playlists only with playlist-read-private (collaborative ones with playlist-read-collaborative)."""
        token = access(self.state, request)
        limit = int_param(request.query, "limit", 20, 1, 50)
        offset = int_param(request.query, "offset", 0, 0, 100_000)
        ids = reversed(self.state.library(token.user_id or "").playlists)
        visible = [
            playlist
            for playlist in (self.state.playlists[i] for i in ids)
            if playlist.public
            or (playlist.collaborative and "playlist-read-collaborative" in token.scopes)
            or (not playlist.collaborative and "playlist-read-private" in token.scopes)
        ]
        api = api_base(request)
        page = [self._playlist(playlist, api) for playlist in visible[offset : offset + limit]]
        return web.json_response(paging(f"{api}/me/playlists", page, offset, limit, len(visible)))

    async def add_playlist_items(self, request: web.Request) -> web.Response:
        """POST /v1/playlists/{id}/items {"uris": [...]} (or ?uris=), 100 at most → 201 {"snapshot_id"}.
        developer.spotify.com/documentation/web-api/reference/add-items-to-playlist: only the owner (or, on a
        collaborative playlist, its collaborators) may add; playlist-modify-public or -private, as it is."""
        token = access(self.state, request)
        playlist_id = request.match_info["id"]
        if not is_base62_id(playlist_id):
            raise ApiError(400, "Invalid base62 id")
        playlist = self.state.playlists.get(playlist_id)
        if playlist is None:
            raise ApiError(404, "Resource not found")
        require_scopes(token, [_playlist_scope(playlist.public)])
        if playlist.owner_id != token.user_id and not playlist.collaborative:
            raise ApiError(403, NOT_OWNER)
        uris = await ids_param(request, "uris", PLAYLIST_MAX_URIS)
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


def _playlist_scope(public: bool) -> str:
    return "playlist-modify-public" if public else "playlist-modify-private"


def _snapshot_id(playlist: Playlist) -> str:
    return base64.b64encode(f"{playlist.version},{playlist.id}".encode()).decode()
