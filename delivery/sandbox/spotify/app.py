"""Spotify's sub-application: every part's routes behind fault injection, and gateway answers for the rest."""

from __future__ import annotations

from aiohttp import web

from delivery.sandbox.faults import Kind
from delivery.sandbox.service_app import make_service_app
from delivery.sandbox.spotify.accounts import Accounts, basic_credentials
from delivery.sandbox.spotify.catalog import Catalog
from delivery.sandbox.spotify.errors import api_error
from delivery.sandbox.spotify.library import Library
from delivery.sandbox.spotify.playlists import Playlists
from delivery.sandbox.spotify.urls import API_PATH, TOKEN_PATH
from delivery.sandbox.spotify.users import Users
from delivery.sandbox.state import SandboxState

GATEWAY_ERRORS = {404: "Service not found", 405: "Method not allowed"}


def make_spotify_app(state: SandboxState) -> web.Application:
    """The sub-application to mount at PREFIX; unknown API paths answer like Spotify's gateway."""
    return make_service_app(
        state,
        SpotifyService(state),
        fault_error=api_error,
        api_path=API_PATH,
        unknown=lambda status: api_error(status, GATEWAY_ERRORS[status]),
    )


class SpotifyService:
    """The route handlers of every part, sharing one SandboxState."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.parts = (Accounts(state), Users(state), Library(state), Playlists(state), Catalog(state))

    def routes(self) -> list[web.RouteDef]:
        return [route for part in self.parts for route in part.routes()]

    async def classify(self, request: web.Request) -> tuple[Kind, str | None]:
        """The request's kind and the registered app it counts against (None when it names none)."""
        path = request.path
        kind = Kind.API if path.startswith(API_PATH) else Kind.TOKEN if path == TOKEN_PATH else Kind.PAGE
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = self.state.access_tokens.get(header[7:])
            return kind, token.client_id if token else None
        if header.startswith("Basic "):
            client_id = (basic_credentials(header) or ("", ""))[0]
        else:
            client_id = request.query.get("client_id", "")
            if not client_id and request.method == "POST":
                client_id = str((await request.post()).get("client_id", ""))
        return kind, client_id if client_id in self.state.clients else None
