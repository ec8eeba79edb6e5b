"""When delivery runs: the release-time Schedule, Deliver now, and the sweeper that resumes unfinished work.

All three run one function, `delivery.tasks.deliver_campaign`.
"""

from __future__ import annotations

from django.db import transaction
from django_q.models import Schedule
from django_q.tasks import async_task

from releases.models import Campaign

DELIVER_TASK = "delivery.tasks.deliver_campaign"
SCHEDULE_NAME_PREFIX = "deliver-campaign-"


def schedule_name(campaign_id: int) -> str:
    return f"{SCHEDULE_NAME_PREFIX}{campaign_id}"


def sync_schedule(campaign: Campaign) -> Schedule | None:
    """Create, move or remove the campaign's ONCE schedule so it fires at the release time."""
    name = schedule_name(campaign.pk)
    if campaign.status != Campaign.Status.LIVE:
        Schedule.objects.filter(name=name).delete()
        return None
    schedule, _ = Schedule.objects.update_or_create(
        name=name,
        defaults={
            "func": DELIVER_TASK,
            "args": repr((campaign.pk,)),
            "schedule_type": Schedule.ONCE,
            "repeats": 1,  # ONCE with repeats 1: fires once, then stays visible in the admin
            "next_run": campaign.first_firing_time(),
        },
    )
    return schedule


def scheduled_time(campaign: Campaign):
    schedule = Schedule.objects.filter(name=schedule_name(campaign.pk)).only("next_run").first()
    return schedule.next_run if schedule else None


def deliver_now(campaign: Campaign) -> str:
    """Queue the campaign's delivery at once; returns the django-q2 task id."""
    return async_task(DELIVER_TASK, campaign.pk, task_name=f"{schedule_name(campaign.pk)}-now")


def on_campaign_change(campaign_id: int) -> None:
    transaction.on_commit(lambda: _sync_by_id(campaign_id))


def _sync_by_id(campaign_id: int) -> None:
    campaign = Campaign.objects.select_related("release").filter(pk=campaign_id).first()
    if campaign is not None:
        sync_schedule(campaign)
