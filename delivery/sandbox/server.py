"""Build, run and (for tests) start the sandbox server.

make_app(state)             the aiohttp application: /spotify/… and /_sandbox/…
run(host, port, **options)  serve it until interrupted (manage.py run_sandbox, python -m delivery.sandbox)
start_in_thread(**options)  serve it from a background thread; returns (base_url, stop)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from aiohttp import web

from delivery.sandbox import apple_music, control, deezer, demo_catalog, spotify
from delivery.sandbox.state import Client, MusicKitKey, SandboxState

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_PORT = 8765
STATE = web.AppKey("state", SandboxState)
# Options run() and start_in_thread() take besides host and port (the command-line flags, with dashes).
OPTIONS = (
    "client_id",
    "client_secret",
    "redirect_uris",
    "latency_ms",
    "error_rate",
    "timeout_rate",
    "hang_seconds",
    "rate_limit",
    "seed",
    "deezer_app_id",
    "deezer_secret",
    "musickit_key_id",
    "musickit_team_id",
    "musickit_public_key",
)


def build_state(
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    redirect_uris: Iterable[str] = (),
    latency_ms: float = 0.0,
    error_rate: float = 0.0,
    timeout_rate: float = 0.0,
    hang_seconds: float = 30.0,
    rate_limit: int | None = None,
    seed: int | None = None,
    deezer_app_id: str = deezer.DEFAULT_APP_ID,
    deezer_secret: str = deezer.DEFAULT_SECRET,
    musickit_key_id: str = "",
    musickit_team_id: str = "",
    musickit_public_key: str = "",
) -> SandboxState:
    """The demo world with one registered app per service and the given faults switched on."""
    state = SandboxState(
        clients={client_id: Client(client_id, client_secret, "Presave (sandbox app)", list(redirect_uris))},
        service_apps={
            deezer.KEY: Client(deezer_app_id, deezer_secret, "Presave (sandbox Deezer app)", list(redirect_uris)),
        },
    )
    if musickit_key_id and musickit_public_key:
        key = MusicKitKey(musickit_key_id, musickit_team_id, _read_public_key(musickit_public_key))
        state.musickit_keys[key.key_id] = key
    demo_catalog.load(state)
    faults = state.faults
    faults.latency_ms, faults.error_rate, faults.timeout_rate = latency_ms, error_rate, timeout_rate
    faults.hang_seconds, faults.rate_limit = hang_seconds, rate_limit
    state.set_seed(seed)
    return state


def make_app(state: SandboxState | None = None) -> web.Application:
    """The sandbox application; `request.app[STATE]` holds its world."""
    state = state or build_state()
    app = web.Application()
    app[STATE] = state
    app.add_subapp(spotify.PREFIX, spotify.make_spotify_app(state))
    app.add_subapp(deezer.PREFIX, deezer.make_deezer_app(state))
    app.add_subapp(apple_music.PREFIX, apple_music.make_apple_music_app(state))
    app.add_subapp(control.PREFIX, control.make_control_app(state))
    app.router.add_get("/favicon.ico", no_icon)
    return app


async def no_icon(request: web.Request) -> web.Response:
    """A browser opening the sandbox's login pages asks for /favicon.ico: 204 (no icon) rather than a 404 that
    would read as a broken route in the access log. Not a service's route: no faults, not counted."""
    return web.Response(status=204, headers={"Cache-Control": "max-age=86400"})


def run(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    access_log: bool = False,
    echo: Callable[[str], object] = print,
    **options: Any,
) -> None:
    """Serve the sandbox until interrupted; `options` are build_state()'s."""
    state = build_state(**options)
    base = f"http://{host}:{port}"
    echo(
        f"Sandbox: Spotify accounts {base}{spotify.PREFIX}/accounts, API {base}{spotify.PREFIX}/api, "
        f"Deezer {base}{deezer.PREFIX}/connect and {base}{deezer.PREFIX}/api, "
        f"Apple Music {base}{apple_music.PREFIX}/api and {base}{apple_music.PREFIX}/musickit.js "
        f"({len(state.musickit_keys)} MusicKit key(s)), "
        f"control {base}{control.PREFIX}/ (client id {next(iter(state.clients))})"
    )
    web.run_app(
        make_app(state),
        host=host,
        port=port,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        print=None,
        shutdown_timeout=1.0,
    )
    counters = state.counters
    echo(f"Sandbox stopped after {counters.requests} requests and {counters.writes} library writes.")


def start_in_thread(host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[str, Callable[[], None]]:
    """Serve the sandbox from a daemon thread with its own event loop (port 0: a free port).

    Returns the base URL (e.g. "http://127.0.0.1:54321") and a function that stops the server.
    """
    app = make_app(build_state(**options))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    loop = asyncio.new_event_loop()
    bound: Future[int] = Future()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, host, port)
            loop.run_until_complete(site.start())
        except BaseException as error:
            bound.set_exception(error)
            loop.close()
            return
        bound.set_result(runner.addresses[0][1])
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        # Handlers still hanging for clients that already gave up (timeout_rate) end here.
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=serve, name="sandbox-server", daemon=True)
    thread.start()
    base_url = f"http://{host}:{bound.result(timeout=10)}"

    def stop() -> None:
        if thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()

    return base_url, stop


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options shared by `manage.py run_sandbox` and `python -m delivery.sandbox`."""
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: 127.0.0.1).")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"Port (default: {DEFAULT_PORT}).")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="Delay every service request by N ms.")
    parser.add_argument("--error-rate", type=_share, default=0.0, help="Share (0..1) answered 500/502/503.")
    parser.add_argument("--timeout-rate", type=_share, default=0.0, help="Share (0..1) that hang.")
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="How long a hang lasts (30).")
    parser.add_argument("--rate-limit", type=int, help="Requests per app per rolling 30 s window (off).")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID, help="The registered app's client id.")
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET, help="The app's client secret.")
    parser.add_argument(
        "--redirect-uri",
        dest="redirect_uris",
        action="append",
        default=[],
        help="A registered redirect URI; repeat for more (none: any http(s) URI is accepted).",
    )
    parser.add_argument("--deezer-app-id", default=deezer.DEFAULT_APP_ID, help="The Deezer app's id.")
    parser.add_argument("--deezer-secret", default=deezer.DEFAULT_SECRET, help="The Deezer app's secret.")
    parser.add_argument("--musickit-key-id", default="", help="The MusicKit key id Apple Music accepts.")
    parser.add_argument("--musickit-team-id", default="", help="The team id (iss) of developer tokens.")
    parser.add_argument(
        "--musickit-public-key", default="", help="The MusicKit key's public half: a PEM file's path, or the PEM."
    )
    parser.add_argument("--seed", type=int, help="Seed for the fault dice, for repeatable runs.")
    parser.add_argument("--access-log", action="store_true", help="Log every request (slower).")


def run_with(arguments: Mapping[str, Any], echo: Callable[[str], object] = print) -> None:
    """run() with parsed command-line `arguments` (extra keys are ignored)."""
    run(
        arguments["host"],
        arguments["port"],
        access_log=arguments["access_log"],
        echo=echo,
        **{name: arguments[name] for name in OPTIONS},
    )


def _read_public_key(value: str) -> str:
    """A PEM given inline, or the path of a file holding one."""
    return value if "BEGIN" in value else Path(value).read_text()


def _share(value: str) -> float:
    share = float(value)
    if not 0 <= share <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return share
