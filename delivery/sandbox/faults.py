"""Fault injection for a service's routes: latency, server errors, hangs and a per-app rate limit.

A service module builds one middleware with `fault_middleware(state, classify, error)`: `classify` tells the
kind of request and the client app making it, `error` renders the service's own error body.

The rate limit follows developer.spotify.com/documentation/web-api/concepts/rate-limits: a rolling 30-second
window per app, then 429 with `Retry-After` in seconds. Quota overruns answer
`{"error":{"status":429,"message":"Too many requests","reason":"QUOTA_EXCEEDED"}}`
(developer.spotify.com/documentation/web-api/references/changes/july-2026).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Middleware

from delivery.sandbox.state import SandboxState

WINDOW_SECONDS = 30.0
SERVER_ERRORS = {500: "Server error", 502: "Something went wrong", 503: "Service unavailable"}


class Kind(Enum):
    """What a request is for; random errors and hangs only hit API and token requests."""

    API = "api"
    TOKEN = "token"
    PAGE = "page"


class ErrorResponse(Protocol):
    def __call__(
        self,
        status: int,
        message: str,
        *,
        reason: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response: ...


Classifier = Callable[[web.Request], Awaitable[tuple[Kind, str | None]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fault_middleware(state: SandboxState, classify: Classifier, error: ErrorResponse) -> Middleware:
    """The middleware applying `state.faults` to every request of one service's sub-application."""

    @web.middleware
    async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        kind, client_id = await classify(request)
        counters = state.counters
        counters.requests += 1
        if (transport := request.transport) is not None and transport not in state.connected:
            state.connected.add(transport)
            counters.connections += 1
        if kind is Kind.API:
            counters.api_requests += 1
        elif kind is Kind.TOKEN:
            counters.token_requests += 1
        if kind is Kind.PAGE:
            return await faulty(request, handler, kind, client_id)
        counters.in_flight += 1
        counters.most_in_flight = max(counters.most_in_flight, counters.in_flight)
        try:
            return await faulty(request, handler, kind, client_id)
        finally:
            counters.in_flight -= 1

    async def faulty(request: web.Request, handler: Handler, kind: Kind, client_id: str | None) -> web.StreamResponse:
        """The request answered through the switched-on faults."""
        counters, faults = state.counters, state.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if client_id is not None:
            wait = rate_limit_wait(state, client_id, time.monotonic())
            if wait is not None:
                counters.rate_limited += 1
                if faults.quota_exceeded:
                    return error(429, "Too many requests", reason="QUOTA_EXCEEDED", headers={"Retry-After": str(wait)})
                return error(429, "API rate limit exceeded", headers={"Retry-After": str(wait)})
        if kind is not Kind.PAGE:
            if faults.errors_matching and faults.errors_matching in f"{request.path}?{request.query_string}":
                if faults.errors_matching_after > 0:  # still up for this many more
                    faults.errors_matching_after -= 1
                else:
                    counters.server_errors += 1  # one endpoint down (say the follow, "spotify:artist:"), the rest up
                    return error(503, SERVER_ERRORS[503])
            if faults.timeout_rate and state.rng.random() < faults.timeout_rate:
                # Nothing is done: a client that gave up and retries sees exactly one effect.
                counters.timeouts += 1
                await asyncio.sleep(faults.hang_seconds)
                return error(504, "Gateway timeout")
            if faults.error_rate and state.rng.random() < faults.error_rate:
                counters.server_errors += 1
                status = state.rng.choice(tuple(SERVER_ERRORS))
                return error(status, SERVER_ERRORS[status])
        return await handler(request)

    return inject_faults


def rate_limit_wait(state: SandboxState, client_id: str, now: float) -> int | None:
    """Count one request of `client_id` at monotonic time `now`.

    Returns None when it fits in the window, else the whole seconds until the window frees a slot.
    Refused requests are not counted, so a client that waits `Retry-After` gets through.
    """
    limit = state.faults.rate_limit
    if limit is None:
        return None
    window = state.windows.get(client_id)
    if window is None:
        window = state.windows[client_id] = deque()
    _expire(window, now)
    if len(window) >= limit:
        if not window:  # a limit of 0 refuses everything
            return int(WINDOW_SECONDS)
        return max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
    window.append(now)
    return None


def window_used(state: SandboxState, now: float) -> int:
    """Requests currently counted in all apps' windows."""
    for window in state.windows.values():
        _expire(window, now)
    return sum(len(window) for window in state.windows.values())


def _expire(window: deque[float], now: float) -> None:
    while window and window[0] <= now - WINDOW_SECONDS:
        window.popleft()
