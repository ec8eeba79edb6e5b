"""How far a running delivery has got: for the live progress bar on the campaign page (htmx, every ~1.5 s).

The rate is measured over the last RATE_SPAN to 2 × RATE_SPAN seconds, without storing anything: each partial
carries two readings (count and time), a base and a later one, and the next request sends them back; the rate is
from the base to now, and once the later reading is RATE_SPAN old it becomes the base. Runs write outcomes in
chunks (every DELIVERY_RECORD_SECONDS, and a batch's last fans together), so a rate measured between two
refreshes 1.5 s apart swung between a burst and nothing ("8.2/s", then "0.0/s · estimating…").
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone

from delivery.ratelimit import limiter_for
from delivery.scheduling import scheduled_time
from releases.analytics import firing_times, kpis
from releases.models import AuditEntry, Campaign

# After Deliver now or Retry failed, the page follows the delivery even before a worker has picked it up.
JUST_STARTED = dt.timedelta(minutes=2)
# A page opened before the release time polls slowly from this long before its schedule fires, and on while the
# run is due but not started, so that it notices the scheduled run (`Progress.scheduled_soon`).
SCHEDULED_SOON = dt.timedelta(minutes=5)
WAITING_SECONDS = 15  # how long the count of fans waiting for their market is reused
RATE_SPAN = 30.0  # seconds: the rate is measured over RATE_SPAN to 2 × RATE_SPAN (see the module's docstring)
RATE_MAX_AGE = 600.0  # a reading older than this (a page left open) starts the measure again


@dataclass(frozen=True)
class Reading:
    """What a refresh saw: settled subscriptions (`done`) at `at` (epoch seconds)."""

    done: int
    at: float


@dataclass(frozen=True)
class Pause:
    """A service every worker is waiting for: it asked us to wait (429), or refused our app's credentials."""

    label: str
    until: dt.datetime


@dataclass(frozen=True)
class Progress:
    running: bool
    started: bool  # a delivery has run or runs: before, fans who cancelled are no delivery's outcome
    total: int
    delivered: int
    failed: int
    revoked: int
    pending: int
    measured_at: float  # epoch seconds
    rate: float | None  # subscriptions settled per second since `base` was read
    base: Reading | None = None  # the readings the next refresh sends back (see the module's docstring)
    later: Reading | None = None
    pauses: tuple[Pause, ...] = ()  # while running: the campaign's services every worker is waiting for
    # Per market, while running: pending fans whose market hasn't reached the release time (no work yet), and
    # the next market to reach it with its time.
    waiting: int = 0
    next_market: tuple[str, dt.datetime] | None = None
    # Not running, but live with fans pending and its schedule firing within SCHEDULED_SOON or due: no one pressed
    # Deliver now, so the page polls slowly until the scheduled run starts (then fast, as `running`).
    scheduled_soon: bool = False
    # Until a delivery has started: when its schedule fires (None: not scheduled, `draft` or not), for the line
    # "Delivery scheduled: …". Once a run is under way or done (Deliver now, or the schedule fired) the line would
    # read as still to come, so the partial, refreshed with the run, leaves it out.
    scheduled_at: dt.datetime | None = None
    draft: bool = False

    @property
    def done(self) -> int:
        return self.total - self.pending

    @property
    def finished(self) -> bool:
        """A delivery ran and has settled every fan: the page says so with the outcome, and stops polling."""
        return self.started and not self.running and not self.pending

    @property
    def failures(self) -> int:
        return self.failed + self.revoked

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100

    @property
    def due(self) -> int:
        """The pending fans there is work for now: the estimate counts only them."""
        return max(self.pending - self.waiting, 0)  # two readings: a pre-save may come between them

    @property
    def seconds_left(self) -> float | None:
        if not self.due:
            return 0.0
        return self.due / self.rate if self.rate else None

    @property
    def time_left(self) -> str:
        if not self.due and self.waiting:
            return "none due now"
        seconds = self.seconds_left
        if seconds is None:
            return "estimating…"
        return str(dt.timedelta(seconds=round(seconds)))


def progress(campaign: Campaign, base: Reading | None = None, later: Reading | None = None) -> Progress:
    counts = kpis(campaign)
    now = time.time()
    total = sum(counts.values())
    current = Reading(total - counts["pending"], now)
    base, later = plausible(base, total, now), plausible(later, total, now)
    rate = max(current.done - base.done, 0) / (now - base.at) if base else None
    if base is None:
        base = later = current
    elif later is None:
        later = current
    elif now - later.at >= RATE_SPAN:
        base, later = later, current
    running = campaign.status == Campaign.Status.DELIVERING or (counts["pending"] > 0 and just_started(campaign))
    scheduled_soon = (
        not running
        and campaign.status == Campaign.Status.LIVE
        and counts["pending"] > 0
        and campaign.first_firing_time() <= timezone.now() + SCHEDULED_SOON
    )
    started = running or campaign.status == Campaign.Status.DONE
    return Progress(
        running=running,
        started=started,
        total=total,
        delivered=counts["delivered"],
        failed=counts["failed"],
        revoked=counts["revoked"],
        pending=counts["pending"],
        measured_at=now,
        rate=rate,
        base=base,
        later=later,
        pauses=pauses(campaign) if running else (),
        scheduled_soon=scheduled_soon,
        scheduled_at=None if started else scheduled_time(campaign),
        draft=campaign.status == Campaign.Status.DRAFT,
        **(waiting_for_markets(campaign) if running and counts["pending"] else {}),
    )


def reading_in(params, done_key: str, at_key: str) -> Reading | None:
    """The reading a refresh sent back in its query string (`params`), or None if it holds none."""
    try:
        return Reading(int(params.get(done_key, "")), float(params.get(at_key, "")))
    except ValueError:
        return None


def plausible(reading: Reading | None, total: int, now: float) -> Reading | None:
    """A reading the page sent back, if it could be one: the page's query string is anyone's to edit."""
    if reading is None or not 0 <= reading.done <= total or not 0 < now - reading.at < RATE_MAX_AGE:
        return None
    return reading


def waiting_for_markets(campaign: Campaign) -> dict:
    """A per-market campaign's pending fans whose market hasn't reached the release time, and the next market to,
    until the release is out in the last market. One grouped count of the pending fans, kept WAITING_SECONDS
    (never past the next market's time): the partial refreshes every 1.5 s, and these change only as markets
    fire or fans pre-save."""
    now = timezone.now()
    if campaign.firing != Campaign.Firing.PER_MARKET or campaign.last_firing_time() <= now:
        return {}
    key = f"progress:waiting:{campaign.pk}"
    found = cache.get(key)
    if found is None or (found and found["next_market"][1] <= now):
        later = [(market, at, count) for market, at, count in firing_times(campaign) if at > now]
        found = {"waiting": sum(count for *_, count in later), "next_market": later[0][:2]} if later else {}
        next_time = later[0][1] if later else campaign.last_firing_time()
        cache.set(key, found, max(1, min(WAITING_SECONDS, (next_time - now).total_seconds())))
    return found


def pauses(campaign: Campaign) -> tuple[Pause, ...]:
    """The campaign's services paused for every worker (one read of the limiter's store each), longest first."""
    found = []
    for service in campaign.offered_services():
        until = limiter_for(service.key).paused_until()
        if until is not None and until > time.time() + 1:
            found.append(Pause(service.label, dt.datetime.fromtimestamp(until, dt.UTC)))
    return tuple(sorted(found, key=lambda pause: pause.until, reverse=True))


def just_started(campaign: Campaign) -> bool:
    return AuditEntry.objects.filter(
        campaign=campaign,
        action__in=[AuditEntry.Action.DELIVER_NOW, AuditEntry.Action.RETRY_FAILED],
        at__gte=timezone.now() - JUST_STARTED,
    ).exists()
