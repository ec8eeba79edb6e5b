"""One rate limit per streaming service, shared by every delivery worker on every machine.

Spotify counts an app's calls over a rolling 30-second window and answers 429 with Retry-After beyond its limit.
Workers take permits from one shared counter before they call:

- Pacing. Time is cut into slots of `SLOT_SECONDS`, numbered from the epoch so every machine agrees on them.
  A rolling window of W seconds touches at most M = ceil(W / slot) + 1 slots (the first and the last only in
  part), so the limit is spread over M slots: any W seconds see at most `limit` grants, whatever the demand,
  and a steady demand gets (M - 1) / M of the limit (97% with 1-second slots and a 30-second window).
- Counting. A request adds what it asks for to its slot's counter in one atomic step that returns the new
  total, and is granted the part of its request that fits under the slot's cap. A request that finds the slot
  full adds to the counter too; that only records that it came too late.
- Back-off. `pause(seconds)` stores "nobody calls before T" (on a 429); every acquire checks it.

Take permits in blocks (`acquire(64)`): one round trip to the backend per block, not per call. `try_acquire`
answers at once with the permits or the time to wait, for callers that wait in their own way (an event loop).
The database backend counts with its own statements: call `acquire` outside a transaction, or the slot's row
stays locked for every other worker until that transaction ends.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import time
from datetime import timedelta
from typing import Protocol

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from delivery.models import RateLimitPause, RateLimitSlot

SLOT_SECONDS = 1.0
KEEP_WINDOWS = 2  # slots older than this many windows are forgotten
JITTER = 0.05  # share of a slot a waiting worker adds at random, so the workers don't all come back at once


class Backend(Protocol):
    def take(self, key: str, slot: int, n: int, *, keep_slots: int, slot_seconds: float) -> tuple[int, float]:
        """Add `n` to the slot's counter; (new total, 0). While paused, count nothing: (0, seconds left)."""

    def pause(self, key: str, seconds: float) -> None:
        """Nobody takes permits for `seconds` (or longer, if a longer pause is on)."""

    def paused_for(self, key: str) -> float:
        """Seconds left in the current pause; 0 if none."""

    def counts(self, key: str, slots: range) -> dict[int, int]:
        """The counter of each slot that has one."""


class RedisBackend:
    """Counters in Redis: a key per slot that expires on its own, and the pause as a key with a TTL.

    Keys are `presave:rl:{<key>}:<slot>` and `presave:rl:{<key>}:pause` (one hash tag: Redis Cluster keeps a
    limiter's keys on one node, as a script needs).
    """

    TAKE = """
        local paused = redis.call('PTTL', KEYS[2])
        if paused > 0 then return {0, paused} end
        local total = redis.call('INCRBY', KEYS[1], ARGV[1])
        if total == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return {total, 0}
    """
    PAUSE = """
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
    """

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._take = self.redis.register_script(self.TAKE)
        self._pause = self.redis.register_script(self.PAUSE)

    @staticmethod
    def key(key: str, suffix: int | str) -> str:
        return f"presave:rl:{{{key}}}:{suffix}"

    def take(self, key: str, slot: int, n: int, *, keep_slots: int, slot_seconds: float) -> tuple[int, float]:
        ttl_ms = math.ceil(keep_slots * slot_seconds * 1000)
        total, paused_ms = self._take(keys=[self.key(key, slot), self.key(key, "pause")], args=[n, ttl_ms])
        return total, paused_ms / 1000

    def pause(self, key: str, seconds: float) -> None:
        self._pause(keys=[self.key(key, "pause")], args=[math.ceil(seconds * 1000)])

    def paused_for(self, key: str) -> float:
        return max(self.redis.pttl(self.key(key, "pause")), 0) / 1000

    def counts(self, key: str, slots: range) -> dict[int, int]:
        values = self.redis.mget([self.key(key, slot) for slot in slots])
        return {slot: int(value) for slot, value in zip(slots, values, strict=True) if value is not None}


class DatabaseBackend:
    """Counters in the database (PostgreSQL or SQLite): a `RateLimitSlot` row per slot, a `RateLimitPause` row.

    A take is one upsert that returns the new total, so concurrent workers are serialized by the row, not by
    a lock held across round trips. Every `FORGET_EVERY` takes, slots older than `keep_slots` are deleted.
    """

    FORGET_EVERY = 100

    def __init__(self) -> None:
        self._takes = itertools.count(1)

    def take(self, key: str, slot: int, n: int, *, keep_slots: int, slot_seconds: float) -> tuple[int, float]:
        paused_for = self.paused_for(key)
        if paused_for:
            return 0, paused_for
        table, key_, slot_, requested = map(
            connection.ops.quote_name, (RateLimitSlot._meta.db_table, "key", "slot", "requested")
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({key_}, {slot_}, {requested}) VALUES (%s, %s, %s) "  # noqa: S608 - names
                f"ON CONFLICT ({key_}, {slot_}) "
                f"DO UPDATE SET {requested} = {table}.{requested} + excluded.{requested} RETURNING {requested}",
                [key, slot, n],
            )
            (total,) = cursor.fetchone()
        if next(self._takes) % self.FORGET_EVERY == 0:
            RateLimitSlot.objects.filter(key=key, slot__lt=slot - keep_slots).delete()
        return total, 0.0

    def pause(self, key: str, seconds: float) -> None:
        until = timezone.now() + timedelta(seconds=seconds)
        RateLimitPause.objects.bulk_create([RateLimitPause(key=key, until=until)], ignore_conflicts=True)
        RateLimitPause.objects.filter(key=key, until__lt=until).update(until=until)

    def paused_for(self, key: str) -> float:
        now = timezone.now()
        until = RateLimitPause.objects.filter(key=key, until__gt=now).values_list("until", flat=True).first()
        return (until - now).total_seconds() if until else 0.0

    def counts(self, key: str, slots: range) -> dict[int, int]:
        rows = RateLimitSlot.objects.filter(key=key, slot__gte=slots.start, slot__lt=slots.stop)
        return dict(rows.values_list("slot", "requested"))


class RateLimiter:
    """At most `limit` permits per rolling `window_seconds` under `key`, paced evenly, for every process.

    A `limit` of 0 or None means unlimited: `acquire` grants at once and nothing is stored (nor paused).
    """

    def __init__(
        self,
        key: str,
        limit: int | None,
        window_seconds: float,
        *,
        backend: Backend | None = None,
        slot_seconds: float = SLOT_SECONDS,
    ) -> None:
        if (limit or 0) < 0 or window_seconds <= 0 or slot_seconds <= 0:
            raise ValueError("The limit must be 0 or more, the window and the slot longer than 0 seconds.")
        self.key = key
        self.limit = limit or 0
        self.window_seconds = window_seconds
        self.slot_seconds = slot_seconds
        # A rolling window touches this many slots at most: the limit is spread over them.
        self.slots_per_window = math.ceil(window_seconds / slot_seconds - 1e-9) + 1
        self.backend = backend or (default_backend() if self.limit else None)

    def __repr__(self) -> str:
        return f"RateLimiter({self.key!r}, {self.limit}, {self.window_seconds})"

    @property
    def unlimited(self) -> bool:
        return not self.limit

    def cap(self, slot: int) -> int:
        """How many permits `slot` may grant: its share of the limit, rounded so any M slots grant the limit."""
        return self.limit * (slot + 1) // self.slots_per_window - self.limit * slot // self.slots_per_window

    def acquire(self, n: int = 1, *, max_wait: float | None = None) -> int:
        """Wait for permits and return how many were granted: 1 to `n`, or 0 when `max_wait` seconds won't do."""
        if self.unlimited:
            return n
        deadline = None if max_wait is None else time.monotonic() + max_wait
        while True:
            granted, wait = self._attempt(n, deadline)
            if wait is None:
                return granted
            time.sleep(wait)

    def try_acquire(self, n: int = 1) -> tuple[int, float]:
        """One try, without waiting: (permits granted, 0), or (0, seconds after which to try again)."""
        if self.unlimited:
            return n, 0.0
        granted, wait = self._attempt(n, None)
        return (granted, 0.0) if wait is None else (0, wait)

    def _attempt(self, n: int, deadline: float | None) -> tuple[int, float | None]:
        """One try: (granted, None) when done, (0, seconds) to try again after that wait."""
        if n < 1:
            raise ValueError("Ask for at least one permit.")
        now = time.time()
        slot = int(now // self.slot_seconds)
        paused_for = 0.0
        if cap := self.cap(slot):
            total, paused_for = self.backend.take(
                self.key, slot, n, keep_slots=KEEP_WINDOWS * self.slots_per_window, slot_seconds=self.slot_seconds
            )
            granted = min(n, cap - (total - n))  # what fits under the cap after those who came first
            if not paused_for and granted > 0:
                return granted, None
        wait = paused_for
        if not wait:  # the slot is spent: come back in the next slot that grants anything
            slot += 1
            while not self.cap(slot):
                slot += 1
            wait = slot * self.slot_seconds - now + random.uniform(0, JITTER * self.slot_seconds)  # noqa: S311
        if deadline is not None and time.monotonic() + wait > deadline:
            return 0, None
        return 0, wait

    def pause(self, seconds: float) -> None:
        """Nobody sharing this limiter's key acquires for `seconds` (e.g. a 429's Retry-After)."""
        if not self.unlimited and seconds > 0:
            self.backend.pause(self.key, seconds)

    def paused_until(self) -> float | None:
        """The epoch time the current pause ends, or None."""
        if self.unlimited:
            return None
        seconds = self.backend.paused_for(self.key)
        return time.time() + seconds if seconds else None

    def stats(self) -> dict:
        """Permits granted over the last window, against the limit."""
        if self.unlimited:
            return {"key": self.key, "limit": None, "window_seconds": self.window_seconds, "granted": None}
        current = int(time.time() // self.slot_seconds)
        slots = range(current - self.slots_per_window + 2, current + 1)  # the slots of the last window
        counts = self.backend.counts(self.key, slots)
        granted = sum(min(count, self.cap(slot)) for slot, count in counts.items())
        return {
            "key": self.key,
            "limit": self.limit,
            "window_seconds": self.window_seconds,
            "granted": granted,
            "share": granted / self.limit,
            "paused_until": self.paused_until(),
        }


@functools.cache
def _backend(redis_url: str) -> Backend:
    return RedisBackend(redis_url) if redis_url else DatabaseBackend()


def default_backend() -> Backend:
    """Redis when `REDIS_URL` is set, else the database; one per process."""
    return _backend(settings.REDIS_URL)


def limiter_for(service_key: str) -> RateLimiter:
    """The limiter shared by every call to a service: `<SERVICE>_RATE_LIMIT` per `<SERVICE>_RATE_WINDOW_SECONDS`.

    The settings are the one source of the limits: a service without them is a mistake, not a default.
    """
    limit_name, window_name = f"{service_key.upper()}_RATE_LIMIT", f"{service_key.upper()}_RATE_WINDOW_SECONDS"
    try:
        limit, window = getattr(settings, limit_name), getattr(settings, window_name)
    except AttributeError:
        raise ImproperlyConfigured(f"No rate limit for {service_key!r}: set {limit_name} and {window_name}.") from None
    return RateLimiter(service_key, limit, window)
