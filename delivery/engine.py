"""The delivery engine: keeps every fan's pre-save promise exactly once, fast, within the service's limits.

A run claims due subscriptions in batches under a lease (a conditional UPDATE, with
`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL), so any number of workers in any number of clusters can share
a campaign, and a worker killed mid-run only delays its batch until the lease expires. For each batch:

1. markets where the release is not out yet wait (checked on the service, not assumed);
2. each fan's token is refreshed, many fans in flight at once (delivery/transport.py); a rotated refresh token
   is handed to the run's thread, stored (one UPDATE for many fans), and only then does that fan's save go
   out (the old token may already be dead); every fan is handed over again just before their first library
   write, and the run's thread checks in one statement for many fans that they are still subscribed;
3. while a batch is in flight, the run's thread claims and prepares the next one, starts it as the batch's
   last fans finish (the calls in flight never drain between batches), then records the batch;
4. outcomes are recorded with a few grouped, conditional writes: only the lease holder may record; so is what
   the fans still between calls did so far, so that a kill repeats none of it (`Run.report_progress`).

Every call takes a permit from the service's shared rate limiter (delivery/ratelimit.py), so all workers
together pace themselves under the limit; a 429 (or the service refusing our app's credentials) pauses them all
for the time the service asked.
Failures are sorted by meaning: a revoked authorization is final and its token destroyed; 5xx, timeouts and
connection errors are retried later with exponential backoff and jitter, up to DELIVERY_MAX_ATTEMPTS.
A fan's token is deleted with the record of their delivery, or of a failure no try can put right; a failure
that gave up after passing errors keeps it for Retry failed.

What queues runs (the release-time Schedule, Deliver now, helper runs, the minute sweeper) is in
delivery/scheduling.py; the django-q2 tasks are in delivery/tasks.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import math
import os
import queue
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Min, OuterRef, Q, Value
from django.db.models.functions import Coalesce, Greatest
from django.template.defaultfilters import pluralize
from django.utils import timezone
from django_q.tasks import async_task

from delivery import bulk
from delivery.gctuning import tuned_for_delivery
from delivery.models import DeliveryAttempt
from delivery.ratelimit import RateLimiter, limiter_for
from delivery.services import (
    SERVICES,
    ReleaseNotFound,
    Service,
    ServiceError,
    ServicePaused,
    TokenRevoked,
    get_service,
)
from delivery.services.base import Call, DeliveryCalls, Reply
from delivery.transport import AsyncTransport
from fans import vault
from fans.models import Subscription, country_without_market, credential_aad
from releases.models import Campaign

logger = logging.getLogger(__name__)

# A run waits in place for work due within this many seconds; later work is left to the minute sweeper.
MAX_INLINE_WAIT_SECONDS = 30.0
RATE_LIMIT_RETRIES = 5
MISSING_KEY_RETRY_SECONDS = 300.0  # a fan whose token's vault key is not configured is tried again after this
AVAILABILITY_CHECKS_AT_ONCE = 16  # markets asked about at once (`Run.check_markets`)
RECORDED_EVERY_SECONDS = 15  # under a rate limit, a batch's worth of fans (`Run.paced_batch_size`)
MIN_PACED_BATCH = 16
SPREAD_PACE_WINDOW_SECONDS = 30.0  # a firing window's pace is counted over at most this many seconds
WAIT = "wait"  # an outcome that is not an attempt: the fan waits for something put right (Run.wait_for)
WAITED = "Gave up waiting"  # begins the error of a fan that waited for the service past the waiting time
SERVICE_NAMES = {cls.label.split()[0] for cls in SERVICES.values()}  # "Spotify", "Apple", "Deezer": kept capitalized
GAVE_UP = "Gave up after"  # begins the error of a transient failure out of attempts (Retry failed finds these)
WITHDRAWN = "The fan withdrew the pre-save while it was being delivered: nothing was saved."
REPORT_TASK = "releases.report.send_delivery_report"  # the release-day report to staff (releases/report.py)
PAUSED = "Paused: the service asked every worker to wait (its rate limit, or it refused our app's credentials)."


@dataclass(slots=True)
class Claim:
    """A claimed subscription: what the engine needs of it, fetched as values (model instances cost more)."""

    pk: int
    attempts: int
    market: str
    service: str
    country: str  # the fan's (Fan.country): their market when the pre-save has none (`Run.market_of`)
    sealed: vault.Sealed | None  # the fan's sealed refresh token; None when the authorization is gone
    done_calls: str  # the library actions an earlier try did ("save"): this one skips them


@dataclass
class Outcome:
    subscription: Claim
    result: str  # a DeliveryAttempt.Outcome, or WAIT
    call: str
    message: str = ""
    http_status: int | None = None
    retry_in_seconds: float = 0.0
    attempted: bool = True  # counts toward DELIVERY_MAX_ATTEMPTS (a wait for the service's pause does not)
    done_calls: str | None = None  # the library actions done so far (Subscription.done_calls); None: as they were


@dataclass
class Batch:
    """Claimed subscriptions on their way: settled outcomes, fans ready to call, and the calls in flight; the
    campaign and service clients it was prepared with (the run's may be replaced while its calls are out)."""

    subscriptions: list[Claim]
    campaign: Campaign
    services: dict[str, Service]
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    ready: list[tuple[Claim, str]] = field(default_factory=list)
    future: concurrent.futures.Future | None = None
    unfinished: int = 0  # fans of `ready` not done yet (counted down on the transport's loop)
    given_back: bool = False  # not started: the campaign stopped being delivered meanwhile (`Run.start`)
    recorded: set[int] = field(default_factory=set)  # fans whose outcome is written (`Run.record_finished`)

    @property
    def waiting(self) -> bool:
        """Claimed and prepared, neither started nor given back."""
        return self.future is None and not self.given_back


@dataclass
class RunReport:
    campaign_id: int
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def add(self, result: str) -> None:
        self.counts[result] = self.counts.get(result, 0) + 1

    def summary(self) -> str:
        parts = [f"{name} {count}" for name, count in sorted(self.counts.items())] or ["nothing due"]
        return f"campaign {self.campaign_id}: " + ", ".join(parts) + (f" ({self.note})" if self.note else "")


class Permits:
    """Permits from a shared limiter, taken in blocks so a call costs no round trip to the limiter's store.

    A block is spent within its slot or dropped: permits kept past their slot could pile up into a burst.
    """

    def __init__(self, limiter: RateLimiter, transport: AsyncTransport, block: int) -> None:
        self.limiter, self.transport, self.block = limiter, transport, block
        self.available = 0
        self.granted_at = 0.0
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        if self.limiter.unlimited:
            return
        async with self.lock:  # first come, first served: asyncio's lock wakes its waiters in order
            while self.available <= 0 or time.monotonic() - self.granted_at > self.limiter.slot_seconds:
                # The store is asked without waiting there: the wait is on the loop, the executor stays free.
                granted, wait = await self.transport.blocking(self.limiter.try_acquire, self.block)
                if granted:
                    self.available, self.granted_at = granted, time.monotonic()
                elif wait > settings.DELIVERY_MAX_RETRY_AFTER_SECONDS:  # a long Retry-After: try this fan later
                    raise ServicePaused(wait, PAUSED)
                else:
                    await asyncio.sleep(wait)
            self.available -= 1

    async def pause(self, seconds: float, *, wait: bool = True) -> None:
        """Nobody sharing the limiter calls for `seconds`. Without a limiter (a limit of 0) there is nobody to
        tell: with `wait`, this call waits on its own."""
        self.available = 0
        if not self.limiter.unlimited:
            await self.transport.blocking(self.limiter.pause, seconds)
        elif wait:  # no shared pause for `take` to wait out: the service's wait is still due
            await asyncio.sleep(seconds)


def due_now() -> Q:
    """Pending subscriptions whose time has come and that no live lease holds."""
    now = timezone.now()
    return (
        Q(status=Subscription.Status.PENDING)
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
    )


class Run:
    """One worker's pass over one campaign."""

    def __init__(self, campaign: Campaign, transport: AsyncTransport) -> None:
        self.campaign = campaign
        self.release = campaign.release
        self.transport = transport
        self.owner = uuid.uuid4()
        self.report = RunReport(campaign.pk)
        self.services: dict[str, Service] = {}
        self.permits: dict[str, Permits] = {}
        self.resolved: dict[str, ReleaseNotFound | None] = {}  # per service: None, or why the release wasn't found
        self.availability: dict[tuple[str, str], tuple[bool, float]] = {}
        self.failed_checks: dict[tuple[str, str], ServiceError] = {}  # per batch: (service, market or "")
        self.slots = asyncio.Semaphore(settings.DELIVERY_CONCURRENCY)
        # (subscription, rotated refresh token or None, future): handed to the run's thread to store, or to check
        self.handed: queue.SimpleQueue = queue.SimpleQueue()
        # (batch, outcome) of each fan whose calls are done, for the run's thread to write (`record_finished`)
        self.finished: queue.SimpleQueue = queue.SimpleQueue()
        self.recorded_at = time.monotonic()  # when this run last wrote the outcomes of fans done since
        # (batch, subscription id, done calls, future or None) of each fan whose library actions grew while it has
        # more calls to make (`report_progress`), for the run's thread to write (`record_progress`)
        self.progressed: queue.SimpleQueue = queue.SimpleQueue()
        self.unwritten: dict[int, tuple[Batch, str]] = {}  # the latest of each fan's, gathered until written
        self.batch_size = min(settings.DELIVERY_BATCH_SIZE, self.paced_batch_size())
        self.fan_permits = self.spread_permits()
        self.renewed_at = time.monotonic()  # when this run last extended its leases (`renew_leases`)
        self.paused_until: dict[str, float | None] = {}  # per service: when its pause ends (`check_not_paused`)
        self.missing_keys: set[str] = set()  # vault keys this run found missing (logged once each)
        self.logged_pauses: set[tuple[str, str]] = set()  # (service, reason) of the pauses this run logged

    # --- per service ----------------------------------------------------------------------------------
    def service(self, key: str) -> Service:
        if key not in self.services:
            self.services[key] = get_service(key)
        if key not in self.permits:
            self.permits[key] = Permits(limiter_for(key), self.transport, settings.DELIVERY_PERMIT_BLOCK)
        return self.services[key]

    def paced_batch_size(self) -> int:
        """Under a rate limit, a batch of about RECORDED_EVERY_SECONDS of fans at the slowest service's pace (two
        calls a fan, one more with a follow, two more with a playlist): a batch is recorded, and the console's
        progress moves, when its last fan is done, and a full batch at a low limit would take minutes."""
        limiters = [limiter_for(cls.key) for cls in self.campaign.offered_services()]
        paces = [limiter.limit / limiter.window_seconds for limiter in limiters if not limiter.unlimited]
        if not paces:
            return settings.DELIVERY_BATCH_SIZE
        calls_per_fan = 2 + self.campaign.follow_artist + 2 * bool(self.campaign.playlist_name)  # make it, fill it
        return max(MIN_PACED_BATCH, int(min(paces) / calls_per_fan * RECORDED_EVERY_SECONDS))

    def spread_permits(self) -> Permits | None:
        """With a firing window, fans start at an even pace across it, first come first served.

        The pace is a limiter shared by every run of the campaign: the campaign's fans over the window, counted
        over a rolling half of the window (30 s at most, so that a big campaign flows evenly, not in bursts).
        Also shrinks `batch_size` so that a batch claimed at that pace starts well within its lease."""
        seconds = self.campaign.spread_minutes * settings.DELIVERY_SPREAD_MINUTE_SECONDS
        if not seconds:
            return None
        total = Subscription.objects.filter(campaign=self.campaign).count()
        window = min(SPREAD_PACE_WINDOW_SECONDS, seconds / 2)
        limit = max(1, math.ceil(total * window / seconds))
        limiter = RateLimiter(f"campaign-{self.campaign.pk}-spread", limit, window, slot_seconds=window / 30)
        block = min(settings.DELIVERY_PERMIT_BLOCK, max(1, limit // limiter.slots_per_window))  # ≤ one slot's share
        # A claimed batch must start well within its lease (the next one is claimed while one is in flight).
        self.batch_size = max(1, min(self.batch_size, int(total / seconds * settings.DELIVERY_LEASE_SECONDS / 4)))
        return Permits(limiter, self.transport, block)

    def resolve(self, service: Service) -> ReleaseNotFound | None:
        """Once per run and service: find the release on the service (by URI, else UPC/ISRC), and what else its
        calls need (`Service.prepare_delivery`: a playlist's tracks); why not, when the service does not know it
        (yet). A passing error (a 5xx, a timeout, a pause) goes up, as `failed_checks` keeps it for the batch."""
        if service.key not in self.resolved:
            try:
                self.checked((service.key, ""), service.prepare_delivery, self.campaign)
                self.resolved[service.key] = None
            except ReleaseNotFound as exc:
                self.resolved[service.key] = exc
        return self.resolved[service.key]

    def checked(self, key: tuple[str, str], check, *args):
        """`check(*args)`, unless it failed already for this batch: its error again, without a call (the batch's
        next fans would each call a service that is failing)."""
        if key in self.failed_checks:
            raise self.failed_checks[key]
        try:
            return check(*args)
        except ServiceError as exc:
            if not isinstance(exc, ReleaseNotFound):
                self.failed_checks[key] = exc
            raise

    def check_not_paused(self, service: Service) -> None:
        """ServicePaused when the service asked every worker to pause for longer than a run waits in place: its
        fans are put off until then without a call (the limiter's store is read once per batch and service)."""
        if service.key not in self.paused_until:
            limiter = self.permits[service.key].limiter
            self.paused_until[service.key] = self.transport.submit(self.transport.blocking(limiter.paused_until))
        paused_until = self.paused_until[service.key]
        if paused_until and paused_until - time.time() > settings.DELIVERY_MAX_RETRY_AFTER_SECONDS:
            raise ServicePaused(paused_until - time.time(), PAUSED)

    def pause(self, service: Service, exc: ServicePaused) -> None:
        """Nobody calls `service` for the pause's time: every worker sharing its limiter (`Permits.pause`, as a
        call's long pause does), and this run's next fans."""
        self.transport.submit(self.permits[service.key].pause(exc.retry_after, wait=False))
        self.paused_until[service.key] = time.time() + exc.retry_after
        self.log_pause(service, exc)

    def log_pause(self, service: Service, exc: ServicePaused) -> None:
        """Tell the operators, once per run and reason, that every worker waits for `service` (the fans' last
        errors say it too, one by one)."""
        if (service.key, exc.message) not in self.logged_pauses:
            self.logged_pauses.add((service.key, exc.message))
            logger.warning("Campaign %s: every worker waits %.0f s for %s: %s",
                           self.campaign.pk, exc.retry_after, service.label, exc.message)  # fmt: skip

    def known_availability(self, service: Service, market: str) -> bool | None:
        """What this run knows of whether the release is out in `market`: a release out stays out, one not out
        is asked about again after DELIVERY_AVAILABILITY_RECHECK_SECONDS; None when it is to be asked."""
        known = self.availability.get((service.key, market))
        if known and (known[0] or time.monotonic() - known[1] < settings.DELIVERY_AVAILABILITY_RECHECK_SECONDS):
            return known[0]
        return None

    def is_available(self, service: Service, market: str) -> bool:
        """Whether the release is out in `market`: asked of the service when this run does not know
        (`known_availability`; `check_markets` asks for a batch's markets all at once beforehand)."""
        known = self.known_availability(service, market)
        if known is not None:
            return known
        key = (service.key, market)
        available = self.checked(key, self.ask_availability, service, market)
        self.availability[key] = (available, time.monotonic())
        return available

    def ask_availability(self, service: Service, market: str) -> bool:
        # The limiter's store is only touched from the transport's own thread (never inside a transaction).
        self.transport.submit(self.transport.blocking(self.permits[service.key].limiter.acquire, 1))
        return service.is_available(self.release, market)

    # --- claiming -------------------------------------------------------------------------------------
    def plan(self) -> None:
        """Per-market campaigns: each new subscription becomes due at its market's local release time."""
        if self.campaign.firing != Campaign.Firing.PER_MARKET:
            return
        unplanned = Subscription.objects.filter(
            campaign=self.campaign, status=Subscription.Status.PENDING, attempts=0, next_attempt_at__isnull=True
        ).annotate(country=country_without_market())
        for market, country in unplanned.values_list("market", "country").distinct().order_by():
            fires_at = self.campaign.firing_time(self.campaign.market_for(market, country))
            unplanned.filter(market=market, country=country).update(next_attempt_at=fires_at)

    def reload(self) -> bool:
        """The campaign, its release and artist as they are now (one query), before each claim: staff may correct
        a UPC, ISRC or URI, what the campaign does (save, follow), or its firing window, during a long delivery.
        When what finds the release or what is done changed, what this run found on the services is forgotten: the
        next batches look the release up again, on fresh service clients (the batches out keep theirs); a changed
        window paces the fans not started yet (`spread_permits`). Returns whether the campaign is still being
        delivered (`still_delivering`)."""
        campaign = Campaign.objects.select_related("release__artist").filter(pk=self.campaign.pk).first()
        if campaign is None:
            return False
        if what_is_delivered(campaign) != what_is_delivered(self.campaign):
            self.services = {}  # a new dict: the batches out keep the clients they were prepared with
            self.resolved, self.availability = {}, {}
        window_changed = campaign.spread_minutes != self.campaign.spread_minutes
        self.campaign, self.release = campaign, campaign.release
        if window_changed:  # staff widened, narrowed or removed the firing window: the fans not started follow it
            self.batch_size = min(settings.DELIVERY_BATCH_SIZE, self.paced_batch_size())
            self.fan_permits = self.spread_permits()
        return campaign.status == Campaign.Status.DELIVERING

    def still_delivering(self) -> bool:
        """Whether the campaign is still being delivered: a release postponed meanwhile puts it back to live
        (releases/signals.py), and the run claims no more and starts no batch it claimed ahead (the batches out
        are finished and recorded). Asked before each claim and before each batch starts."""
        return Campaign.objects.filter(pk=self.campaign.pk, status=Campaign.Status.DELIVERING).exists()

    def due(self):
        due = Subscription.objects.filter(due_now(), campaign=self.campaign)
        if self.campaign.firing == Campaign.Firing.PER_MARKET:  # planned only: never before the fan's market
            due = due.filter(next_attempt_at__isnull=False)
        return due

    def claim(self) -> list[Claim]:
        """Lease the next batch of due subscriptions, first come first served, skipping rows other runs hold.

        The batch before is usually in flight meanwhile, so a claim the database cannot take (a restart, a
        failover) is made again until it comes back, rather than ending the run with that batch unrecorded. (A
        claim committed just before its connection dropped leaves its rows leased to this run, which never saw
        them: they are claimed again when the lease runs out.)"""

        def lease() -> list[tuple]:
            lease_until = timezone.now() + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
            return bulk.claim(self.due().order_by("created_at", "pk"), self.claim_size(), self.owner, lease_until)

        rows = bulk.retried_write(lease)
        return [
            Claim(
                pk,
                attempts,
                market,
                service,
                country,
                vault.Sealed(kek_id, bytes(key), bytes(ct)) if kek_id else None,
                done,
            )
            for pk, attempts, market, done, service, country, kek_id, key, ct in rows
        ]

    def claim_size(self) -> int:
        """A full batch while plenty is due; near the end, a share of what is left, so that the campaign's runs
        finish together instead of one of them working through a last full batch alone."""
        runs = settings.DELIVERY_PARALLEL_RUNS
        if runs == 1:
            return self.batch_size
        left = self.due()[: self.batch_size * runs].count()  # a bounded count: a walk of the queue's head
        share = max(settings.DELIVERY_CONCURRENCY, math.ceil(left / runs))
        return min(self.batch_size, share)

    def seconds_until_next_due(self) -> float | None:
        """How long until pending work becomes due (retry time or someone's lease); None if none is left."""
        now = timezone.now()
        pending = Subscription.objects.filter(campaign=self.campaign, status=Subscription.Status.PENDING)
        soonest = pending.aggregate(
            at=Min(Greatest(Coalesce("next_attempt_at", Value(now)), Coalesce("lease_expires_at", Value(now))))
        )["at"]
        return None if soonest is None else max(0.0, (soonest - now).total_seconds())

    # --- one batch ------------------------------------------------------------------------------------
    def prepare(self, batch: list[Claim]) -> Batch:
        """Settle what needs no call, and decrypt the rest's refresh tokens (on the run's thread)."""
        prepared = Batch(batch, self.campaign, self.services)
        self.paused_until = {}  # the services' pauses, read again for each batch (`check_not_paused`)
        self.failed_checks = {}  # the release's lookups and availability checks that failed, asked again
        self.check_markets(batch)
        for subscription in batch:
            outcome_or_token = self.before_calls(subscription)
            if isinstance(outcome_or_token, Outcome):
                prepared.outcomes[subscription.pk] = outcome_or_token
            else:
                prepared.ready.append((subscription, outcome_or_token))
        return prepared

    def check_markets(self, batch: list[Claim]) -> None:
        """Ask the services, all at once, whether the release is out in the batch's markets this run does not know
        about: an instant campaign's first batch holds fans of many markets (on Apple Music, a storefront each),
        and a check after another would hold the batch back by a call per market. A check that failed is not
        asked again for this batch: its fans get its error (`checked`), sorted fan by fan in `before_calls`."""
        wanted = []
        for service_key, market in {(s.service, self.market_of(s)) for s in batch if s.sealed is not None}:
            if self.not_yet(market):
                continue
            service = self.service(service_key)
            if service.can_deliver(self.release) and self.known_availability(service, market) is None:
                wanted.append((service, market))
        if len(wanted) < 2:
            return
        for service in {service for service, _ in wanted}:
            with contextlib.suppress(ServiceError):  # a pause: `before_calls` sorts it out, fan by fan
                self.check_not_paused(service)
                self.resolve(service)  # on this thread: it may store the identifier it found
        wanted = [(service, market) for service, market in wanted if self.resolved.get(service.key, True) is None]
        workers = min(len(wanted), AVAILABILITY_CHECKS_AT_ONCE)
        with concurrent.futures.ThreadPoolExecutor(workers or 1, thread_name_prefix="availability") as checks:
            for service, market in wanted:
                checks.submit(self.is_available, service, market)  # an error: kept for the batch's fans

    def start(self, batch: Batch) -> None:
        """Send the batch's fans on their way on the transport's loop; `finish` collects them. A batch claimed and
        prepared while staff stopped the delivery (postponed the release, set the campaign back to draft) is given
        back instead: its leases released without a call, its fans pending as they were, no attempt recorded."""
        if not self.still_delivering():
            batch.given_back = True
            ids = [subscription.pk for subscription in batch.subscriptions]
            bulk.retried_write(lambda: bulk.release_leases(ids, self.owner))
            return
        batch.unfinished = len(batch.ready)
        batch.future = self.transport.start(
            self.gather(self.deliver_fan(sub, token, batch) for sub, token in batch.ready)
        )

    def finish(self, batch: Batch, then: Batch | None = None) -> None:
        """Answer the batch's fans as they are handed over (`settle_handed`) and record those done
        (`record_finished`), until every fan is done; then record the rest of the batch while `then` (the next
        one) is in flight. `then` starts as soon as fewer of this batch's fans are left than the calls a run keeps
        in flight: the transport never drains between batches."""
        while not batch.future.done():
            if then is not None and then.waiting and batch.unfinished < settings.DELIVERY_CONCURRENCY:
                self.start(then)
            self.settle_handed(timeout=0.005)
            self.renew_leases(batch, then)
            self.record_finished()
        self.settle_handed(timeout=0)
        for outcome in batch.future.result():
            batch.outcomes[outcome.subscription.pk] = outcome
        if then is not None and then.waiting:
            self.start(then)
        rest = [batch.outcomes[sub.pk] for sub in batch.subscriptions if sub.pk not in batch.recorded]
        batch.recorded.update(outcome.subscription.pk for outcome in rest)
        self.record(rest)

    def record_finished(self) -> None:
        """Every DELIVERY_RECORD_SECONDS while calls are out, write the outcomes of the fans done since, then the
        progress of fans not done (`record_progress`): a worker killed mid-batch then repeats, once its leases
        expire, the calls that were in flight and the fans' calls done in the last moment before the kill, not
        every fan of its batches (a batch of a slow service takes minutes), nor what a fan waiting for its next
        call did earlier. Progress a fan waits to see stored (`report_progress`) is written at once."""
        waiting = self.take_progress()  # first: a fan's progress is reported before its outcome
        if time.monotonic() - self.recorded_at >= settings.DELIVERY_RECORD_SECONDS:
            self.recorded_at = time.monotonic()
            done = []
            while True:
                try:
                    batch, outcome = self.finished.get_nowait()
                except queue.Empty:
                    break
                if outcome.subscription.pk not in batch.recorded:  # the batch's end may have written it already
                    batch.recorded.add(outcome.subscription.pk)
                    done.append(outcome)
            if done:
                self.record(done)
        elif not waiting:
            return
        self.record_progress(waiting)

    def take_progress(self) -> list[asyncio.Future]:
        """Gather the progress reported since (`report_progress`), the latest per fan; return the futures of the
        fans waiting for theirs to be stored."""
        waiting = []
        while True:
            try:
                batch, pk, done_calls, written = self.progressed.get_nowait()
            except queue.Empty:
                return waiting
            self.unwritten[pk] = (batch, done_calls)
            if written is not None:
                waiting.append(written)

    def record_progress(self, waiting: list[asyncio.Future]) -> None:
        """Write the progress gathered (`take_progress`) of the fans whose outcome is not written (one UPDATE,
        none when no fan's progress changed; only where this run still holds the lease), then let the fans
        `waiting` for it go on. An outcome written already carries the fan's progress: theirs is not written
        again, where it could undo a later try's (the same run may claim the fan again)."""
        rows = [(pk, done) for pk, (batch, done) in self.unwritten.items() if pk not in batch.recorded]
        self.unwritten = {}
        if rows:
            bulk.retried_write(lambda: bulk.record_progress(self.owner, rows, timezone.now()))
        if waiting:
            self.transport.loop.call_soon_threadsafe(_settle, [(future, None) for future in waiting])

    def renew_leases(self, *batches: Batch | None) -> None:
        """Every quarter of a lease, extend the leases of the batches out (or claimed ahead): one slowed down by
        the rate limit, a Retry-After or a slow service must not be claimed, and delivered again, by another run
        while its calls are out. A run that dies stops renewing: its batches are claimed when the lease runs out."""
        if time.monotonic() - self.renewed_at < settings.DELIVERY_LEASE_SECONDS / 4:
            return
        ids = [sub.pk for batch in batches if batch is not None for sub in batch.subscriptions]
        lease_until = timezone.now() + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
        bulk.retried_write(lambda: bulk.renew_leases(ids, self.owner, lease_until))
        self.renewed_at = time.monotonic()

    def before_calls(self, subscription: Claim) -> Outcome | str:
        """What can be settled before the fan's own calls (no authorization, the release not found or not out in
        their market, the service paused, a vault key missing), else the fan's decrypted refresh token."""
        if subscription.sealed is None:
            return Outcome(subscription, DeliveryAttempt.Outcome.REVOKED, "refresh", "No stored authorization.")
        service = self.service(subscription.service)
        market = self.market_of(subscription)
        if fires_at := self.not_yet(market):  # due before their market's time (re-queued, say): no call before it
            return Outcome(
                subscription,
                WAIT,
                "availability",
                f"Waiting for the release time in {market} ({fires_at:%Y-%m-%d %H:%M} UTC).",
                retry_in_seconds=(fires_at - timezone.now()).total_seconds() + 1,  # written after this reading
            )
        if not service.can_deliver(self.release):  # staff can add one: the fan waits, as for a release not out
            missing = f"no {service.label} identifier, UPC or ISRC to find it by"
            return self.wait_for(
                subscription,
                "availability",
                f"Waiting: the release has {missing}.",
                f"the release still had {missing} {self.waiting_time_words()}.",
                self.availability_recheck_seconds(),
            )
        try:
            self.check_not_paused(service)
        except ServicePaused as exc:
            return self.classify(subscription, "availability", exc)
        try:
            unresolved = self.resolve(service)
            if unresolved is not None:  # its lookup's own words: the UPC or ISRC found nothing
                return self.wait_for(
                    subscription,
                    "availability",
                    f"Waiting: {after_colon(unresolved.message)}",
                    f"{self.waiting_time_words()}, {unresolved.message}",
                    self.availability_recheck_seconds(),
                )
            if not self.is_available(service, market):
                where = f"available on {service.label} in {market}"
                return self.wait_for(
                    subscription,
                    "availability",
                    f"Waiting: the release is not {where} yet.",
                    f"the release was still not {where} {self.waiting_time_words()}.",
                    self.availability_recheck_seconds(),
                )
        except ServicePaused as exc:  # a 429, or our app refused: the next fans are put off without a call
            self.pause(service, exc)
            return self.classify(subscription, "availability", exc)
        except ServiceError as exc:
            return self.classify(subscription, "availability", exc)
        return self.unseal(subscription)

    def unseal(self, subscription: Claim) -> Outcome | str:
        """The fan's refresh token, decrypted; a wait when the key that sealed it was taken out of
        TOKEN_ENCRYPTION_KEYS (a rotation finished before `rewrap_tokens` ran, say: it can be put back)."""
        try:
            return vault.unseal(subscription.sealed, aad=credential_aad(subscription.pk))
        except vault.MissingKey:
            kek_id = subscription.sealed.kek_id
            if kek_id not in self.missing_keys:  # logged once per run and key
                self.missing_keys.add(kek_id)
                logger.error("Campaign %s: fans wait for key %r, not in this process's TOKEN_ENCRYPTION_KEYS",
                             self.campaign.pk, kek_id)  # fmt: skip
            # Each process reads the keys when it starts: the one that tried may predate the key (README: Key
            # rotation), while the others have it.
            missing = (
                f"The key {kek_id!r} that sealed this fan's authorization is not in TOKEN_ENCRYPTION_KEYS as the "
                f"worker that tried (process {os.getpid()}) read them when it started"
            )
            return self.wait_for(
                subscription,
                "refresh",
                f"{missing} (a worker started before the key was added, or the key was taken out). The fan is "
                f"tried again every {MISSING_KEY_RETRY_SECONDS / 60:g} minutes, using up no attempt, until "
                f"{self.waiting_time_words()}.",
                f"{missing}, still {self.waiting_time_words()}.",
                MISSING_KEY_RETRY_SECONDS,
            )
        except vault.VaultError:
            message = "The stored authorization could not be decrypted (it was damaged, or moved to another row)."
            return Outcome(subscription, DeliveryAttempt.Outcome.FAILED, "refresh", message)

    def wait_for(self, subscription: Claim, call: str, waiting: str, gave_up: str, retry_in: float) -> Outcome:
        """The fan waits for what is not theirs to put right (the release to come out in their market, an
        identifier staff add, a vault key put back), trying again after `retry_in` seconds, using up no attempt,
        until DELIVERY_AVAILABILITY_WAIT_HOURS after their release time; then fails with "Gave up waiting: `gave_up`"
        (WAITED), keeping the fan's token for Retry failed (`settled_row`): what they waited for may come."""
        if self.past_waiting_time(subscription):
            return Outcome(subscription, DeliveryAttempt.Outcome.FAILED, call, f"{WAITED}: {after_colon(gave_up)}")
        return Outcome(subscription, WAIT, call, waiting, retry_in_seconds=retry_in)

    @staticmethod
    def waiting_time_words() -> str:
        hours = settings.DELIVERY_AVAILABILITY_WAIT_HOURS
        return f"{hours} hour{pluralize(hours)} after its release time"

    @staticmethod
    def availability_recheck_seconds() -> float:
        """Never sooner than a run waits in place: a waiting fan ends this run's part in it."""
        return max(settings.DELIVERY_AVAILABILITY_RECHECK_SECONDS, MAX_INLINE_WAIT_SECONDS + 1)

    @staticmethod
    async def gather(coroutines) -> list:
        return await asyncio.gather(*coroutines)

    async def call(self, service: Service, call, *, still_subscribed: Claim | None = None):
        """Run `call` under the rate limit and the run's concurrency. With `still_subscribed`, that fan's
        authorization is checked (`hand_over`) once the call has its permit and its slot, just before it goes out:
        a fan who cancelled or erased their data meanwhile gets TokenRevoked(WITHDRAWN), and nothing is sent."""
        permits = self.permits[service.key]
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            await permits.take()
            try:
                async with self.slots:
                    if still_subscribed is not None:
                        await self.hand_over(still_subscribed)
                    return await self.transport.run(service, call)
            except ServicePaused as exc:
                if attempt == RATE_LIMIT_RETRIES or exc.retry_after > settings.DELIVERY_MAX_RETRY_AFTER_SECONDS:
                    await permits.pause(exc.retry_after, wait=False)  # the others wait; this fan is tried later
                    self.log_pause(service, exc)
                    raise
                await permits.pause(exc.retry_after)
        raise AssertionError("unreachable")

    async def deliver_fan(self, subscription: Claim, refresh_token: str, batch: Batch) -> Outcome:
        """Deliver one fan of `batch`, and count it off the batch's unfinished fans."""
        try:
            outcome = await self.deliver(subscription, refresh_token, batch)
        finally:
            batch.unfinished -= 1
        self.finished.put((batch, outcome))  # written within DELIVERY_RECORD_SECONDS (`record_finished`)
        return outcome

    async def hand_over(self, subscription: Claim, rotated_token: str | None = None) -> None:
        """Hand the fan to the run's thread and wait for its answer (`settle_handed`): their rotated refresh token
        stored, or (None) their authorization found still there. TokenRevoked(WITHDRAWN) when it is gone."""
        answered = self.transport.loop.create_future()
        self.handed.put((subscription, rotated_token, answered))
        await answered

    async def deliver(self, subscription: Claim, refresh_token: str, batch: Batch) -> Outcome:
        """Refresh, hand a rotated refresh token to the run's thread and wait until it is stored, then act: the
        first library write goes out only once the run's thread found the fan still subscribed (`call`)."""
        service, campaign = batch.services[subscription.service], batch.campaign
        name = "refresh"
        done = subscription.done_calls.split()
        actions, sent = service.actions(campaign), []  # sent: the actions done by calls that are not `once`
        try:
            if self.fan_permits is not None:
                await self.fan_permits.take()
            access_token = refresh_token  # a service without a refresh flow stores the access token itself
            refresh = service.refresh_call(refresh_token)
            if refresh is not None:
                tokens = service.parse_tokens(await self.call(service, refresh))
                access_token = tokens.access_token
                if tokens.refresh_token:
                    await self.hand_over(subscription, tokens.refresh_token)
            market = self.market_of(subscription)
            checked = unreported = False
            calls = service.delivery_calls(access_token, campaign, market, done=tuple(done))
            reply = None
            while (call := next_call(calls, reply)) is not None:
                reply = None  # what the service's next call is built from (None: skipped)
                if call.name in done:
                    continue  # done by an earlier try: a save that went through is not sent again
                if unreported:  # the fan has more to do: what it did so far is written meanwhile
                    self.report_progress(batch, subscription, done)
                    unreported = False
                name = call.name
                reply = await self.call(service, call, still_subscribed=None if checked else subscription)
                checked = True
                if call.once:
                    done.append(call.done_as(reply) if call.done_as else call.name)
                    unreported = call.idempotent
                    if not call.idempotent:  # a second playlist, the tracks twice, if a kill lost it: stored first
                        await self.report_progress(batch, subscription, done, stored=True)
                elif call.name in actions and call.name not in done:
                    sent.append(call.name)  # Apple Music's save: done only once its check went through too
        except Exception as exc:  # noqa: BLE001 - sorted by classify(); one fan never stops the run
            outcome = self.classify(subscription, name, exc)
            outcome.done_calls = " ".join(done)
            return outcome
        # Every action done is recorded with the outcome: the fan's last call was reported with none (the undo
        # words of the privacy page name only what is recorded).
        note = service.delivery_note(campaign)
        return Outcome(subscription, DeliveryAttempt.Outcome.DELIVERED, name, note, done_calls=" ".join(done + sent))

    def report_progress(
        self, batch: Batch, subscription: Claim, done: list[str], *, stored: bool = False
    ) -> asyncio.Future | None:
        """Hand the fan's library actions done so far to the run's thread, which writes them with its next
        record (`record_progress`): a worker killed while the fan waits for its next call (for a permit, under a
        rate limit, that can be many seconds) then repeats none of them. An idempotent call (a save, a follow) is
        reported only once the fan has another call to make: a fan's last call is written with its outcome.

        With `stored`, for a call that is not idempotent (`Call.idempotent`: Spotify's playlist creation and its
        adds), the future returned is answered once the write is committed, on the run thread's next pass rather
        than its next record (a few milliseconds), and the fan awaits it before it goes on: the playlist's id is
        durable before its add goes out, and the add's entry before the fan's outcome. Only a call in flight at a
        kill (sent, its answer never seen) can be sent again."""
        written = self.transport.loop.create_future() if stored else None
        self.progressed.put((batch, subscription.pk, " ".join(done), written))
        return written

    def classify(self, subscription: Claim, call: str, exc: Exception) -> Outcome:
        if not isinstance(exc, ServiceError):
            logger.error("Unexpected %s delivering subscription %s", type(exc).__name__, subscription.pk)
            exc = ServiceError(f"Unexpected error ({type(exc).__name__}).")
        message = exc.message
        # The service's own rate limit (429), or its refusal of our app's credentials, says nothing about the fan:
        # their delivery waits for the time the pause asks, without using up an attempt, until
        # DELIVERY_AVAILABILITY_WAIT_HOURS after the release.
        paused = isinstance(exc, ServicePaused) and not self.past_waiting_time(subscription)
        if exc.revoked:
            result = DeliveryAttempt.Outcome.REVOKED
        elif exc.permanent:
            result = DeliveryAttempt.Outcome.FAILED
        elif subscription.attempts + 1 >= settings.DELIVERY_MAX_ATTEMPTS and not paused:
            result = DeliveryAttempt.Outcome.FAILED
            tries = subscription.attempts + 1
            message = f"{GAVE_UP} {tries} attempt{pluralize(tries)}: {after_colon(message)}"
        else:
            result = DeliveryAttempt.Outcome.RETRY
        retry_in = exc.retry_after if exc.retry_after is not None else backoff_seconds(subscription.attempts)
        return Outcome(subscription, result, call, message[:500], exc.status, retry_in, attempted=not paused)

    def not_yet(self, market: str) -> datetime | None:
        """A per-market campaign's release time in `market` while it is still ahead, else None: a fan there gets no
        call before it, not even a check of the release's availability."""
        fires_at = self.campaign.firing_time(market)
        if self.campaign.firing == Campaign.Firing.PER_MARKET and fires_at > timezone.now():
            return fires_at
        return None

    def market_of(self, subscription: Claim) -> str:
        """The fan's own market, where the release's availability is judged: their pre-save's, recorded at sign-up
        (fans.authorization: the service profile's country, else the country seen at sign-up); for a pre-save
        without one, the fan's country; else the campaign's default market (`Campaign.market_for`)."""
        return self.campaign.market_for(subscription.market, subscription.country)

    def past_waiting_time(self, subscription: Claim) -> bool:
        """Whether the fan's release time in their market is DELIVERY_AVAILABILITY_WAIT_HOURS past: how long a
        fan waits for the service (the release to come out there, or its rate limit to lift)."""
        waited = timezone.now() - self.campaign.firing_time(self.market_of(subscription))
        return waited >= timedelta(hours=settings.DELIVERY_AVAILABILITY_WAIT_HOURS)

    def settle_handed(self, *, timeout: float) -> None:
        """Answer the fans handed over so far (`hand_over`): seal and store the rotated refresh tokens (one
        UPDATE), check that the others' authorizations are still there (one SELECT), then let them go on; a fan
        whose authorization is gone revoked (or erased their data) while being delivered, and is not saved.

        Runs on the run's thread, which owns the database connection; waits up to `timeout` for the first."""
        try:
            handed = [self.handed.get(timeout=timeout) if timeout else self.handed.get_nowait()]
        except queue.Empty:
            return
        while len(handed) < settings.DELIVERY_BATCH_SIZE:
            try:
                handed.append(self.handed.get_nowait())
            except queue.Empty:
                break
        sealed = [(sub.pk, vault.seal(token, aad=credential_aad(sub.pk))) for sub, token, _ in handed if token]
        checked = [sub.pk for sub, token, _ in handed if not token]
        try:
            kept = bulk.retried_write(lambda: bulk.update_credentials(sealed, timezone.now()))
        except Exception as exc:  # noqa: BLE001 - the database is away for longer than a write waits
            # The old refresh tokens are dead and the new ones cannot be kept: without their saves now, these fans
            # would never get them. The saves go ahead with the access tokens in hand; the stored authorizations
            # stay the old ones (should a save fail, its retry meets invalid_grant: revoked, as it would have been).
            logger.error(
                "%s rotated refresh token%s could not be stored (%s); delivering those fans anyway",
                len(sealed), pluralize(len(sealed)), type(exc).__name__,
            )  # fmt: skip
            kept = {pk for pk, _ in sealed}
        try:
            kept |= bulk.retried_write(lambda: bulk.existing_credentials(checked))
        except Exception as exc:  # noqa: BLE001 - nobody can revoke while the database is away either
            logger.error("%s fan%s could not be checked (%s); delivering them anyway",
                         len(checked), pluralize(len(checked)), type(exc).__name__)  # fmt: skip
            kept.update(checked)
        # A credential gone meanwhile: the fan revoked (or erased their data) while being delivered.
        settled = [(future, None if sub.pk in kept else TokenRevoked(WITHDRAWN)) for sub, _, future in handed]
        self.transport.loop.call_soon_threadsafe(_settle, settled)

    def record(self, outcomes: list[Outcome]) -> None:
        """Write outcomes, a batch's fans done so far (`record_finished`) or the rest of it (`finish`): one UPDATE
        per kind, only where this run holds the lease, deleting the tokens of the fans it finished (`settled_row`),
        and their attempts, in one transaction, written again if PostgreSQL rolls it back to break a deadlock or
        the connection drops (each statement is idempotent): a fan left unrecorded would be delivered again when
        its lease expires."""
        now = timezone.now()
        settled = [settled_row(o) for o in outcomes]
        attempts = [
            bulk.Attempt(o.subscription.pk, o.call, o.result, o.http_status, o.message)
            for o in outcomes
            if o.result != WAIT
        ]

        def write() -> None:
            with transaction.atomic():  # the attempts first: a delivered one only for a fan still pending
                bulk.insert_attempts(attempts, now)
                bulk.settle_subscriptions(self.owner, settled, now)

        bulk.retried_write(write)
        for o in outcomes:
            self.report.add(o.result)

    # --- the whole run --------------------------------------------------------------------------------
    def run(self) -> RunReport:
        """Claim, prepare and start the next batch while the current one is in flight, then record it."""
        current: Batch | None = None
        while True:
            delivering = self.reload()  # the campaign and its release as staff left them
            self.plan()  # per market: fans who pre-saved since (where it is not out yet) wait for their own time
            batch = self.claim() if delivering else []
            upcoming = self.prepare(batch) if batch else None
            if current is not None:
                self.finish(current, then=upcoming)
            elif upcoming is not None:
                self.start(upcoming)
            current = None if upcoming is None or upcoming.given_back else upcoming
            if current is not None:
                continue
            if not delivering:
                break
            wait = self.seconds_until_next_due()
            if wait is None or wait > MAX_INLINE_WAIT_SECONDS:
                break
            time.sleep(max(wait, 0.05))
        finish_campaigns([self.campaign])
        return self.report


def what_is_delivered(campaign: Campaign) -> tuple:
    """What finds the campaign's release on the services and what is done for its fans (`Run.reload`)."""
    release = campaign.release
    artist = release.artist
    return (
        (release.pk, release.kind, release.upc, release.isrc, release.spotify_uri),
        (artist.pk, artist.spotify_uri),
        (campaign.save_release, campaign.follow_artist, campaign.playlist_name),
    )


def settled_row(o: Outcome) -> bulk.Settled:
    """What an outcome does to its subscription: delivered, failed and revoked are final; a retry or a wait
    stays pending until its time (a wait is not an attempt). A final outcome deletes the fan's token (storage
    limitation: it has no use after release day's work), except a failure that gave up after passing errors
    (GAVE_UP) or waited for the service past the waiting time (WAITED), which Retry failed (releases/retry.py)
    puts back in the queue with that token."""
    Result = DeliveryAttempt.Outcome
    pk, done = o.subscription.pk, o.done_calls
    if o.result == WAIT:
        return bulk.Settled(pk, Subscription.Status.PENDING, o.message, False, o.retry_in_seconds, done)
    if o.result == Result.RETRY:
        return bulk.Settled(pk, Subscription.Status.PENDING, o.message, o.attempted, o.retry_in_seconds, done)
    message = "" if o.result == Result.DELIVERED else o.message
    retryable = o.result == Result.FAILED and message.startswith((GAVE_UP, WAITED))
    # The Subscription.Status of the outcome's name.
    return bulk.Settled(pk, o.result, message, True, None, done, forget_token=not retryable)


def after_colon(reason: str) -> str:
    """A reason that goes on a sentence after a colon ("Gave up waiting: the key …"): its first word lowercased,
    unless it is a name (a service's, "TOKEN_ENCRYPTION_KEYS", "UPC") that keeps its capitals."""
    first = re.match(r"[A-Za-z]+", reason)
    if first is None or not first[0].istitle() or first[0] in SERVICE_NAMES:
        return reason
    return reason[0].lower() + reason[1:]


def next_call(calls: DeliveryCalls, reply: Reply | None) -> Call | None:
    """The service's next delivery call, built knowing `reply` (the answer to the one before); None when done."""
    try:
        return calls.send(reply)
    except StopIteration:
        return None


def _settle(settled: list[tuple[asyncio.Future, Exception | None]]) -> None:
    """On the loop: let the fans handed over go on, and those whose authorization is gone learn why."""
    for future, error in settled:
        if not future.done():
            future.set_exception(error) if error else future.set_result(None)


def backoff_seconds(attempts_so_far: int) -> float:
    """Exponential backoff with jitter: the base, plus a random share of base·2ⁿ."""
    base = settings.DELIVERY_RETRY_BASE_SECONDS
    return base + random.uniform(0, base * (2**attempts_so_far))  # noqa: S311 - jitter, not security


def deliver_campaign(
    campaign_id: int, *, fan_out: bool = True, on_schedule: bool = False, reopen: bool = False, start: bool = True
) -> RunReport:
    """Deliver a campaign's due subscriptions. With `fan_out`, first queue helper runs for other workers.

    `start`: whether this run may start a live campaign. Only the release-time schedule's run (at its time) and
    staff's (Deliver now) may; a helper or sweep run (`delivery.tasks`) only goes on with a delivery under way,
    so that one left in the queue after the campaign went back to live (Retry failed before the release time,
    the release postponed) delivers nothing early.
    `on_schedule`: called by the release-time schedule, which does not deliver a campaign that has not started
    before its release time (moved later while this task waited in the queue, or was run again by django-q2).
    `reopen`: staff asked (Deliver now, Retry failed), so a campaign whose delivery is done is delivered again
    if it has pending fans (Retry failed put them back). No other run re-opens a done campaign: a helper run, a
    sweep or a schedule that comes late would only mark it done again, and mail its release-day report twice."""
    campaign = Campaign.objects.select_related("release__artist").filter(pk=campaign_id).first()
    if campaign is None:
        return RunReport(campaign_id, note="the campaign no longer exists")
    if campaign.status == Campaign.Status.DRAFT:
        return RunReport(campaign_id, note="the campaign is a draft")
    fires_at = campaign.first_firing_time()
    if on_schedule and campaign.status == Campaign.Status.LIVE and fires_at > timezone.now():
        return RunReport(campaign_id, note=f"not yet: the release time moved to {fires_at}")
    if campaign.status == Campaign.Status.LIVE and not start:
        return RunReport(campaign_id, note="not started: a live campaign waits for its release time or Deliver now")
    pending = Subscription.objects.filter(campaign=campaign, status=Subscription.Status.PENDING)
    if campaign.status == Campaign.Status.DONE and not (reopen and pending.exists()):
        return RunReport(campaign_id, note="already delivered")
    # Done since it was read (another run finished it): only staff's run re-opens it, and the run below then
    # finds it not delivering (`Run.reload`) and claims nothing.
    # Made live again since it was read (postponed): only a run that may start it does.
    startable = ([Campaign.Status.LIVE] if start else []) + ([Campaign.Status.DONE] if reopen else [])
    Campaign.objects.filter(pk=campaign_id, status__in=startable).set_status(Campaign.Status.DELIVERING)
    campaign.status = Campaign.Status.DELIVERING
    if fan_out:
        from delivery.scheduling import queue_helpers  # here: delivery.scheduling imports the engine

        queue_helpers(campaign)
    with (
        tuned_for_delivery(),
        AsyncTransport(concurrency=settings.DELIVERY_CONCURRENCY, timeout=settings.SERVICE_TIMEOUT_SECONDS) as t,
    ):
        report = Run(campaign, t).run()
    logger.info("Delivery run: %s", report.summary())
    return report


def finish_campaigns(campaigns) -> int:
    """Mark done each delivering campaign of `campaigns` that has no pending subscription and takes no more
    pre-saves (Campaign.closed_everywhere), and queue its release-day report (once: only the update that marked
    it done does); returns how many."""
    pending = Subscription.objects.filter(campaign=OuterRef("pk"), status=Subscription.Status.PENDING)
    done = 0
    for campaign in campaigns:
        if not campaign.closed_everywhere():
            continue
        finished = Campaign.objects.filter(pk=campaign.pk, status=Campaign.Status.DELIVERING).exclude(Exists(pending))
        if finished.set_status(Campaign.Status.DONE):
            done += 1
            if settings.DELIVERY_REPORT_EMAILS:
                transaction.on_commit(functools.partial(async_task, REPORT_TASK, campaign.pk))
    return done
