"""The minute sweeper starts release-day work whose task was lost: a release-time delivery or a release-day
email whose ONCE schedule fired, but whose task a killed cluster took with it (django-q2's Redis broker hands a
task out once, and never again). Real django-q2 workers deliver and send what the sweeper queued."""

import datetime as dt
import time
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from delivery import scheduling, tasks
from fans import release_email
from fans.models import ReleaseEmail, Subscription
from releases.models import Campaign
from tests.conftest import make_campaign, make_subscription, wait_for
from tests.fans.test_release_email import pre_save, sign_up

pytestmark = pytest.mark.django_db(transaction=True)
GRACE = scheduling.START_GRACE


def fired_and_lost(name: str) -> None:
    """The schedule fired (ONCE: repeats 0) and its task went with the cluster."""
    assert Schedule.objects.filter(name=name).update(repeats=0) == 1


def sweep(at: dt.datetime | None = None) -> str:
    """One run of the minute sweeper's task, now or at `at`."""
    if at is None:
        return tasks.resume_deliveries()
    with time_machine.travel(at, tick=False):
        return tasks.resume_deliveries()


def queued() -> int:
    return OrmQ.objects.count()


def test_a_live_campaign_whose_release_time_task_was_lost_is_delivered_by_the_sweeper(sandbox, start_worker):
    campaign = make_campaign(release_in=-dt.timedelta(minutes=5))
    fired_and_lost(scheduling.schedule_name(campaign.pk))
    subscription = make_subscription(campaign, sandbox, "alice")

    assert sweep(timezone.now() - GRACE) == "resumed 0 campaign(s)", "the first sweep to see it waits a grace"
    assert sweep() == "resumed 0 campaign(s), started 1 missed"
    assert sweep() == "resumed 0 campaign(s)", "sweeps never queue two runs"
    assert queued() == 1
    start_worker()

    wait_for(lambda: Campaign.objects.get(pk=campaign.pk).status == "done", timeout=60, message="the delivery")
    assert Subscription.objects.get(pk=subscription.pk).status == "delivered"
    assert len(sandbox.writes("alice")) == 1
    assert sweep() == "resumed 0 campaign(s)"


def test_a_release_time_task_a_killed_cluster_took_off_redis_is_lost_and_the_sweeper_delivers_it(
    sandbox, start_worker, monkeypatch
):
    """The reviewer's release day: the schedule fires, django-q2's Redis broker hands the task to the cluster
    (BLPOP: off the list), `kill -9` takes it away, and a restarted cluster never sees it again."""
    import redis
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.tasks import async_task

    redis_url = "redis://127.0.0.1:6379/13"
    queue = redis.Redis.from_url(redis_url)
    queue.flushdb()
    monkeypatch.setattr(Conf, "ORM", None)  # this process queues on Redis too, as production's do
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    campaign = make_campaign(release_in=dt.timedelta(seconds=5))
    make_subscription(campaign, sandbox, "alice")
    # The release-time schedule alone: the cluster holds one task in memory beside its busy worker (queue_limit).
    Schedule.objects.exclude(name=scheduling.schedule_name(campaign.pk)).delete()
    async_task("time.sleep", 300)  # the cluster's one worker is busy: the next task waits in the cluster's memory
    env = {"REDIS_URL": redis_url, "Q_WORKERS": "1"}
    cluster = start_worker(**env)
    wait_for(
        lambda: (
            Schedule.objects.filter(name=scheduling.schedule_name(campaign.pk), repeats=0).exists()
            and get_broker().queue_size() == 0
        ),
        timeout=90,
        message="the release-time schedule firing and the cluster taking its task off Redis",
    )
    cluster.kill()  # kill -9: a deploy, the OOM killer
    start_worker(**env)
    time.sleep(3)
    assert Campaign.objects.get(pk=campaign.pk).status == "live" and not sandbox.writes("alice"), "lost"

    assert sweep() == "resumed 0 campaign(s)"
    assert sweep(timezone.now() + GRACE) == "resumed 0 campaign(s), started 1 missed"  # Redis: no queue time

    wait_for(lambda: Campaign.objects.get(pk=campaign.pk).status == "done", timeout=60, message="the delivery")
    assert len(sandbox.writes("alice")) == 1


def test_a_lost_start_waits_the_grace_from_the_first_sweep_that_saw_it(db):
    campaign = make_campaign(release_in=-dt.timedelta(hours=3))  # a cluster started long after the release time
    fired_and_lost(scheduling.schedule_name(campaign.pk))

    assert scheduling.start_missed_deliveries() == 0, "its schedule's own task may be about to start"
    assert scheduling.start_missed_deliveries(timezone.now() + GRACE / 2) == 0
    assert scheduling.start_missed_deliveries(timezone.now() + GRACE) == 1
    assert queued() == 1


def test_campaigns_whose_schedule_is_still_to_fire_or_that_started_are_not_touched(db):
    coming = make_campaign(slug="coming", release_in=dt.timedelta(minutes=1))
    fired_and_lost(scheduling.schedule_name(coming.pk))  # even so: its time has not come
    late = make_campaign(slug="late", release_in=-dt.timedelta(minutes=10))  # armed: the scheduler fires it
    # A run made it delivering (its schedule is gone): the sweeper's older part resumes it if need be.
    started = make_campaign(slug="started", release_in=-dt.timedelta(minutes=10), status="delivering")
    draft = make_campaign(slug="draft", release_in=-dt.timedelta(minutes=10), status="draft")

    assert scheduling.start_missed_deliveries(timezone.now() - GRACE * 2) == 0
    assert scheduling.start_missed_deliveries() == 0
    assert queued() == 0
    assert set(Campaign.objects.values_list("slug", "status")) == {
        (coming.slug, "live"),
        (late.slug, "live"),
        (started.slug, "delivering"),
        (draft.slug, "draft"),
    }


def email_schedule_fired_and_lost(campaign: Campaign) -> None:
    name = release_email.schedule_name(campaign.pk)
    scheduling.schedule_once(name, release_email.SEND_TASK, campaign.pk, campaign.first_firing_time())
    fired_and_lost(name)


def test_a_release_day_email_run_lost_is_started_and_mails_each_address_once(start_worker, tmp_path: Path):
    campaign = make_campaign(release_in=-dt.timedelta(minutes=5), status="done")  # delivered by Deliver now
    email_schedule_fired_and_lost(campaign)
    pre_save(campaign, "opted", "opted@fan.test", opt_in=True)
    sign_up(campaign, "inbox@fan.test")
    sign_up(campaign, "earlier@fan.test")
    # A run that died mid-way: it had planned one address and sent it.
    ReleaseEmail.objects.create(campaign=campaign, email="earlier@fan.test", sent_at=timezone.now())

    assert sweep(timezone.now() - GRACE) == "resumed 0 campaign(s)"
    assert sweep() == "resumed 0 campaign(s), started 1 missed release-day email run(s)"
    assert sweep() == "resumed 0 campaign(s)", "sweeps never queue two runs"
    start_worker(EMAIL_URL=f"filemail://{tmp_path}")

    wait_for(lambda: ReleaseEmail.objects.filter(sent_at__isnull=False).count() == 3, timeout=60, message="the emails")
    written = "".join(path.read_text() for path in tmp_path.iterdir())
    assert written.count("To: opted@fan.test") == 1 and written.count("To: inbox@fan.test") == 1
    assert "earlier@fan.test" not in written, "sent before the run was lost: not again"
    assert sweep(timezone.now() + GRACE) == "resumed 0 campaign(s)"
    assert sweep(timezone.now() + GRACE * 2) == "resumed 0 campaign(s)", "nothing left to send: nothing started"


def test_release_day_emails_with_a_run_to_come_or_none_due_are_not_started(db):
    sent = make_campaign(slug="sent", release_in=-dt.timedelta(minutes=10), status="done")
    email_schedule_fired_and_lost(sent)
    sign_up(sent, "got-it@fan.test")
    ReleaseEmail.objects.create(campaign=sent, email="got-it@fan.test", sent_at=timezone.now())
    retrying = make_campaign(slug="retrying", release_in=-dt.timedelta(minutes=10), status="done")
    email_schedule_fired_and_lost(retrying)
    sign_up(retrying, "later@fan.test")
    release_email.follow_up(retrying.pk, timezone.now() + release_email.RETRY_AFTER)  # the mail server failed
    never = make_campaign(slug="never", release_in=-dt.timedelta(days=30), status="done")  # out before it had one
    Schedule.objects.filter(name=release_email.schedule_name(never.pk)).delete()
    sign_up(never, "old@fan.test")

    assert release_email.start_missed_runs(timezone.now() - GRACE) == 0
    assert release_email.start_missed_runs() == 0
    assert queued() == 0
