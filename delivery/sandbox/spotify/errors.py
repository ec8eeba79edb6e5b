"""The Web API's errors, in Spotify's words: a JSON body, or the plain-text 403s it sends instead.

The Accounts service's errors are `accounts.OAuthError`."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from delivery.sandbox.service_app import ServiceApiError

NOT_REGISTERED = "User not registered in the Developer Dashboard"
OWNER_PREMIUM_REQUIRED = (
    "Active premium subscription required for the owner of the app. When the subscription status changes, it can "
    "take a few hours before requests are allowed again."
)


class ApiError(ServiceApiError):
    """A Web API error: `{"error": {"status", "message"}}`.
    developer.spotify.com/documentation/web-api/concepts/api-calls#response-status-codes"""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers

    def response(self, request: web.Request) -> web.Response:
        return api_error(self.status, self.message, headers=self.headers)


class PlainRefusal(ServiceApiError):
    """A 403 Spotify answers in plain text, not JSON (client libraries report failing to decode it):
    "User not registered in the Developer Dashboard" (github.com/zmb3/spotify/issues/232, 46 bytes) and
    "Active premium subscription required for the owner of the app…" (github.com/zmb3/spotify/issues/301)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self, request: web.Request) -> web.Response:
        return web.Response(status=403, text=self.message, content_type="text/plain")


def api_error(
    status: int, message: str, *, reason: str | None = None, headers: Mapping[str, str] | None = None
) -> web.Response:
    error: dict[str, object] = {"status": status, "message": message}
    if reason:
        error["reason"] = reason
    return web.json_response({"error": error}, status=status, headers=headers)
