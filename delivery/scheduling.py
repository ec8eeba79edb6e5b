"""What queues the delivery engine's runs: the release-time Schedule, Deliver now, the helper runs that share a
big campaign across workers, and the minute sweeper that resumes unfinished work.

All of them run one task, `DELIVER_TASK` (the schedule through `deliver_on_schedule`, which does not start
before the release time, should the release have moved after the schedule fired). When the release time
moves, the fans' planned times are forgotten (`forget_plans`) and planned again by the next run.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from delivery.engine import due_now, finish_campaigns
from fans.models import Subscription
from releases.models import Campaign

DELIVER_TASK = "delivery.tasks.deliver_campaign"
SCHEDULED_TASK = "delivery.tasks.deliver_on_schedule"
SCHEDULE_NAME_PREFIX = "deliver-campaign-"


def schedule_name(campaign_id: int) -> str:
    return f"{SCHEDULE_NAME_PREFIX}{campaign_id}"


def schedule_once(name: str, func: str, object_id: int, at: datetime) -> Schedule:
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
    """Queue the campaign's delivery at once; returns the django-q2 task id."""
    return async_task(DELIVER_TASK, campaign.pk, task_name=f"{schedule_name(campaign.pk)}-now")


def queue_helpers(campaign: Campaign) -> int:
    """Split a big campaign across workers: queue up to DELIVERY_PARALLEL_RUNS - 1 more runs of it."""
    due = Subscription.objects.filter(due_now(), campaign=campaign)[: settings.DELIVERY_BATCH_SIZE * 2].count()
    helpers = settings.DELIVERY_PARALLEL_RUNS - 1 if due > settings.DELIVERY_BATCH_SIZE else 0
    for _ in range(helpers):
        async_task(DELIVER_TASK, campaign.pk, False)
    return helpers


def resume_deliveries() -> str:
    """The minute sweeper (the `delivery-sweeper` Schedule, stored by migration 0002, runs it through
    `delivery.tasks.resume_deliveries`).

    Queue a run for every delivering campaign with due work that no live lease holds; mark done the ones with
    nothing left to do (a per-market campaign, once the release is out in its last market)."""
    due = Subscription.objects.filter(due_now(), campaign__status=Campaign.Status.DELIVERING)
    resumed = 0
    for campaign_id in sorted(set(due.values_list("campaign_id", flat=True).distinct())):
        # One run queued per campaign in a lease's time: sweeps that waited in the queue behind busy workers run
        # together, and each would queue another run.
        if cache.add(f"delivery:resumed:{campaign_id}", True, settings.DELIVERY_LEASE_SECONDS):
            async_task(DELIVER_TASK, campaign_id)
            resumed += 1
    done = finish_campaigns(Campaign.objects.filter(status=Campaign.Status.DELIVERING).select_related("release"))
    return f"resumed {resumed} campaign(s)" + (f", {done} done" if done else "")


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
