"""The Web API's access check: the request's access token, its app's standing and its scopes."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from delivery.sandbox.spotify.errors import NOT_REGISTERED, OWNER_PREMIUM_REQUIRED, ApiError, PlainRefusal
from delivery.sandbox.state import AccessToken, SandboxState


def access(state: SandboxState, request: web.Request, *scopes: str, user: bool = True) -> AccessToken:
    """The request's valid access token holding `scopes`; `user` endpoints refuse app tokens.
    developer.spotify.com/documentation/web-api/concepts/access-token"""
    header = request.headers.get("Authorization")
    if not header:
        raise ApiError(401, "No token provided", {"WWW-Authenticate": 'Bearer realm="spotify"'})
    scheme, _, value = header.partition(" ")
    if scheme != "Bearer" or not value:
        raise ApiError(400, "Only valid bearer authentication supported")
    token = state.access_tokens.get(value)
    if token is None or token.service != "spotify":
        raise _unauthorized("Invalid access token")
    if token.expires_at <= state.now():
        raise _unauthorized("The access token expired")
    if state.faults.owner_premium_lapsed:  # development mode's apps need their owner on Premium
        raise PlainRefusal(OWNER_PREMIUM_REQUIRED)
    if user and token.user_id is None:
        raise ApiError(403, "Insufficient client scope")
    listed = state.faults.registered_users if state.faults.development_mode else None
    if user and listed is not None and token.user_id not in listed:  # the sign-in worked; the API refuses
        raise PlainRefusal(NOT_REGISTERED)
    require_scopes(token, scopes)
    return token


def require_scopes(token: AccessToken, scopes: Iterable[str]) -> None:
    if not token.scopes.issuperset(scopes):
        raise ApiError(403, "Insufficient client scope")


def _unauthorized(message: str) -> ApiError:
    challenge = f'Bearer realm="spotify", error="invalid_token", error_description="{message}"'
    return ApiError(401, message, {"WWW-Authenticate": challenge})
