"""When delivery runs: the release-time Schedule, Deliver now, and the sweeper that resumes unfinished work.

All three run one function, `delivery.tasks.deliver_campaign` (the schedule through `deliver_on_schedule`,
which does not start before the release time, should the release have moved after the schedule fired). When
the release time moves, the fans' planned times are forgotten (`forget_plans`) and planned again by the next run.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

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
