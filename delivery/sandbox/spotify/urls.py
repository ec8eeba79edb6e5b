"""Where the sandbox serves Spotify, and the Web API's base URL its answers link to."""

from __future__ import annotations

from aiohttp import web

PREFIX = "/spotify"
TOKEN_PATH = f"{PREFIX}/accounts/api/token"
API_PATH = f"{PREFIX}/api/"


def api_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{PREFIX}/api/v1"
