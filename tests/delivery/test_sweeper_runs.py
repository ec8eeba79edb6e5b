"""The minute sweeper queues a delivering campaign's runs up to DELIVERY_PARALLEL_RUNS with the runs alive now
(those holding unexpired leases on its fans), not one more every lease: under a rate limit due fans wait unleased
while runs are alive. After a killed cluster it queues a run at the next sweep, not a lease later."""

import datetime as dt
import uuid

import pytest
import time_machine
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from delivery import scheduling, tasks
from fans.models import Subscription
from releases.models import Campaign
from tests.conftest import make_campaign, wait_for
from tests.delivery.test_release_day import many_fans

pytestmark = pytest.mark.django_db(transaction=True)
THROTTLE = dt.timedelta(seconds=scheduling.RESUME_THROTTLE_SECONDS)
NEXT_SWEEP = THROTTLE + dt.timedelta(seconds=1)


def delivering(sandbox, count: int) -> tuple[Campaign, list[str]]:
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DELIVERING)
    Schedule.objects.filter(name=scheduling.schedule_name(campaign.pk)).delete()  # only the sweeper starts runs
    return campaign, many_fans(campaign, sandbox, "fan", count)


def sweep(at: dt.datetime | None = None) -> str:
    with time_machine.travel(at or timezone.now(), tick=False):
        return tasks.resume_deliveries()


def test_with_the_campaigns_runs_alive_the_sweeper_queues_none_beyond_the_limit(sandbox, start_worker, settings):
    settings.DELIVERY_PARALLEL_RUNS = 2
    settings.DELIVERY_BATCH_SIZE = 2
    campaign, _ = delivering(sandbox, 24)
    sandbox.faults(latency_ms=400)  # slow: the runs are alive, and most fans wait unleased
    env = {"DELIVERY_PARALLEL_RUNS": "2", "DELIVERY_BATCH_SIZE": "2", "DELIVERY_CONCURRENCY": "1", "Q_WORKERS": "3"}
    start_worker(**env)
    scheduling.deliver_now(campaign)  # it queues its helper: two runs in all

    def runs_alive() -> bool:
        return scheduling.alive_runs(campaign.pk) == 2

    wait_for(runs_alive, timeout=60, message="both runs holding leases")
    assert Subscription.objects.filter(campaign=campaign, status="pending", lease_expires_at__isnull=True).count()
    assert sweep() == "resumed 0 campaign(s)", "two runs alive: none more"
    assert sweep(timezone.now() + THROTTLE * 2) == "resumed 0 campaign(s)", "nor a lease's time later"
    assert OrmQ.objects.count() == 2, "the two runs, taken by the cluster (the ORM broker keeps them till done)"
    wait_for(lambda: not Subscription.objects.filter(campaign=campaign, status="pending").exists(), timeout=120)


def test_after_a_killed_cluster_the_next_sweep_queues_a_run_for_the_unleased_fans(sandbox, start_worker, settings):
    settings.DELIVERY_PARALLEL_RUNS = 2
    settings.DELIVERY_BATCH_SIZE = 5
    campaign, users = delivering(sandbox, 20)
    assert sweep() == "resumed 1 campaign(s)"
    assert OrmQ.objects.count() == 2, "four batches due, no run alive: the limit's two"
    assert sweep() == "resumed 0 campaign(s)", "queued, not started yet: not doubled"
    # The cluster took both runs and was killed (kill -9) as one had claimed its first batch: on django-q2's
    # Redis broker the tasks are gone; the batch stays leased to the dead run until its lease runs out.
    OrmQ.objects.all().delete()
    dead = Subscription.objects.filter(campaign=campaign).order_by("pk")[:5].values_list("pk", flat=True)
    held = timezone.now() + dt.timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    Subscription.objects.filter(pk__in=list(dead)).update(leased_by=uuid.uuid4(), lease_expires_at=held)

    assert sweep(timezone.now() + NEXT_SWEEP) == "resumed 1 campaign(s)", "a sweep later, not a lease later"
    assert OrmQ.objects.count() == 1, "the dead run still counts until its lease runs out: one more"
    start_worker(DELIVERY_PARALLEL_RUNS="1", DELIVERY_BATCH_SIZE="5")

    def unleased_delivered() -> bool:
        return Subscription.objects.filter(campaign=campaign, status="delivered").count() == len(users) - 5

    wait_for(unleased_delivered, timeout=60, message="the fans no lease held delivered")
