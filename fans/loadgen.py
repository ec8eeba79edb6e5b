"""A small HTTP load generator for bench_campaign_page: keep-alive connections, a fixed number of requests in
flight, every latency recorded. aiohttp's client is already a dependency (the sandbox and transport use it)."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp


@dataclass(frozen=True)
class LoadResult:
    url: str
    requests: int
    errors: int  # responses other than 200, and failed connections
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(p) - 1]

    def __add__(self, other: LoadResult) -> LoadResult:
        return LoadResult(
            self.url,
            self.requests + other.requests,
            self.errors + other.errors,
            self.seconds + other.seconds,
            self.latencies_ms + other.latencies_ms,
        )


async def _load(url: str, *, seconds: float, concurrency: int, headers: dict[str, str]) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), headers=headers
    ) as session:
        deadline = time.perf_counter() + seconds

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                try:
                    async with session.get(url, allow_redirects=False) as response:
                        await response.read()
                        ok = response.status == 200
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                latencies.append((time.perf_counter() - started) * 1000)
                if not ok:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return LoadResult(url, len(latencies), errors, elapsed, latencies)


def load(url: str, *, seconds: float, concurrency: int, headers: dict[str, str] | None = None) -> LoadResult:
    """GET `url` from `concurrency` simulated users for `seconds`. No cookie is kept: only the `headers` given
    (a Cookie header makes a returning visitor)."""
    return asyncio.run(_load(url, seconds=seconds, concurrency=concurrency, headers=headers or {}))
