"""What the imitated services (spotify/, deezer.py, apple_music.py) share around their routes.

Each module's handler class gives `routes()` and `classify` (faults.py); its handlers raise a `ServiceApiError`
subclass that renders the service's own error body. `make_service_app` puts fault injection in front and
answers unknown API paths (404) and methods (405) in the service's words too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aiohttp import web

from delivery.sandbox.faults import Classifier, ErrorResponse, Handler, fault_middleware
from delivery.sandbox.state import SandboxState


class ServiceApiError(Exception):
    """An error a handler raises; `response` renders it as the service does."""

    def response(self, request: web.Request) -> web.Response:
        raise NotImplementedError


class ServiceHandlers(Protocol):
    classify: Classifier

    def routes(self) -> list[web.RouteDef]: ...


def make_service_app(
    state: SandboxState,
    handlers: ServiceHandlers,
    *,
    fault_error: ErrorResponse,
    api_path: str,
    unknown: Callable[[int], web.Response],
) -> web.Application:
    """The sub-application for one service: `handlers`' routes behind fault injection (answered by
    `fault_error`); a 404 or 405 under `api_path` is answered by `unknown(status)`."""

    @web.middleware
    async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ServiceApiError as error:
            return error.response(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as error:
            if request.path.startswith(api_path):
                return unknown(error.status)
            raise

    app = web.Application(middlewares=[fault_middleware(state, handlers.classify, fault_error), render_errors])
    app.add_routes(handlers.routes())
    return app
