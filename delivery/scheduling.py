"""What queues the delivery engine's runs: the release-time Schedule, Deliver now, the helper runs that share a
big campaign across workers, and the minute sweeper that resumes unfinished work.

All of them run one task, `DELIVER_TASK` (the schedule through `deliver_on_schedule`, which does not start
before the release time, should the release have moved after the schedule fired). When the release time
moves, the fans' planned times are forgotten (`forget_plans`) and planned again by the next run.

A fired schedule's task can be lost: django-q2's Redis broker pops a task off its list (BLPOP) and never hands
it out again, so a cluster killed (`kill -9`, a deploy, the OOM killer) before it ran the task loses it, and the
ONCE schedule is used up. The sweeper therefore also starts the campaigns whose schedule fired but whose
delivery never started (`start_missed_deliveries`).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from delivery.engine import due_now, finish_campaigns
from fans.models import Subscription, country_without_market
from releases.models import Campaign

DELIVER_TASK = "delivery.tasks.deliver_campaign"
SCHEDULED_TASK = "delivery.tasks.deliver_on_schedule"
SCHEDULE_NAME_PREFIX = "deliver-campaign-"
# How long a fired release-time schedule (or a follow-up's) may leave its work unstarted before the sweeper
# starts it: a task normally starts within seconds of its schedule firing, but on release day it may wait in
# the queue behind busy workers. Two minutes is two sweeps: a lost task costs fans that much, and a slow queue
# is not given a second run for nothing. Counted from the first sweep that saw the work missed, not from the
# release time, so that a cluster started long after the release time (its scheduler fires the schedule and
# the sweeper at once) does not get two runs.
START_GRACE = dt.timedelta(minutes=2)
MISSED_MARK_SECONDS = 15 * 60  # a mark left by work that started meanwhile expires on its own


def schedule_name(campaign_id: int) -> str:
    return f"{SCHEDULE_NAME_PREFIX}{campaign_id}"


def schedule_once(name: str, func: str, object_id: int, at: dt.datetime) -> Schedule:
    """Create or move the named ONCE schedule that runs `func(object_id)` (a campaign's, a sign-up's) at `at`.

    The unique name prevents double scheduling; with repeats 1 it fires once, then stays visible in the admin.
    """
    schedule, _ = Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": func,
            "args": repr((object_id,)),
            "schedule_type": Schedule.ONCE,
            "repeats": 1,
            "next_run": at,
        },
    )
    return schedule


def sync_schedule(campaign: Campaign) -> Schedule | None:
    """Create, move or remove the campaign's ONCE schedule so it fires at the release time."""
    name = schedule_name(campaign.pk)
    if campaign.status != Campaign.Status.LIVE:
        Schedule.objects.filter(name=name).delete()
        return None
    return schedule_once(name, SCHEDULED_TASK, campaign.pk, campaign.first_firing_time())


def scheduled_time(campaign: Campaign):
    schedule = Schedule.objects.filter(name=schedule_name(campaign.pk)).only("next_run").first()
    return schedule.next_run if schedule else None


def deliver_now(campaign: Campaign) -> str:
    """Queue the campaign's delivery at once, as staff asked (Deliver now, Retry failed): the one run that may
    re-open a campaign whose delivery is done, for its pending fans. Returns the django-q2 task id."""
    return async_task(DELIVER_TASK, campaign.pk, reopen=True, task_name=f"{schedule_name(campaign.pk)}-now")


def due_counts(campaign: Campaign) -> tuple[int, int]:
    """How many of the campaign's pending fans a run delivers now (`engine.due_now`, no lease holds them), and,
    per market, how many wait for their market's release time: a per-market campaign's new fans are planned
    (`engine.Run.plan`) at their market's time, those not planned yet counted by it here."""
    now = timezone.now()
    pending = Subscription.objects.filter(campaign=campaign, status=Subscription.Status.PENDING)
    due = pending.filter(due_now())
    if campaign.firing != Campaign.Firing.PER_MARKET:
        return due.count(), 0
    due_planned = due.filter(next_attempt_at__isnull=False).count()
    later = pending.filter(attempts=0, next_attempt_at__gt=now)
    unplanned = due.filter(next_attempt_at__isnull=True, attempts=0).annotate(country=country_without_market())
    due_unplanned = later_unplanned = 0
    for market, country, count in unplanned.values_list("market", "country").annotate(n=Count("pk")).order_by():
        if campaign.firing_time(campaign.market_for(market, country)) <= now:
            due_unplanned += count
        else:
            later_unplanned += count
    return due_planned + due_unplanned, later.count() + later_unplanned


DELIVER_NOW_REPEAT_SECONDS = 10


def deliver_now_once(campaign: Campaign) -> bool:
    """Staff's Deliver now: `deliver_now`, unless one for this campaign was queued within
    DELIVER_NOW_REPEAT_SECONDS (a double-clicked button, a resent form, two tabs): the run queued already
    delivers every pending fan, and a second would only run beside it. Returns whether it queued one."""
    if not cache.add(f"delivery:deliver-now:{campaign.pk}", True, DELIVER_NOW_REPEAT_SECONDS):
        return False
    deliver_now(campaign)
    return True


def queue_helpers(campaign: Campaign) -> int:
    """Split a big campaign across workers: queue up to DELIVERY_PARALLEL_RUNS - 1 more runs of it."""
    due = Subscription.objects.filter(due_now(), campaign=campaign)[: settings.DELIVERY_BATCH_SIZE * 2].count()
    helpers = settings.DELIVERY_PARALLEL_RUNS - 1 if due > settings.DELIVERY_BATCH_SIZE else 0
    for _ in range(helpers):
        async_task(DELIVER_TASK, campaign.pk, False)
    return helpers


# How long a run the sweeper queued for a campaign counts as coming: about one sweep's interval (the sweeper runs
# every minute), so that sweeps that waited together in the queue behind busy workers, or the next sweep while
# the run waits for a worker, do not queue it twice; it then holds leases (`alive_runs`) or was lost with its
# cluster, and the next sweep starts another.
RESUME_THROTTLE_SECONDS = 50


def alive_runs(campaign_id: int) -> int:
    """How many runs are delivering the campaign now: the distinct runs (`leased_by`, one per `engine.Run`) that
    hold an unexpired lease on one of its pending subscriptions."""
    held = Subscription.objects.filter(
        campaign_id=campaign_id,
        status=Subscription.Status.PENDING,
        leased_by__isnull=False,
        lease_expires_at__gte=timezone.now(),
    )
    return held.values("leased_by").distinct().count()


def runs_wanted(campaign_id: int, due: int) -> int:
    """How many runs the sweeper queues for a campaign with `due` fans no lease holds: up to
    DELIVERY_PARALLEL_RUNS with the runs alive now, one per batch of due fans, none while it queued some within
    RESUME_THROTTLE_SECONDS."""
    free = settings.DELIVERY_PARALLEL_RUNS - alive_runs(campaign_id)
    wanted = min(free, -(-due // settings.DELIVERY_BATCH_SIZE))
    if wanted <= 0 or not cache.add(f"delivery:resumed:{campaign_id}", True, RESUME_THROTTLE_SECONDS):
        return 0
    return wanted


def resume_deliveries() -> str:
    """The minute sweeper (the `delivery-sweeper` Schedule, stored by migration 0002, runs it through
    `delivery.tasks.resume_deliveries`).

    Start the live campaigns whose release-time task was lost (`start_missed_deliveries`); for every delivering
    campaign with due work that no live lease holds, queue runs up to DELIVERY_PARALLEL_RUNS with those alive
    (`runs_wanted`: under a rate limit due fans wait unleased while runs are alive, and more runs only meet more
    429s and hold workers small tasks wait for); mark done the ones with nothing left to do (a per-market
    campaign, once the release is out in its last market)."""
    started = start_missed_deliveries()
    due = Subscription.objects.filter(due_now(), campaign__status=Campaign.Status.DELIVERING)
    cap = settings.DELIVERY_BATCH_SIZE * settings.DELIVERY_PARALLEL_RUNS
    resumed = 0
    for campaign_id in sorted(set(due.values_list("campaign_id", flat=True).distinct())):
        runs = runs_wanted(campaign_id, due.filter(campaign_id=campaign_id)[:cap].count())
        for _ in range(runs):
            async_task(DELIVER_TASK, campaign_id)
        resumed += 1 if runs else 0
    done = finish_campaigns(Campaign.objects.filter(status=Campaign.Status.DELIVERING).select_related("release"))
    return (
        f"resumed {resumed} campaign(s)"
        + (f", started {started} missed" if started else "")
        + (f", {done} done" if done else "")
    )


def start_missed(missed: list[Campaign], func: str, mark_prefix: str, now: dt.datetime) -> int:
    """Queue `func(campaign id)` for each campaign of `missed` (work whose task was lost) that was first seen
    missed START_GRACE ago or more and that no sweep queued within a lease's time; returns how many were queued."""
    started = 0
    for campaign in missed:
        mark = f"{mark_prefix}:{campaign.pk}"
        if overdue(mark, now) and start_once(mark, func, campaign.pk, now):
            started += 1
    return started


def overdue(mark: str, now: dt.datetime) -> bool:
    """Whether the work named `mark` (seen missed by this sweep) was first seen missed START_GRACE ago or more.
    The first sweep that sees it leaves the mark in the shared cache; a later one starts the work."""
    cache.add(mark, now.timestamp(), MISSED_MARK_SECONDS)
    seen = cache.get(mark, now.timestamp())
    return now.timestamp() - seen >= START_GRACE.total_seconds()


def start_once(mark: str, func: str, object_id: int, now: dt.datetime) -> bool:
    """Queue `func(object_id)` for missed work unless a sweep queued it within a lease's time (sweeps that waited
    together in the queue run at once); the mark is dropped so that, lost again, it waits a grace again."""
    if not cache.add(f"{mark}:started", True, settings.DELIVERY_LEASE_SECONDS):
        return False
    cache.delete(mark)
    async_task(func, object_id, task_name=f"{mark}-{int(now.timestamp())}")
    return True


def missed_deliveries(now: dt.datetime) -> list[Campaign]:
    """Live campaigns whose release-time schedule fired (or is gone) but whose delivery never started: the first
    run makes a campaign `delivering`, so a live one past its first firing time has had none."""
    armed = Schedule.objects.filter(name__startswith=SCHEDULE_NAME_PREFIX).exclude(repeats=0)
    armed_names = set(armed.values_list("name", flat=True))
    # The first firing time is at most a day before the release date (UTC+14 is the earliest market).
    live = Campaign.objects.filter(
        status=Campaign.Status.LIVE, release__release_date__lte=now.date() + dt.timedelta(days=1)
    ).select_related("release")
    return [
        campaign
        for campaign in live
        if campaign.first_firing_time() <= now and schedule_name(campaign.pk) not in armed_names
    ]


def start_missed_deliveries(now: dt.datetime | None = None) -> int:
    """Start, through the schedule's own task, each delivery whose release-time task was lost (see the module's
    docstring) once it has been missed for START_GRACE; returns how many were queued. A schedule still armed is
    left to fire (its cluster's scheduler may be catching up)."""
    now = now or timezone.now()
    return start_missed(missed_deliveries(now), SCHEDULED_TASK, "delivery:missed", now)


def forget_plans(campaign_ids: list[int]) -> int:
    """After a release's time or a campaign's firing changed: the subscriptions no run has tried yet nor holds
    lose the times planned for them (`engine.Run.plan`), so that the next run plans them by the new times (for
    a campaign being delivered, the minute sweeper starts one). A release postponed after its first market
    fired is then not delivered elsewhere at the old times. Returns how many lost their time."""
    now = timezone.now()
    unheld = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    planned = Subscription.objects.filter(
        unheld,
        campaign_id__in=campaign_ids,
        status=Subscription.Status.PENDING,
        attempts=0,
        next_attempt_at__isnull=False,
    )
    return planned.update(next_attempt_at=None, updated_at=now)
