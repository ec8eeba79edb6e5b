"""The shared rate limiter against real PostgreSQL and real Redis: caps under concurrency, pacing, pauses."""

import multiprocessing
import os
import random
import threading
import time
import uuid

import pytest
import redis
import time_machine
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

from delivery import engine
from delivery.models import RateLimitSlot
from delivery.ratelimit import DatabaseBackend, RateLimiter, RedisBackend, limiter_for
from delivery.services import SERVICES
from delivery.transport import AsyncTransport
from tests.conftest import make_campaign

REDIS_URL = "redis://127.0.0.1:6379/15"
FROZEN_AT = 1_900_000_000.25  # an instant well inside its slot, for tests that must stay in one slot


@pytest.fixture
def key():
    """A key of its own for each test; its Redis keys are deleted afterwards."""
    key = f"test-{uuid.uuid4().hex[:12]}"
    yield key
    client = redis.Redis.from_url(REDIS_URL)
    for name in client.scan_iter(f"presave:rl:{{{key}}}:*"):
        client.delete(name)


@pytest.fixture(params=["redis", "database"])
def new_backend(request):
    """Makes a fresh backend, as another process would have: Redis, or the database on PostgreSQL."""
    if request.param == "database":
        request.getfixturevalue("transactional_db")
        return DatabaseBackend
    return lambda: RedisBackend(REDIS_URL)


def in_threads(count: int, target) -> list:
    """Run `target()` in `count` threads at once (each closes its database connection); their results."""
    results = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = target()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def take_until_refused(limiter: RateLimiter) -> int:
    """Take random blocks from the current slot until it refuses; how many permits were granted."""
    total = 0
    while granted := limiter.acquire(random.randint(1, 7), max_wait=0):
        total += granted
    return total


@pytest.mark.parametrize(("limit", "window", "slot"), [(600, 30, 1), (30, 3, 0.1), (7, 2, 0.5), (1000, 0.7, 0.25)])
def test_any_run_of_slots_a_window_can_touch_grants_the_limit_at_most(limit, window, slot):
    limiter = RateLimiter("pure", limit, window, slot_seconds=slot, backend=DatabaseBackend())
    m = limiter.slots_per_window
    assert (m - 2) * slot < window <= (m - 1) * slot + 1e-9  # m slots can meet one window, m + 1 cannot
    caps = [limiter.cap(s) for s in range(1_900_000_000, 1_900_000_000 + 3 * m)]
    assert {sum(caps[i : i + m]) for i in range(2 * m)} == {limit}
    assert max(caps) - min(caps) <= 1


def test_a_slot_never_grants_more_than_its_cap_to_threads_sharing_the_database(transactional_db, key):
    limiter = RateLimiter(key, 10_000, 10, backend=DatabaseBackend())
    with time_machine.travel(FROZEN_AT, tick=False):
        cap = limiter.cap(int(FROZEN_AT))
        granted = in_threads(8, lambda: take_until_refused(limiter))

    assert sum(granted) == cap == 909
    assert all(granted)  # every thread got its turn
    assert RateLimitSlot.objects.get(key=key).requested >= cap


def redis_worker(key: str, start, results) -> None:
    random.seed(os.getpid())
    limiter = RateLimiter(key, 10_000, 10, backend=RedisBackend(REDIS_URL))
    limiter.backend.redis.ping()  # connected before the start
    start.wait()
    with time_machine.travel(FROZEN_AT, tick=False):
        results.put(take_until_refused(limiter))


def test_a_slot_never_grants_more_than_its_cap_to_processes_sharing_redis(key):
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(6), context.Queue()
    workers = [context.Process(target=redis_worker, args=(key, start, results)) for _ in range(6)]
    for worker in workers:
        worker.start()
    granted = [results.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)

    assert sum(granted) == RateLimiter(key, 10_000, 10).cap(int(FROZEN_AT)) == 909
    assert all(granted)


def test_blocks_are_granted_in_part_when_the_slot_has_less_left(new_backend, key):
    limiter = RateLimiter(key, 30, 2, backend=new_backend())  # 3 slots can meet a window: 10 permits a slot
    with time_machine.travel(FROZEN_AT, tick=False):
        assert [limiter.acquire(7), limiter.acquire(7), limiter.acquire(7, max_wait=0)] == [7, 3, 0]
    with time_machine.travel(FROZEN_AT + 1, tick=False):
        assert limiter.acquire(64) == 10
        assert limiter.acquire(1, max_wait=0.5) == 0  # the next slot is a second away
        assert limiter.stats() | {"paused_until": None} == {
            "key": key,
            "limit": 30,
            "window_seconds": 2,
            "granted": 20,
            "share": 20 / 30,
            "paused_until": None,
        }


def test_try_acquire_answers_at_once_with_the_wait_until_the_next_slot(new_backend, key):
    limiter = RateLimiter(key, 30, 2, backend=new_backend())  # 10 permits a slot
    with time_machine.travel(FROZEN_AT, tick=False):
        assert limiter.try_acquire(7) == (7, 0.0)
        assert limiter.try_acquire(7) == (3, 0.0)
        granted, wait = limiter.try_acquire(1)
    assert granted == 0
    assert 0.75 <= wait <= 0.75 + 0.05  # FROZEN_AT is a quarter into its slot; plus up to 5% jitter
    limiter.pause(5)
    granted, wait = limiter.try_acquire(1)
    assert granted == 0 and wait == pytest.approx(5, abs=0.2)
    assert RateLimiter(key, 0, 1).try_acquire(64) == (64, 0.0)


def test_steady_demand_uses_the_limit_and_never_exceeds_it_in_any_window(new_backend, key):
    limiter = RateLimiter(key, 30, 3, backend=new_backend(), slot_seconds=0.1)
    start = time.time()
    end = time.monotonic() + 3.0

    def demand() -> list[float]:
        grants = []
        while granted := limiter.acquire(1, max_wait=end - time.monotonic()):
            grants.extend([time.time()] * granted)
        return grants

    grants = sorted(t for thread in in_threads(4, demand) for t in thread)

    assert len([t for t in grants if t < start + 3]) >= 27  # at least 90% of the limit
    assert max(len([u for u in grants[i:] if u < t + 3]) for i, t in enumerate(grants)) <= 30
    assert 27 <= limiter.stats()["granted"] <= 30


def test_a_pause_stops_every_limiter_with_the_same_key(new_backend, key):
    first = RateLimiter(key, 100, 1, backend=new_backend())
    other = RateLimiter(key, 100, 1, backend=new_backend())
    started = time.monotonic()

    first.pause(0.6)

    assert other.paused_until() == pytest.approx(time.time() + 0.6, abs=0.1)
    assert other.acquire(5, max_wait=0.2) == 0  # gives up at once: the pause outlasts max_wait
    assert other.acquire(5) >= 1
    assert time.monotonic() - started >= 0.55
    assert other.paused_until() is None


def test_a_shorter_pause_does_not_cut_a_longer_one(new_backend, key):
    limiter = RateLimiter(key, 100, 1, backend=new_backend())
    limiter.pause(5)
    limiter.pause(0.1)
    assert limiter.paused_until() == pytest.approx(time.time() + 5, abs=0.2)


def test_acquire_waits_out_a_pause(key):
    limiter = RateLimiter(key, 100, 1, backend=RedisBackend(REDIS_URL))
    limiter.pause(0.4)

    started = time.monotonic()
    assert [limiter.acquire(2) for _ in range(3)] == [2, 2, 2]
    assert 0.35 <= time.monotonic() - started < 1.0


def test_an_unlimited_limiter_never_calls_its_backend(key):
    nowhere = RedisBackend("redis://127.0.0.1:1/0")  # any call would fail to connect
    for limit in (0, None):
        limiter = RateLimiter(key, limit, 1, backend=nowhere)
        limiter.pause(10)
        assert limiter.acquire(64) == 64
        assert limiter.acquire(64, max_wait=0) == 64
        assert limiter.paused_until() is None
        assert limiter.stats()["granted"] is None
    assert RateLimiter(key, None, 1).backend is None  # no database either: this test has no access to it


def test_old_slots_are_forgotten_as_the_database_backend_goes(transactional_db, key):
    RateLimitSlot.objects.create(key=key, slot=int(FROZEN_AT) - 1000, requested=3)
    limiter = RateLimiter(key, 100_000, 10, backend=DatabaseBackend())
    with time_machine.travel(FROZEN_AT, tick=False):
        for _ in range(DatabaseBackend.FORGET_EVERY):
            limiter.acquire()
    assert list(RateLimitSlot.objects.filter(key=key).values_list("slot", "requested")) == [(int(FROZEN_AT), 100)]


def test_the_limiter_for_a_service_follows_settings(settings):
    settings.SPOTIFY_RATE_LIMIT = 50
    settings.SPOTIFY_RATE_WINDOW_SECONDS = 10
    settings.REDIS_URL = ""
    limiter = limiter_for("spotify")
    assert (limiter.key, limiter.limit, limiter.window_seconds) == ("spotify", 50, 10)
    assert isinstance(limiter.backend, DatabaseBackend)

    settings.REDIS_URL = REDIS_URL
    assert isinstance(limiter_for("spotify").backend, RedisBackend)


def test_every_service_has_its_limit_in_settings_and_a_service_without_one_stops_loudly(settings):
    """The settings are the one source of the limits: a service without them used to get 600 calls per 30 s
    silently (the limiter's own copy of Spotify's default)."""
    for key in SERVICES:
        limiter = limiter_for(key)
        prefix = key.upper()
        assert (limiter.limit, limiter.window_seconds) == (
            getattr(settings, f"{prefix}_RATE_LIMIT"),
            getattr(settings, f"{prefix}_RATE_WINDOW_SECONDS"),
        )

    del settings.SPOTIFY_RATE_WINDOW_SECONDS
    with pytest.raises(ImproperlyConfigured, match="set SPOTIFY_RATE_LIMIT and SPOTIFY_RATE_WINDOW_SECONDS"):
        limiter_for("spotify")
    with pytest.raises(ImproperlyConfigured, match="No rate limit for 'tidal'"):
        limiter_for("tidal")


@pytest.mark.django_db
def test_under_a_rate_limit_a_batch_is_about_fifteen_seconds_of_fans(settings):
    """A batch is recorded, and the console's progress moves, when its last fan is done: under a low limit a
    full batch took minutes, with the progress bar standing still."""
    settings.SPOTIFY_RATE_LIMIT, settings.SPOTIFY_RATE_WINDOW_SECONDS = 300, 30  # 10 calls a second
    settings.DELIVERY_BATCH_SIZE = 1000
    campaign = make_campaign(services=["spotify"])
    with AsyncTransport(concurrency=4, timeout=5) as transport:
        assert engine.Run(campaign, transport).batch_size == 75  # 5 fans a second (refresh, save), 15 s
        campaign.follow_artist = True
        assert engine.Run(campaign, transport).batch_size == 50  # three calls a fan
        settings.SPOTIFY_RATE_LIMIT = 0  # no limit: full batches
        assert engine.Run(campaign, transport).batch_size == 1000
