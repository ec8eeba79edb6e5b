"""The minute sweeper's heartbeat: a django-q2 cluster can be stuck while its status says it runs (after one of
its worker processes was killed), and the console says so when the sweeper has not run for minutes."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from delivery import tasks, workers
from tests.conftest import make_campaign, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
STUCK, NO_WORKER = "hasn't done its minute check since", "No worker is running"


@pytest.fixture(autouse=True)
def no_heartbeat():
    """The database cache's table outlives a transactional test's flush: start with no sweep recorded."""
    cache.delete(workers.HEARTBEAT_KEY)


def sweeper_schedule() -> None:
    importlib.import_module("delivery.migrations.0002_sweeper_schedule").create_sweeper(apps, schema_editor=None)


def last_swept(at: dt.datetime) -> None:
    cache.set(workers.HEARTBEAT_KEY, at.timestamp(), None)


def test_a_running_cluster_whose_sweeper_stopped_is_shown_as_stuck(staff_client, start_worker):
    campaign = make_campaign()
    pages = [reverse("admin:releases_campaign_change", args=[campaign.pk]), reverse("admin:index")]

    def texts() -> list[str]:
        return [staff_client.get(url).content.decode() for url in pages]

    sweeper_schedule()
    start_worker()
    wait_for(workers.last_sweep, timeout=60, message="the real sweeper's first heartbeat")
    Schedule.objects.filter(name="delivery-sweeper").update(next_run=timezone.now() + dt.timedelta(hours=1))
    wait_for(lambda: not any(NO_WORKER in text for text in texts()), message="the cluster reporting in")
    assert not any(STUCK in text for text in texts()), "a fresh heartbeat: no warning"

    last_swept(timezone.now() - dt.timedelta(minutes=10))  # as a stuck cluster leaves it
    stale = (timezone.now() - dt.timedelta(minutes=10)).astimezone(dt.UTC)
    for text in texts():
        assert f"{STUCK} {stale:%H:%M} UTC" in text or f"{STUCK} {stale:%Y-%m-%d %H:%M} UTC" in text
        assert "manage.py qcluster" in text and NO_WORKER not in text


def test_the_heartbeat_is_what_the_sweeper_leaves(db):
    assert workers.last_sweep() is None
    tasks.resume_deliveries()
    assert abs(workers.last_sweep() - timezone.now()) < dt.timedelta(seconds=5)


def test_a_heartbeat_under_three_minutes_old_is_no_warning_and_none_with_no_cluster(staff_client):
    campaign = make_campaign()
    page = reverse("admin:releases_campaign_change", args=[campaign.pk])
    last_swept(timezone.now() - dt.timedelta(minutes=10))

    text = staff_client.get(page).content.decode()
    assert NO_WORKER in text and STUCK not in text, "no cluster at all: the console says that instead"

    class Running:  # a cluster's status as django-q2's Stat reads it
        status, tob = "Idle", timezone.now() - dt.timedelta(hours=1)

    last_swept(timezone.now() - workers.STUCK_AFTER + dt.timedelta(seconds=30))
    assert workers.stuck_since([Running()]) is None
    last_swept(timezone.now() - workers.STUCK_AFTER - dt.timedelta(seconds=1))
    assert workers.stuck_since([Running()]) is not None
    cache.delete(workers.HEARTBEAT_KEY)  # never swept: counted from the cluster's start
    assert workers.stuck_since([Running()]) == Running.tob


def test_no_warning_while_a_long_delivery_holds_the_workers_the_sweeper_waits_behind(
    staff_client, sandbox, start_worker
):
    """On release day the sweeper's task waits behind runs that hold every worker: its heartbeat grows old
    while delivery demonstrably goes on (its runs take and renew leases), and that is no stuck cluster."""
    from delivery import scheduling
    from fans.models import Subscription
    from tests.delivery.test_release_day import many_fans

    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    many_fans(campaign, sandbox, "long", 30)
    sandbox.faults(latency_ms=500)
    page = reverse("admin:releases_campaign_change", args=[campaign.pk])
    start_worker(DELIVERY_CONCURRENCY="1", DELIVERY_BATCH_SIZE="3", Q_WORKERS="1")
    scheduling.deliver_now(campaign)
    wait_for(lambda: Subscription.objects.filter(leased_by__isnull=False).exists(), timeout=60, message="the run")
    wait_for(lambda: NO_WORKER not in staff_client.get(page).content.decode(), message="the cluster reporting in")
    last_swept(timezone.now() - dt.timedelta(minutes=10))  # its one worker busy: the sweeper has not run

    assert STUCK not in staff_client.get(page).content.decode(), "delivering: the workers are not stuck"
    Subscription.objects.update(status="delivered", leased_by=None, lease_expires_at=None)  # the run is over
    wait_for(lambda: STUCK in staff_client.get(page).content.decode(), message="the warning, once nothing works")
