"""Release day with real django-q2 workers: the schedule fires, Deliver now races it, a worker crashes."""

import contextlib
import datetime as dt
import importlib
import pydoc
import threading
import time

import pytest
from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from delivery import bulk, engine, scheduling, tasks
from delivery.models import DeliveryAttempt, RateLimitPause
from delivery.ratelimit import limiter_for
from delivery.sandbox import demo_catalog
from fans import privacy, revocation
from fans.models import Credential, Fan, Subscription
from releases.models import Campaign, Release
from tests.conftest import make_campaign, make_subscription, wait_for
from tests.delivery.test_playlist import ALBUM_TRACKS
from tests.delivery.test_release_detection import deezer_subscription
from tests.outage import database_proxy, through

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"

pytestmark = pytest.mark.django_db(transaction=True)


def all_settled(campaign) -> bool:
    return not Subscription.objects.filter(campaign=campaign, status="pending").exists()


def many_fans(campaign, sandbox, prefix: str, count: int) -> list[str]:
    """`count` new sandbox users who pre-saved `campaign`."""
    users = [f"{prefix}{i:02d}" for i in range(count)]
    for user in users:
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": "GB"})
        make_subscription(campaign, sandbox, user)
    return users


def assert_each_delivered_once(campaign, sandbox, users: list[str]) -> None:
    """Every fan delivered, saved once, and their token deleted with the record."""
    assert set(Subscription.objects.filter(campaign=campaign).values_list("status", flat=True)) == {"delivered"}
    for user in users:
        assert len(sandbox.writes(user)) == 1, f"{user} was saved more than once"
    assert not Credential.objects.filter(subscription__campaign=campaign).exists(), "a delivered fan's token is kept"


def test_going_live_schedules_delivery_at_the_release_time():
    campaign = make_campaign(status="draft")
    assert scheduling.scheduled_time(campaign) is None

    campaign.status = Campaign.Status.LIVE
    campaign.save()
    schedule = Schedule.objects.get(name=scheduling.schedule_name(campaign.pk))
    assert schedule.next_run == campaign.release.release_at
    assert schedule.schedule_type == Schedule.ONCE and schedule.func == "delivery.tasks.deliver_on_schedule"

    release = campaign.release
    release.release_date += dt.timedelta(days=1)
    release.save()
    assert scheduling.scheduled_time(campaign) == release.release_at, "moving the release moves the schedule"

    campaign.status = Campaign.Status.DRAFT
    campaign.save()
    assert scheduling.scheduled_time(campaign) is None, "back to draft: nothing fires"


def test_a_scheduled_run_left_from_before_the_release_moved_delivers_nothing_early(sandbox):
    """The schedule fired and its task waited in the queue (busy workers on a Friday midnight) while staff moved
    the release a week later: that task delivers nothing. Deliver now still delivers at once: staff asked."""
    campaign = make_campaign(release_in=dt.timedelta(days=7))  # moved: live, and out in a week
    make_subscription(campaign, sandbox, "alice")

    summary = tasks.deliver_on_schedule(campaign.pk)

    assert "not yet" in summary
    assert Subscription.objects.get(campaign=campaign).status == "pending" and not sandbox.writes("alice")
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.LIVE

    tasks.deliver_campaign(campaign.pk, reopen=True)  # what Deliver now queues
    assert Subscription.objects.get(campaign=campaign).status == "delivered"


def test_schedule_fires_at_release_time_in_a_real_worker(sandbox, start_worker):
    campaign = make_campaign(release_in=dt.timedelta(seconds=4))
    subscriptions = [make_subscription(campaign, sandbox, user) for user in ("alice", "bob")]
    start_worker()

    wait_for(
        lambda: all_settled(campaign),
        timeout=90,
        message="the scheduled delivery (django-q2 checks schedules every 30 s)",
    )

    release_at = Campaign.objects.get(pk=campaign.pk).release.release_at
    for subscription in subscriptions:
        subscription.refresh_from_db()
        assert subscription.status == "delivered"
        assert subscription.delivered_at >= release_at, "never before the release time"
    assert sandbox.library("alice")["saved"] == [ALBUM_URI]
    assert Schedule.objects.get(name=scheduling.schedule_name(campaign.pk)).repeats == 0, "fired once, kept"


def test_deliver_now_racing_the_schedule_saves_once(sandbox, start_worker):
    campaign = make_campaign(release_in=dt.timedelta(seconds=1))
    users = many_fans(campaign, sandbox, "fan", 12)
    sandbox.faults(latency_ms=50)
    scheduling.deliver_now(campaign)
    scheduling.deliver_now(campaign)
    start_worker(Q_WORKERS="2")
    start_worker(Q_WORKERS="2")  # a second cluster, as on a second machine, sharing the queue

    wait_for(lambda: all_settled(campaign), timeout=90, message="every fan settled")

    assert_each_delivered_once(campaign, sandbox, users)


def test_worker_killed_mid_delivery_loses_no_fan(sandbox, start_worker):
    campaign = make_campaign(release_in=dt.timedelta(days=1))
    users = many_fans(campaign, sandbox, "crash", 30)
    sandbox.faults(latency_ms=150)
    env = {
        "DELIVERY_BATCH_SIZE": "4",
        "DELIVERY_CONCURRENCY": "4",
        "DELIVERY_PARALLEL_RUNS": "1",
        "DELIVERY_LEASE_SECONDS": "3",
        "Q_WORKERS": "1",
    }
    first = start_worker(**env)
    scheduling.deliver_now(campaign)

    wait_for(
        lambda: Subscription.objects.filter(campaign=campaign, status="delivered").count() >= 4,
        timeout=60,
        message="the first deliveries",
    )
    first.kill()
    delivered_at_kill = Subscription.objects.filter(campaign=campaign, status="delivered").count()
    assert delivered_at_kill < len(users), "the kill happened mid-run"

    start_worker(**env)
    scheduling.deliver_now(campaign)  # what the minute sweeper would do
    wait_for(lambda: all_settled(campaign), timeout=90, message="the run after the crash")

    # In flight at the kill: at most the batch being recorded and the next one (4 each), never more.
    in_flight = 8
    outcomes = dict(Subscription.objects.filter(campaign=campaign).values_list("fan__service_user_id", "status"))
    # A refresh answered just before the kill rotated that fan's token before the worker could store it; the
    # service refuses the old one (invalid_grant), so that fan has to authorize again. Only fans in flight.
    lost = sorted(user for user, status in outcomes.items() if status != "delivered")
    assert len(lost) <= in_flight and {outcomes[user] for user in lost} <= {"revoked"}, outcomes
    repeated = [user for user in users if len(sandbox.writes(user)) > 1]
    assert len(repeated) <= in_flight, f"only the batches in flight may be repeated, not {repeated}"
    for user in users:
        assert sandbox.library(user)["saved"] == ([] if user in lost else [ALBUM_URI])


def test_a_worker_killed_mid_batch_repeats_only_its_last_moment_not_the_whole_batch(sandbox, start_worker):
    """One batch holds every fan; the fans it finished are written while its other calls are out
    (DELIVERY_RECORD_SECONDS), so a kill repeats the calls in flight and the last moment's fans, not the batch."""
    campaign = make_campaign(release_in=dt.timedelta(days=1))
    users = many_fans(campaign, sandbox, "slow", 40)
    sandbox.faults(latency_ms=100)
    env = {
        "DELIVERY_BATCH_SIZE": "40",
        "DELIVERY_CONCURRENCY": "4",
        "DELIVERY_PARALLEL_RUNS": "1",
        "DELIVERY_LEASE_SECONDS": "3",
        "DELIVERY_RECORD_SECONDS": "0.2",
        "Q_WORKERS": "1",
    }
    first = start_worker(**env)
    scheduling.deliver_now(campaign)

    wait_for(lambda: len(sandbox.writes()) >= 24, timeout=60, message="most of the batch saved")
    first.kill()
    saved_at_kill = len(sandbox.writes())
    assert saved_at_kill < len(users), "the kill happened mid-batch"
    recorded_at_kill = Subscription.objects.filter(campaign=campaign, status="delivered").count()
    assert recorded_at_kill > 0, "fans done while the batch was out are written before its end"

    start_worker(**env)
    scheduling.deliver_now(campaign)
    wait_for(lambda: all_settled(campaign), timeout=90, message="the run after the crash")

    repeated = [user for user in users if len(sandbox.writes(user)) > 1]
    # In flight at the kill: 4 calls; done since the last write: what 4 calls in flight finish in 0.2 s (a fan
    # is two calls of 100 ms: about 4 fans), with room for a slow machine. The batch had 24 saved or more.
    assert len(repeated) <= 4 + 8, f"more than the calls in flight and the last moment repeated: {repeated}"
    assert set(Subscription.objects.filter(campaign=campaign).values_list("status", flat=True)) <= {
        "delivered",
        "revoked",
    }
    assert not Credential.objects.filter(subscription__campaign=campaign).exists(), "delivered or revoked: none kept"


def test_a_worker_killed_while_fans_wait_between_their_playlists_creation_and_its_add(sandbox, start_worker):
    """Under a rate limit a fan waits, for seconds, between its calls: what it did meanwhile (its save, its new
    playlist's id) is written while it waits, so a kill makes nobody a second playlist and repeats no save."""
    campaign = make_campaign(release_in=dt.timedelta(days=1), services=["spotify"], playlist_name="Pre-saves")
    users = [f"list{i:02d}" for i in range(12)]
    for user in users:
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": "GB"})
        make_subscription(campaign, sandbox, user, scope="user-library-modify playlist-modify-private")
    env = {
        "DELIVERY_BATCH_SIZE": "12",
        "DELIVERY_CONCURRENCY": "4",
        "DELIVERY_PARALLEL_RUNS": "1",
        "DELIVERY_LEASE_SECONDS": "3",
        "DELIVERY_MAX_RETRY_AFTER_SECONDS": "60",  # the sandbox's Retry-After (30 s) is waited out in place
        "SPOTIFY_RATE_LIMIT": "8",  # our pace: 8 calls a second, first come first served, so the fans' calls go
        "SPOTIFY_RATE_WINDOW_SECONDS": "1",  # in waves: refreshes, saves, creations, adds
        "Q_WORKERS": "1",
    }
    first = start_worker(**env)
    scheduling.deliver_now(campaign)

    def made() -> int:
        return sum(w["endpoint"] == "POST /v1/me/playlists" for w in sandbox.writes())

    wait_for(lambda: made() >= 3, timeout=60, message="the first playlists made")
    sandbox.faults(rate_limit=0)  # the service's limit is hit: 429, Retry-After 30 s, and every fan waits
    time.sleep(1.5)  # nothing in flight any more: the calls refused, their fans waiting for the pause to end
    empty = {user: lists[0]["id"] for user in users if (lists := sandbox.playlists(user)) and not lists[0]["items"]}
    assert empty, "some fans sat between their playlist's creation and its add"
    first.kill()

    sandbox.faults(rate_limit=None)
    RateLimitPause.objects.all().delete()  # the limit lifted early
    start_worker(**env)
    scheduling.deliver_now(campaign)  # what the minute sweeper would do, once the leases expire
    wait_for(lambda: all_settled(campaign), timeout=90, message="the run after the crash")

    assert set(Subscription.objects.filter(campaign=campaign).values_list("status", flat=True)) == {"delivered"}
    for user in users:
        playlists = sandbox.playlists(user)
        assert len(playlists) == 1, f"{user} has {len(playlists)} playlists"
        assert playlists[0]["items"] == ALBUM_TRACKS, user
        assert playlists[0]["id"] == empty.get(user, playlists[0]["id"]), "the playlist made before the kill, filled"
        # Nothing was in flight at the kill: no call is repeated.
        endpoints = [w["endpoint"] for w in sandbox.writes(user)]
        assert endpoints.count("PUT /v1/me/library") == 1, f"{user} was saved again"
        assert endpoints.count("POST /v1/me/playlists") == 1


def test_sweeper_resumes_a_delivery_left_behind(sandbox, start_worker):
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DELIVERING)
    Schedule.objects.filter(name=scheduling.schedule_name(campaign.pk)).delete()  # only the sweeper can help
    subscription = make_subscription(campaign, sandbox, "alice")
    # A lease that expired: its worker died.
    Subscription.objects.filter(pk=subscription.pk).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))

    from delivery.tasks import resume_deliveries

    assert resume_deliveries() == "resumed 1 campaign(s)"
    assert resume_deliveries() == "resumed 0 campaign(s)", "sweeps that waited together queue one run"
    start_worker()
    wait_for(lambda: all_settled(campaign), timeout=60, message="the resumed delivery")
    assert Subscription.objects.get(pk=subscription.pk).status == "delivered"


def test_the_sweepers_stored_schedule_still_names_the_sweeper():
    """The sweeper's Schedule row, stored once by a migration, names its task by dotted path: the path must go on
    finding the sweeper wherever its code lives."""
    sweeper_migration = importlib.import_module("delivery.migrations.0002_sweeper_schedule")
    sweeper_migration.create_sweeper(apps, schema_editor=None)
    task = pydoc.locate(Schedule.objects.get(name="delivery-sweeper").func)  # as django-q2's worker finds it

    assert task is tasks.resume_deliveries
    assert task() == "resumed 0 campaign(s)"


def test_two_clusters_on_the_redis_broker_share_a_campaign_without_double_delivery(sandbox, start_worker):
    import redis

    redis_url = "redis://127.0.0.1:6379/14"
    redis.Redis.from_url(redis_url).flushdb()
    campaign = make_campaign(release_in=dt.timedelta(seconds=2))
    users = many_fans(campaign, sandbox, "redis", 40)
    sandbox.faults(latency_ms=50)
    env = {"REDIS_URL": redis_url, "DELIVERY_BATCH_SIZE": "5", "DELIVERY_PARALLEL_RUNS": "4", "Q_WORKERS": "2"}
    clusters = [start_worker(**env), start_worker(**env)]  # as on two machines: one Redis, one database

    wait_for(lambda: all_settled(campaign), timeout=120, message="the scheduled delivery over Redis")

    assert_each_delivered_once(campaign, sandbox, users)
    worked = [c for c in clusters if "Processed" in c.output()]
    assert len(worked) == 2, "both clusters took delivery runs from the Redis queue"


def deliver_while_claimed(campaign, subscription, action):
    """Deliver `campaign`, running `action()` in another thread as soon as `subscription` is claimed (slow the
    sandbox down first, so that its calls are still out); returns what `action` returned."""
    results = []

    def act() -> None:
        try:
            wait_for(lambda: Subscription.objects.filter(pk=subscription.pk, leased_by__isnull=False).exists(), 10)
            results.append(action())
        finally:
            connection.close()

    actor = threading.Thread(target=act)
    actor.start()
    engine.deliver_campaign(campaign.pk)
    actor.join()
    assert results, "the action did not run while the subscription was claimed"
    return results[0]


def test_a_fan_erased_while_their_calls_are_in_flight_costs_the_batch_nothing(sandbox):
    """GDPR erasure deletes the fan's subscription (and its delivery log) while the engine's calls for it are
    out: the batch's record must still be written for everyone else, or their leases expire and they are
    delivered again."""
    campaign = make_campaign()
    users = many_fans(campaign, sandbox, "erase", 4)
    gone = Subscription.objects.get(campaign=campaign, fan__service_user_id=users[1])
    sandbox.control("POST", "faults", {"latency_ms": 700})

    erased = deliver_while_claimed(campaign, gone, lambda: privacy.erase(privacy.Subject(fan=gone.fan)))

    assert erased["subscriptions"] == 1
    assert not Subscription.objects.filter(pk=gone.pk).exists()
    assert sandbox.writes(users[1]) == []  # erased while the refresh was out: the save never went
    assert not DeliveryAttempt.objects.filter(subscription_id=gone.pk).exists()
    kept = [user for user in users if user != users[1]]
    assert_each_delivered_once(campaign, sandbox, kept)
    assert DeliveryAttempt.objects.filter(subscription__campaign=campaign, outcome="delivered").count() == 3
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE


def test_a_fan_who_revokes_while_their_refresh_is_out_is_not_saved(sandbox):
    campaign = make_campaign()
    users = many_fans(campaign, sandbox, "undo", 3)
    withdrawn = Subscription.objects.get(campaign=campaign, fan__service_user_id=users[0])
    sandbox.control("POST", "faults", {"latency_ms": 700})

    assert deliver_while_claimed(campaign, withdrawn, lambda: revocation.revoke_subscription(withdrawn.pk))

    withdrawn.refresh_from_db()
    assert withdrawn.status == Subscription.Status.REVOKED
    assert sandbox.writes(users[0]) == []
    attempt = DeliveryAttempt.objects.get(subscription=withdrawn)
    assert (attempt.outcome, attempt.call, attempt.message) == ("revoked", "refresh", engine.WITHDRAWN)
    others = Subscription.objects.filter(campaign=campaign).exclude(pk=withdrawn.pk)
    assert set(others.values_list("status", flat=True)) == {"delivered"}
    assert all(len(sandbox.writes(user)) == 1 for user in users[1:])


@pytest.mark.parametrize("service", ["deezer", "spotify"])
def test_a_fan_who_revokes_after_their_batch_started_is_not_saved(sandbox, settings, service):
    """No rotated refresh token to store (Deezer and Apple Music have none, Spotify does not always rotate): the
    fan is still checked just before their save goes out. One call at a time: the last fan cancels once the first
    one's save is through, long after the batch was claimed and started."""
    settings.DELIVERY_CONCURRENCY, settings.DELIVERY_PARALLEL_RUNS = 1, 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    users = ["alice", "bob", "chloe"]
    if service == "deezer":
        subscriptions = [deezer_subscription(campaign, sandbox, user) for user in users]
    else:
        subscriptions = [make_subscription(campaign, sandbox, user) for user in users]
    withdrawn = subscriptions[-1]
    sandbox.faults(latency_ms=500, rotate_refresh_tokens=False)

    def cancel() -> bool:
        wait_for(lambda: sandbox.writes(users[0]), 10, interval=0.05, message="the first fan's save")
        return revocation.revoke_subscription(withdrawn.pk)

    assert deliver_while_claimed(campaign, withdrawn, cancel)

    assert sandbox.writes(users[-1]) == [], "saved after they cancelled"
    withdrawn.refresh_from_db()
    assert withdrawn.status == Subscription.Status.REVOKED
    attempt = DeliveryAttempt.objects.get(subscription=withdrawn)
    assert (attempt.outcome, attempt.call, attempt.message) == ("revoked", "save", engine.WITHDRAWN)
    assert all(len(sandbox.writes(user)) == 1 for user in users[:-1])
    others = Subscription.objects.filter(pk__in=[s.pk for s in subscriptions[:-1]])
    assert set(others.values_list("status", flat=True)) == {"delivered"}


def test_a_fan_who_revokes_as_their_batch_is_recorded_has_no_delivered_attempt(sandbox):
    """A cancellation after the check, while the save is out, cannot stop the save; the record then keeps the
    fan revoked and writes no delivered attempt for them (the others of the batch are recorded as usual)."""
    campaign = make_campaign()
    withdrawn, kept = make_subscription(campaign, sandbox, "alice"), make_subscription(campaign, sandbox, "bob")
    run = engine.Run(campaign, transport=None)
    claimed = run.claim()
    revocation.revoke_subscription(withdrawn.pk)

    run.record([engine.Outcome(claim, "delivered", "save") for claim in claimed])

    withdrawn.refresh_from_db()
    assert withdrawn.status == Subscription.Status.REVOKED
    assert not DeliveryAttempt.objects.filter(subscription=withdrawn).exists()
    assert Subscription.objects.get(pk=kept.pk).status == Subscription.Status.DELIVERED
    assert DeliveryAttempt.objects.get(subscription=kept).outcome == "delivered"


@contextlib.contextmanager
def batch_being_recorded(subscription):
    """The engine recording a batch in another thread: its delivery attempt for `subscription` written, not yet
    committed, when the block starts; committed half a second later (whatever the block is waiting for)."""
    written, commit = threading.Event(), threading.Event()

    def record_a_batch() -> None:
        try:
            with transaction.atomic():
                bulk.insert_attempts([bulk.Attempt(subscription.pk, "save", "delivered", 200, "")], timezone.now())
                written.set()
                commit.wait(10)
        finally:
            connection.close()

    recorder = threading.Thread(target=record_a_batch)
    recorder.start()
    assert written.wait(10)
    threading.Timer(0.5, commit.set).start()
    yield
    recorder.join()
    assert commit.is_set()


def test_an_erasure_waits_for_a_batch_being_recorded(sandbox):
    """The other way round: the engine is recording a batch (its delivery attempts written, not committed)
    when the fan erases their data. The erasure waits for the record and deletes its attempts with the rest."""
    campaign = make_campaign()
    make_subscription(campaign, sandbox, "alice")
    subscription = Subscription.objects.get(campaign=campaign)

    with batch_being_recorded(subscription):
        erased = privacy.erase(privacy.Subject(fan=subscription.fan))

    assert erased["subscriptions"] == 1
    assert not Subscription.objects.filter(pk=subscription.pk).exists()
    assert not DeliveryAttempt.objects.exists()


def test_staff_deleting_a_fan_while_their_batch_is_recorded(sandbox):
    """Django's cascade (the admin's delete) collects the delivery log it can see, then deletes; an attempt the
    engine commits meanwhile goes with the subscription too (the database cascades it), instead of failing
    the deletion at commit."""
    campaign = make_campaign()
    make_subscription(campaign, sandbox, "alice")
    subscription = Subscription.objects.get(campaign=campaign)

    with batch_being_recorded(subscription):
        Fan.objects.filter(pk=subscription.fan_id).delete()

    assert not Subscription.objects.filter(pk=subscription.pk).exists()
    assert not DeliveryAttempt.objects.exists()


def waiting_for_a_lock(cursor) -> bool:
    cursor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()"
    )
    return cursor.fetchone()[0] > 0


def deadlock(cursor, first, proxy) -> None:
    """Lock the row the record holds: PostgreSQL aborts the record (it waited first) to break the cycle."""
    Subscription.objects.select_for_update().filter(pk=first.pk).exists()


def drop_the_connection(cursor, first, proxy) -> None:
    """Cut the waiting record's connection, as a database restart or a proxy would."""
    cursor.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )


def database_outage(cursor, first, proxy) -> None:
    """The database goes away for 9 s, as in a failover: longer than the ~8 s a record used to wait."""
    proxy.cut(9)


@pytest.mark.parametrize(
    "interrupt",
    [deadlock, drop_the_connection, database_outage],
    ids=["deadlock", "dropped-connection", "database-outage"],
)
def test_a_batch_whose_record_is_interrupted_is_recorded_again_not_delivered_again(sandbox, interrupt):
    """Another transaction (staff retrying failures, an erasure…) holds one of a batch's subscriptions while the
    engine records the batch, then the record is interrupted: a deadlock, its connection dropped, or the
    database away for a while. The record is written again, instead of the run dying with the batch unrecorded
    and its fans delivered again when the lease expires."""
    campaign = make_campaign()
    users = many_fans(campaign, sandbox, "cut", 2)
    first, second = Subscription.objects.filter(campaign=campaign).order_by("pk")
    sandbox.control("POST", "faults", {"latency_ms": 500})

    with database_proxy() as proxy:

        def hold_then_interrupt() -> bool:
            with transaction.atomic():
                Subscription.objects.select_for_update().filter(pk=second.pk).exists()
                with connection.cursor() as cursor:  # until the engine's record waits for `second`
                    wait_for(lambda: waiting_for_a_lock(cursor), timeout=10, interval=0.05)
                    interrupt(cursor, first, proxy)
            return True

        with through(proxy):  # the engine's connection, not the other transaction's
            assert deliver_while_claimed(campaign, second, hold_then_interrupt)

    assert_each_delivered_once(campaign, sandbox, users)
    assert DeliveryAttempt.objects.filter(subscription__campaign=campaign, outcome="delivered").count() == 2


def test_fans_whose_rotated_tokens_cannot_be_stored_are_still_delivered(sandbox, settings, caplog):
    """The refresh rotated the fans' tokens (the old ones are dead), then the database goes away for longer than
    the write of the new ones waits: their saves go ahead with the access tokens in hand, instead of the fans
    being retried with dead tokens and marked revoked, never saved."""
    settings.DELIVERY_DATABASE_OUTAGE_SECONDS = 2
    campaign = make_campaign()
    users = many_fans(campaign, sandbox, "stale", 2)
    first, second = Subscription.objects.filter(campaign=campaign).order_by("pk")
    sandbox.faults(latency_ms=300)

    with database_proxy() as proxy:

        def hold_then_cut() -> bool:
            with transaction.atomic():  # the rotated tokens' write waits for this lock, then loses its connection
                Credential.objects.select_for_update().filter(subscription=second).exists()
                with connection.cursor() as cursor:
                    wait_for(lambda: waiting_for_a_lock(cursor), timeout=10, interval=0.05)
                    drop_the_connection(cursor, first, proxy)  # the write is rolled back, not committed later
                    proxy.cut(3)  # longer than the write waits (2 s), shorter than that and the record's wait
            return True

        with through(proxy):
            assert deliver_while_claimed(campaign, second, hold_then_cut)

    assert_each_delivered_once(campaign, sandbox, users)
    assert "could not be stored" in caplog.text, "its rotated token was never stored"
    assert set(Subscription.objects.filter(campaign=campaign).values_list("attempts", flat=True)) == {1}


def test_a_release_postponed_while_it_is_delivered_stops_the_run_and_waits_for_the_new_time(sandbox, settings):
    """Staff move the release a week later while its delivery runs (a leak, a late master): the run finishes
    the fans whose calls are out, claims no more, and the campaign is live again, scheduled for the new time
    and taking pre-saves; nobody else is saved before then."""
    settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_CONCURRENCY = 1, 1  # one fan after the other
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    users = many_fans(campaign, sandbox, "moved", 4)
    first = Subscription.objects.filter(campaign=campaign).order_by("pk").first()
    sandbox.faults(latency_ms=400)

    def postpone() -> bool:
        release = Release.objects.get(pk=campaign.release_id)
        release.release_date += dt.timedelta(days=7)
        release.save()
        return True

    assert deliver_while_claimed(campaign, first, postpone)

    saved = [user for user in users if sandbox.writes(user)]
    assert len(saved) <= 1, "only the fan whose calls were out, not the one claimed ahead"
    moved = Campaign.objects.select_related("release").get(pk=campaign.pk)
    assert moved.status == Campaign.Status.LIVE and moved.accepts_presaves_in()
    assert scheduling.scheduled_time(moved) == moved.release.release_at
    assert tasks.deliver_on_schedule(campaign.pk).startswith(f"campaign {campaign.pk}: nothing due (not yet")
    assert [user for user in users if sandbox.writes(user)] == saved


def six_slow_deezer_fans(campaign, sandbox, prefix: str) -> tuple[list[str], list[Subscription]]:
    """Six Deezer fans of `campaign`, and the sandbox answering each call half a second late."""
    users = [f"{prefix}{i}" for i in range(6)]
    for user in users:
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": "GB"})
    subscriptions = [deezer_subscription(campaign, sandbox, user) for user in users]
    sandbox.faults(latency_ms=500)
    return users, subscriptions


@pytest.mark.parametrize("stop", ["postpone", "draft"])
def test_a_batch_claimed_ahead_is_given_back_when_staff_stop_the_delivery(sandbox, settings, stop):
    """Batches of two, one call at a time: the next batch is claimed and prepared while one is out. Staff stop
    the delivery (the release postponed, or the campaign set back to draft) while the first batch's calls are
    out: those fans are finished; the batch claimed ahead never starts, its fans pending, unleased, untried."""
    settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_CONCURRENCY, settings.DELIVERY_PARALLEL_RUNS = 2, 1, 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    users, subscriptions = six_slow_deezer_fans(campaign, sandbox, "stop")

    def stop_the_delivery() -> bool:
        wait_for(lambda: sandbox.writes(users[0]), 10, interval=0.05, message="the first fan's save")
        if stop == "postpone":
            release = Release.objects.get(pk=campaign.release_id)
            release.release_date += dt.timedelta(days=7)
            release.save()
        else:
            stopped = Campaign.objects.get(pk=campaign.pk)
            stopped.status = Campaign.Status.DRAFT
            stopped.save()
        return True

    assert deliver_while_claimed(campaign, subscriptions[0], stop_the_delivery)

    assert [user for user in users if sandbox.writes(user)] == users[:2], "only the first batch's fans"
    untouched = Subscription.objects.filter(pk__in=[s.pk for s in subscriptions[2:]])
    assert set(untouched.values_list("status", "attempts", "leased_by")) == {("pending", 0, None)}
    assert not DeliveryAttempt.objects.filter(subscription__in=untouched).exists()
    assert Campaign.objects.get(pk=campaign.pk).status != Campaign.Status.DELIVERING


def test_a_upc_corrected_mid_delivery_is_used_for_the_fans_claimed_after_it(sandbox, settings):
    """Staff notice the release was given another album's UPC and correct it while the delivery runs (a firing
    window, a rate limit: it may last hours): the fans claimed after the correction get the right album, not the
    one the run found when it started. Batches of two, one call at a time."""
    settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_CONCURRENCY, settings.DELIVERY_PARALLEL_RUNS = 2, 1, 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1), services=["deezer"])
    Release.objects.filter(pk=campaign.release_id).update(upc=demo_catalog.PAPER_TIDES_ALBUM_UPC)  # the wrong one
    users, subscriptions = six_slow_deezer_fans(campaign, sandbox, "upc")

    def correct_the_upc() -> bool:
        wait_for(lambda: sandbox.writes(users[0]), 10, interval=0.05, message="the first fan's save")
        release = Release.objects.get(pk=campaign.release_id)
        release.upc = demo_catalog.NOVA_LARK_ALBUM_UPC
        release.full_clean()
        release.save()
        return True

    assert deliver_while_claimed(campaign, subscriptions[0], correct_the_upc)

    def album_saved(user: str) -> str:
        (write,) = sandbox.writes(user)
        return "right" if demo_catalog.NOVA_LARK_ALBUM_ID in write["uri"] else "wrong"

    assert [album_saved(user) for user in users[:2]] == ["wrong", "wrong"], "the first batch was out before"
    # The second batch was claimed ahead, while the first one's calls were out: just before the correction.
    assert [album_saved(user) for user in users[4:]] == ["right", "right"]
    assert set(Subscription.objects.filter(campaign=campaign).values_list("status", flat=True)) == {"delivered"}


def test_a_claim_made_while_the_database_is_away_is_made_again_when_it_is_back(sandbox):
    """The run claims its next batch while the one before is in flight: a claim that meets a restart or a
    failover waits for the database instead of ending the run (and leaving that batch unrecorded)."""
    campaign = make_campaign()
    many_fans(campaign, sandbox, "away", 2)
    run = engine.Run(campaign, transport=None)  # claims only: no call goes out

    with database_proxy() as proxy, through(proxy):
        connection.ensure_connection()
        proxy.cut(3)
        started = time.monotonic()
        claimed = run.claim()
        waited = time.monotonic() - started

    assert waited >= 2.5, "the claim went through the outage"
    assert sorted(c.pk for c in claimed) == sorted(
        Subscription.objects.filter(campaign=campaign).values_list("pk", flat=True)
    )
    assert set(Subscription.objects.filter(campaign=campaign).values_list("leased_by", flat=True)) == {run.owner}


def test_a_batch_slower_than_its_lease_is_not_taken_over_by_another_run(sandbox, settings):
    """A batch held up by the service (its rate limit, a Retry-After, latency) for longer than the lease stays
    its run's while its calls are out: another run must not claim it and save its fans a second time."""
    settings.DELIVERY_LEASE_SECONDS = 4
    campaign = make_campaign()
    (user,) = many_fans(campaign, sandbox, "slow", 1)
    sandbox.faults(latency_ms=1500)  # availability 3 s, then refresh and save 1.5 s each: 6 s in all

    def first_run() -> None:
        try:
            engine.deliver_campaign(campaign.pk, fan_out=False)
        finally:
            connection.close()

    first = threading.Thread(target=first_run)
    first.start()
    time.sleep(4.5)  # the claim's lease ran out; the first run's calls are still out
    engine.deliver_campaign(campaign.pk, fan_out=False)
    first.join()

    assert_each_delivered_once(campaign, sandbox, [user])


def test_a_retry_after_too_long_to_wait_in_place_stops_every_fan_and_costs_none_an_attempt(sandbox, settings):
    """A Retry-After longer than a call waits in place puts the refused fan off until then, and every other fan
    (in any run) too: nobody calls the service again before the time it asked for. The service's rate limit
    says nothing about the fans: none of them uses up an attempt (with one attempt allowed, none fails), and
    the run delivers them when the pause is over (it waits in place for work due within 30 s)."""
    settings.DELIVERY_MAX_RETRY_AFTER_SECONDS = 1  # the sandbox asks for up to 30 s
    settings.DELIVERY_MAX_ATTEMPTS = 1
    settings.DELIVERY_BATCH_SIZE, settings.DELIVERY_CONCURRENCY = 1, 1  # one fan after the other
    campaign = make_campaign()
    users = many_fans(campaign, sandbox, "wait", 3)
    sandbox.faults(rate_limit=5)  # availability (2 calls), the first fan, the second's refresh; then 429s

    engine.deliver_campaign(campaign.pk, fan_out=False)

    assert sandbox.control("GET", "counters")["rate_limited"] == 1, "after the 429 nobody called Spotify"
    assert_each_delivered_once(campaign, sandbox, users)
    assert set(Subscription.objects.values_list("attempts", flat=True)) == {1}, "the wait was no attempt"
    outcomes = {
        user: list(
            DeliveryAttempt.objects.filter(subscription__fan__service_user_id=user)
            .order_by("pk")
            .values_list("outcome", "http_status")
        )
        for user in users
    }
    assert outcomes[users[1]][0] == ("retry", 429), "the refused call is on the fan's record"


def test_fans_claimed_while_the_service_has_everyone_paused_are_put_off_without_a_call(sandbox, settings):
    """A run that starts (or claims a batch) during a long pause the service asked for calls nothing: its fans
    wait for the pause's end, using up no attempt, and the run ends instead of waiting in place."""
    settings.DELIVERY_MAX_RETRY_AFTER_SECONDS = 1
    campaign = make_campaign()
    many_fans(campaign, sandbox, "paused", 3)
    limiter_for("spotify").pause(120)  # a 429 with Retry-After: 120 seen by another worker
    started = timezone.now()

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert sandbox.control("GET", "counters")["requests"] == 0
    assert report.counts == {"retry": 3}
    for status, attempts, next_at in Subscription.objects.values_list("status", "attempts", "next_attempt_at"):
        assert (status, attempts) == ("pending", 0)
        assert started + dt.timedelta(seconds=100) < next_at < started + dt.timedelta(seconds=140)
    assert timezone.now() - started < dt.timedelta(seconds=20), "the run did not wait the pause out in place"


def test_our_apps_credentials_refused_on_release_day_pause_every_fan_and_fail_none(sandbox, settings, caplog):
    """A wrong client secret on release day is our app's problem, not the fans': Spotify answers invalid_client,
    every worker pauses, no fan fails or uses up an attempt (with one allowed, none fails), and no more calls go
    out. Once the secret is put right the fans are delivered when the pause is over."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign()
    users = many_fans(campaign, sandbox, "secret", 3)
    settings.SPOTIFY_CLIENT_SECRET = "not-our-secret"
    started = timezone.now()

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert report.counts == {"retry": 3}
    assert sandbox.control("GET", "counters")["token_requests"] == 1, "one refused call, then everyone waited"
    for status, attempts, error, next_at in Subscription.objects.values_list(
        "status", "attempts", "last_error", "next_attempt_at"
    ):
        assert (status, attempts) == ("pending", 0)
        assert error.startswith(("Spotify rejected our app's credentials", "Paused: the service asked"))
        assert next_at > started + dt.timedelta(seconds=240)
    assert limiter_for("spotify").paused_until() > time.time() + 240
    logged = [r.getMessage() for r in caplog.records if "every worker waits" in r.getMessage()]
    assert logged == [
        f"Campaign {campaign.pk}: every worker waits 300 s for Spotify: Spotify rejected our app's credentials "
        "(check SPOTIFY_CLIENT_ID/SECRET); delivery waits."
    ], "the operators are told once, with what to check"
    assert "not-our-secret" not in caplog.text

    settings.SPOTIFY_CLIENT_SECRET = "sandbox-client-secret"  # put right; five minutes later:
    RateLimitPause.objects.all().delete()
    Subscription.objects.update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk, fan_out=False)

    assert_each_delivered_once(campaign, sandbox, users)


def test_the_app_owners_lapsed_premium_pauses_every_fan_and_fails_none(sandbox, settings, caplog):
    """Spotify's development mode needs the app owner on Premium; when it lapses every Web API call answers a
    plain-text 403 ("Active premium subscription required for the owner of the app…") for hours. That is the
    label's to mend, not the fans' failure: every worker pauses, no fan uses up an attempt, the operators read
    what to do; once it is renewed the fans are delivered."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign()
    users = many_fans(campaign, sandbox, "premium", 3)
    sandbox.faults(owner_premium_lapsed=True)

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert report.counts == {"retry": 3}
    assert sandbox.control("GET", "counters")["api_requests"] == 1, "one refused call, then everyone waited"
    assert set(Subscription.objects.values_list("status", "attempts")) == {("pending", 0)}
    assert limiter_for("spotify").paused_until() > time.time() + 240
    assert any("no Premium subscription any more" in r.getMessage() for r in caplog.records)

    sandbox.faults(owner_premium_lapsed=False)  # renewed; once the pause is over:
    RateLimitPause.objects.all().delete()
    Subscription.objects.update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk, fan_out=False)

    assert_each_delivered_once(campaign, sandbox, users)


def test_a_fan_still_rate_limited_long_after_the_release_fails_with_the_reason(sandbox, settings):
    """The wait for the service's rate limit to lift has the same bound as the wait for a release to come out:
    from DELIVERY_AVAILABILITY_WAIT_HOURS after the fan's release time, a 429 uses up an attempt like any
    passing failure, and the fan out of attempts fails with the reason."""
    settings.DELIVERY_MAX_RETRY_AFTER_SECONDS = 1
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 0
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=5))
    many_fans(campaign, sandbox, "late", 1)
    sandbox.faults(rate_limit=3)  # availability (2 calls) and the refresh; the save is refused

    engine.deliver_campaign(campaign.pk, fan_out=False)

    subscription = Subscription.objects.get()
    assert (subscription.status, subscription.attempts) == ("failed", 1)
    assert subscription.last_error == "Gave up after 1 attempt: rate limited by Spotify."
