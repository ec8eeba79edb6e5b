"""The Web API's current user: GET /v1/me."""

from __future__ import annotations

from aiohttp import web

from delivery.sandbox.spotify.access import access
from delivery.sandbox.spotify.urls import api_base
from delivery.sandbox.state import SandboxState


class Users:
    """The Users endpoints the sandbox serves: the current user's profile."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/me", self.me)]

    async def me(self, request: web.Request) -> web.Response:
        """GET /v1/me. developer.spotify.com/documentation/web-api/reference/get-current-users-profile

        `email` needs user-read-email; `country` and `product` need user-read-private and are gone in
        development mode (February 2026); `account_id` (May 2026) is the stable key."""
        token = access(self.state, request)
        user = self.state.users[token.user_id or ""]
        body: dict[str, object] = {
            "display_name": user.display_name,
            "external_urls": {"spotify": f"https://open.spotify.com/user/{user.id}"},
            "followers": {"href": None, "total": 0},
            "href": f"{api_base(request)}/users/{user.id}",
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
