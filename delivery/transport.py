"""The release-day transport: runs services' `Call`s concurrently over pooled aiohttp connections.

One background thread owns an event loop and one aiohttp session for a whole delivery run. The run's own
thread keeps the database work (Django's ORM is synchronous) and hands the loop coroutines through `submit`.
Why aiohttp: on two cores, threads of `requests` stop near 300 fans/s (CPU), an asyncio client with 64 calls
in flight reaches four times that (see the README's benchmark figures).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
from django.db import connections

from delivery.services.base import CONNECTION_MESSAGE, TIMEOUT_MESSAGE, Call, Reply, Service, ServiceError

T = TypeVar("T")
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
JSON_CONTENT_TYPE = "application/json"


class AsyncTransport:
    def __init__(self, *, concurrency: int, timeout: float) -> None:
        self.concurrency = concurrency
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="delivery-http", daemon=True)
        self.thread.start()
        self.session: aiohttp.ClientSession = self.submit(self._open())
        # Blocking work the loop needs (the rate limiter's store), off the loop and off the run's thread.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-blocking")
        # Error replies' checks (`run`): apart from the limiter's, which every call's permit waits for.
        self.error_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="delivery-error-checks")

    async def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
        return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout))

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the transport's loop and wait for its result."""
        return self.start(coroutine).result()

    def start(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run `coroutine` on the transport's loop; its result comes through the returned future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    async def run(self, service: Service, call: Call) -> Reply:
        """The async twin of `Service.run`: same request, same error mapping (`Service.check`)."""
        headers, body = call.headers, None
        if call.form is not None:  # encoded here: aiohttp's FormData costs more per call than the request itself
            headers, body = {**call.headers, "Content-Type": FORM_CONTENT_TYPE}, urlencode(call.form).encode()
        elif call.json is not None:
            headers, body = {**call.headers, "Content-Type": JSON_CONTENT_TYPE}, json.dumps(call.json).encode()
        try:
            async with self.session.request(
                call.method, call.url, params=call.params, data=body, headers=headers, allow_redirects=False
            ) as response:
                reply = Reply(response.status, response.headers, await response.read())
        except TimeoutError:
            raise ServiceError(TIMEOUT_MESSAGE.format(label=service.label)) from None
        except aiohttp.ClientError:
            raise ServiceError(CONNECTION_MESSAGE.format(label=service.label)) from None
        service.refuse_redirect(reply)
        if reply.status >= 400:
            # Sorting an error out may take a call of its own (Apple Music asks whether it still accepts our
            # developer token after a 401): made in a thread, not on the loop, where every other call is waiting.
            return await self.loop.run_in_executor(self.error_checks, service.check, call, reply)
        return service.check(call, reply)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking function (e.g. a database query) without stalling the loop."""
        return await self.loop.run_in_executor(self.executor, fn, *args)

    def close(self) -> None:
        self.executor.submit(connections.close_all).result()
        self.executor.shutdown()
        self.error_checks.shutdown()
        self.submit(self.session.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    def __enter__(self) -> AsyncTransport:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
