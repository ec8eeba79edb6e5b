"""The delivery engine against the sandbox over HTTP: outcomes, retries, revocation, token rotation."""

import datetime as dt
import os
import pydoc
import uuid

import pytest
import requests
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

from delivery import bulk, engine, scheduling, tasks
from delivery.models import DeliveryAttempt
from delivery.sandbox import demo_catalog
from fans import privacy, revocation
from fans.models import Credential, Subscription
from releases.models import Campaign
from releases.retry import retry_failed
from tests.conftest import make_campaign, make_consent, make_subscription

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"
ARTIST_URI = f"spotify:artist:{demo_catalog.NOVA_LARK_ARTIST_ID}"
FANS = ("alice", "bob", "chloe")

pytestmark = pytest.mark.django_db


def refresh_with(sandbox, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{sandbox.accounts_url}/api/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=sandbox.spotify_client,
        timeout=5,
    )


def test_release_is_saved_to_every_fan_exactly_once(sandbox, campaign):
    subscriptions = [make_subscription(campaign, sandbox, user) for user in FANS]

    report = engine.deliver_campaign(campaign.pk)

    assert report.counts == {"delivered": 3}
    for user in FANS:
        assert ALBUM_URI in sandbox.library(user)["saved"]
        assert [w["uri"] for w in sandbox.writes(user)] == [ALBUM_URI]
    for subscription in subscriptions:
        subscription.refresh_from_db()
        assert subscription.status == Subscription.Status.DELIVERED
        assert subscription.attempts == 1 and subscription.delivered_at is not None
        assert subscription.leased_by is None
    assert DeliveryAttempt.objects.filter(outcome="delivered").count() == 3
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE


def test_running_again_saves_nothing_twice(sandbox, campaign):
    make_subscription(campaign, sandbox, "alice")
    engine.deliver_campaign(campaign.pk)
    report = engine.deliver_campaign(campaign.pk)
    assert report.counts == {}
    assert len(sandbox.writes("alice")) == 1


def queued(func: str) -> list:
    return [task for task in OrmQ.objects.order_by("pk") if task.func() == func]


def run_as_a_worker(task: OrmQ) -> str:
    """What a django-q2 worker does with a queued task: its function, with its arguments."""
    return pydoc.locate(task.func())(*task.task["args"], **task.task["kwargs"])


def test_only_staffs_run_reopens_a_campaign_whose_delivery_is_done(
    sandbox, db, settings, django_capture_on_commit_callbacks
):
    """A helper run, a sweep's run or the release-time schedule's that comes after the delivery is done neither
    re-opens the campaign nor mails its release-day report again, even with fans pending again (Retry failed put
    them back, its own run not there yet). The run Retry failed (or Deliver now) queues delivers them."""
    settings.DELIVERY_REPORT_EMAILS = ["label@example.test"]
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=5))  # out: Retry failed delivers at once
    alice = make_subscription(campaign, sandbox, "alice")
    sandbox.faults(errors_matching="spotify:album:")  # the save is down: alice gives up after one attempt
    with django_capture_on_commit_callbacks(execute=True):
        engine.deliver_campaign(campaign.pk)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert len(queued(engine.REPORT_TASK)) == 1
    stray_runs = [
        lambda: tasks.deliver_campaign(campaign.pk, False),  # a helper run
        lambda: tasks.deliver_campaign(campaign.pk),  # the sweeper's
        lambda: tasks.deliver_on_schedule(campaign.pk),  # the release-time schedule's, late
    ]

    sandbox.faults(errors_matching="")
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_failed(campaign) == 1
    (retry,) = queued(scheduling.DELIVER_TASK)
    for stray in stray_runs:
        with django_capture_on_commit_callbacks(execute=True):
            assert "already delivered" in stray()
        assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    alice.refresh_from_db()
    assert alice.status == Subscription.Status.PENDING and sandbox.writes("alice") == []
    assert len(queued(engine.REPORT_TASK)) == 1, "no second report"

    with django_capture_on_commit_callbacks(execute=True):
        assert run_as_a_worker(retry).endswith("delivered 1")
    alice.refresh_from_db()
    assert alice.status == Subscription.Status.DELIVERED
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE

    for stray in stray_runs:  # done again, nothing pending
        with django_capture_on_commit_callbacks(execute=True):
            assert "already delivered" in stray()
    assert [w["uri"] for w in sandbox.writes("alice")] == [ALBUM_URI]
    assert len(queued(engine.REPORT_TASK)) == 2, "one report for each delivery staff started"


def test_runs_left_from_an_early_deliver_now_do_not_start_the_campaign_before_its_release(
    sandbox, db, settings, django_capture_on_commit_callbacks
):
    """Deliver now pressed a week early queued helper runs; Retry failed then made the campaign live again to wait
    for its release time. The helper runs still queued, and a run a sweep queued while it was delivering, start
    nothing: only the release-time schedule and staff's Deliver now start a live campaign."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    settings.DELIVERY_BATCH_SIZE = 1
    settings.DELIVERY_PARALLEL_RUNS = 3
    campaign = make_campaign(release_in=dt.timedelta(days=7))
    for user in ("alice", "bob"):
        make_subscription(campaign, sandbox, user)
    sandbox.faults(errors_matching="spotify:album:")  # the save is down: every fan gives up after one attempt
    with django_capture_on_commit_callbacks(execute=True):
        scheduling.deliver_now(campaign)
    (deliver_now,) = queued(scheduling.DELIVER_TASK)
    with django_capture_on_commit_callbacks(execute=True):
        run_as_a_worker(deliver_now)
    deliver_now.delete()
    helpers = queued(scheduling.DELIVER_TASK)
    assert len(helpers) == 2, "Deliver now queued helper runs"
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE

    sandbox.faults(errors_matching="")
    with django_capture_on_commit_callbacks(execute=True):
        assert retry_failed(campaign) == 2
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.LIVE, "Retry failed waits for the release"
    assert queued(scheduling.DELIVER_TASK) == helpers, "and queues no run"
    chloe = make_subscription(campaign, sandbox, "chloe")  # pre-saves again meanwhile: due at once when started

    for stray in [*(lambda h=h: run_as_a_worker(h) for h in helpers), lambda: tasks.deliver_campaign(campaign.pk)]:
        with django_capture_on_commit_callbacks(execute=True):
            assert "not started" in stray()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.LIVE
    assert set(Subscription.objects.filter(campaign=campaign).values_list("status", flat=True)) == {"pending"}
    assert all(sandbox.writes(user) == [] for user in FANS)

    with django_capture_on_commit_callbacks(execute=True):
        tasks.deliver_campaign(campaign.pk, reopen=True)  # staff's Deliver now starts it
    chloe.refresh_from_db()
    assert chloe.status == Subscription.Status.DELIVERED


def test_artist_is_followed_when_the_campaign_follows(sandbox, db):
    campaign = make_campaign(follow_artist=True)
    make_subscription(campaign, sandbox, "alice")
    engine.deliver_campaign(campaign.pk)
    library = sandbox.library("alice")
    assert ALBUM_URI in library["saved"]
    assert ARTIST_URI in library["following"]


def test_legacy_library_endpoints_when_configured(sandbox, settings, db):
    settings.SPOTIFY_LIBRARY_API = "legacy"
    campaign = make_campaign(follow_artist=True)
    make_subscription(campaign, sandbox, "bob")
    engine.deliver_campaign(campaign.pk)
    library = sandbox.library("bob")
    assert ALBUM_URI in library["saved"] and ARTIST_URI in library["following"]
    endpoints = {w["endpoint"] for w in sandbox.writes("bob")}
    assert not any("/me/library" in endpoint for endpoint in endpoints)


def test_revoked_token_is_not_retried(sandbox, campaign):
    make_subscription(campaign, sandbox, "alice")
    bob = make_subscription(campaign, sandbox, "bob")
    sandbox.control("POST", "users/bob/revoke")

    engine.deliver_campaign(campaign.pk)
    token_requests = sandbox.control("GET", "counters")["token_requests"]
    engine.deliver_campaign(campaign.pk)

    bob.refresh_from_db()
    assert bob.status == Subscription.Status.REVOKED
    assert bob.attempts == 1
    assert "no longer valid" in bob.last_error
    assert not Credential.objects.filter(subscription=bob).exists(), "a dead token is destroyed"
    assert sandbox.control("GET", "counters")["token_requests"] == token_requests, "never retried"
    assert sandbox.writes("bob") == []
    assert len(sandbox.writes("alice")) == 1


def test_rotated_refresh_token_is_stored_and_used_next_time(sandbox, db, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=5))  # out: Retry failed delivers at once
    subscription = make_subscription(campaign, sandbox, "alice")
    original = subscription.credential.reveal()
    sandbox.faults(errors_matching="spotify:album:")  # the refresh goes through, the save is down

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED and subscription.last_error.startswith(engine.GAVE_UP)
    rotated = Credential.objects.get(pk=subscription.pk).reveal()  # a failure Retry failed re-queues keeps it
    assert rotated != original
    assert refresh_with(sandbox, original).json()["error"] == "invalid_grant", "the old token died"

    # Retry failed can only succeed with the rotated token: the original one is dead.
    sandbox.faults(errors_matching="")
    assert retry_failed(campaign) == 1
    engine.deliver_campaign(campaign.pk, reopen=True)  # the run Retry failed queues
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED
    assert [w["uri"] for w in sandbox.writes("alice")] == [ALBUM_URI]
    assert not Credential.objects.filter(pk=subscription.pk).exists(), "delivered: the token is deleted"


def test_delivered_and_revoked_fans_tokens_are_deleted_with_their_record(sandbox, campaign, settings):
    """Storage limitation: a token has no use once the fan's release-day work is done. In batches of two, each
    batch's record deletes its own fans' tokens, and nobody else's (a pre-save of a later release keeps its)."""
    settings.DELIVERY_BATCH_SIZE = 2
    subscriptions = [make_subscription(campaign, sandbox, user) for user in FANS]
    later = make_subscription(make_campaign(slug="later-light", release_in=dt.timedelta(days=30)), sandbox, "alice")
    sandbox.control("POST", "users/bob/revoke")

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert report.counts == {"delivered": 2, "revoked": 1}
    assert not Credential.objects.filter(subscription__in=subscriptions).exists()
    assert Credential.objects.filter(subscription=later).exists()


def test_a_fan_who_cancels_after_delivery_finds_no_token_held_and_nothing_fails(sandbox, campaign):
    subscription = make_subscription(campaign, sandbox, "alice")
    consent = make_consent(subscription)
    revoke_token = consent.issue_revoke_token()
    consent.save()
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    subject = privacy.Subject(fan=subscription.fan)
    assert [s["stored_permission"] for s in privacy.export(subject)["subscriptions"]] == [None]

    revoked = revocation.revoke(revoke_token)

    assert revoked.delivered and not revoked.already_revoked
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED  # what happened stays recorded
    assert subscription.consents.get().revoked_at is None  # nothing was left to cancel (fans/revocation.py)


def test_only_the_lease_holders_committed_record_deletes_a_token(sandbox, campaign):
    """A token goes with the record that the fan was delivered, in its transaction: not when that record is
    rolled back (the connection dropped: the batch is recorded again), nor by a run whose lease ran out and
    another run holds the fan now."""
    subscription = make_subscription(campaign, sandbox, "alice")
    holder, late = uuid.uuid4(), uuid.uuid4()
    lease_until = timezone.now() + dt.timedelta(minutes=1)
    Subscription.objects.filter(pk=subscription.pk).update(leased_by=holder, lease_expires_at=lease_until)
    delivered = [bulk.Settled(subscription.pk, "delivered", "", True, None, None, forget_token=True)]

    with pytest.raises(ConnectionError), transaction.atomic():
        bulk.settle_subscriptions(holder, delivered, timezone.now())
        raise ConnectionError("the connection dropped before the commit")
    bulk.settle_subscriptions(late, delivered, timezone.now())

    subscription.refresh_from_db()
    assert (subscription.status, subscription.leased_by) == ("pending", holder)
    assert Credential.objects.filter(subscription=subscription).exists()

    bulk.settle_subscriptions(holder, delivered, timezone.now())
    subscription.refresh_from_db()
    assert subscription.status == "delivered"
    assert not Credential.objects.filter(subscription=subscription).exists()


def test_only_the_lease_holder_writes_a_fans_progress(sandbox, campaign):
    """A run whose lease ran out, and another run holds the fan now, cannot overwrite the new holder's progress;
    nor can any run write the progress of a fan already settled."""
    first, second = (make_subscription(campaign, sandbox, user) for user in ("alice", "bob"))
    holder, late = uuid.uuid4(), uuid.uuid4()
    Subscription.objects.filter(pk=first.pk).update(leased_by=holder, done_calls="save playlist-made:new")
    Subscription.objects.filter(pk=second.pk).update(leased_by=holder, status="delivered", done_calls="save")

    bulk.record_progress(late, [(first.pk, "save")], timezone.now())
    bulk.record_progress(holder, [(second.pk, "")], timezone.now())
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.done_calls, second.done_calls) == ("save playlist-made:new", "save")

    bulk.record_progress(holder, [(first.pk, "save playlist-made:new playlist")], timezone.now())
    first.refresh_from_db()
    assert (first.done_calls, first.status, first.leased_by) == ("save playlist-made:new playlist", "pending", holder)


def test_batches_in_flight_together_each_record_their_own_fans(sandbox, campaign, settings):
    """Batches of two, four calls in flight: each batch starts while the one before still has fans out."""
    settings.DELIVERY_BATCH_SIZE = 2
    settings.DELIVERY_CONCURRENCY = 4
    users = [f"fan{i}" for i in range(7)]
    for user in users:
        sandbox.control("POST", "users", {"id": user})
    subscriptions = [make_subscription(campaign, sandbox, user) for user in users]
    sandbox.control("POST", "users/fan3/revoke")

    report = engine.deliver_campaign(campaign.pk, fan_out=False)

    assert report.counts == {"delivered": 6, "revoked": 1}
    for user in users:
        assert len(sandbox.writes(user)) == (0 if user == "fan3" else 1)
    statuses = {s.pk: s.status for s in Subscription.objects.filter(campaign=campaign)}
    assert [statuses[s.pk] for s in subscriptions] == ["delivered"] * 3 + ["revoked"] + ["delivered"] * 3
    assert DeliveryAttempt.objects.filter(subscription__campaign=campaign).count() == 7
    assert not Subscription.objects.filter(campaign=campaign, leased_by__isnull=False).exists()


def test_server_errors_are_retried_then_failed_with_the_reason(sandbox, campaign, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    subscription = make_subscription(campaign, sandbox, "alice")
    sandbox.faults(error_rate=1.0)

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED
    assert subscription.attempts == 3
    assert subscription.last_error.startswith("Gave up after 3 attempts: Spotify had a server error")
    outcomes = list(DeliveryAttempt.objects.filter(subscription=subscription).order_by("at", "pk"))
    assert [a.outcome for a in outcomes] == ["retry", "retry", "failed"]
    assert all(a.http_status and a.http_status >= 500 for a in outcomes)
    assert Credential.objects.filter(subscription=subscription).exists(), "kept: Retry failed may re-queue it"


def test_a_save_that_went_through_is_not_sent_again_when_the_follow_after_it_failed(sandbox, db, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 3
    campaign = make_campaign(follow_artist=True, release_in=-dt.timedelta(minutes=5))
    subscription = make_subscription(campaign, sandbox, "alice")
    sandbox.faults(errors_matching="spotify:artist:")  # the follow is down, the save is up

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED
    assert subscription.done_calls == "save"
    attempts = DeliveryAttempt.objects.filter(subscription=subscription).order_by("at", "pk")
    assert [(a.call, a.outcome, a.http_status) for a in attempts] == [
        ("follow", "retry", 503),
        ("follow", "retry", 503),
        ("follow", "failed", 503),
    ]
    assert [w["uri"] for w in sandbox.writes("alice")] == [ALBUM_URI], "saved once, not at every try"

    sandbox.faults(errors_matching="")
    assert retry_failed(campaign) == 1
    engine.deliver_campaign(campaign.pk, reopen=True)  # the run Retry failed queues

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED
    assert [w["uri"] for w in sandbox.writes("alice")] == [ALBUM_URI, ARTIST_URI]
    assert sandbox.library("alice") == {"saved": [ALBUM_URI], "following": [ARTIST_URI]}
    assert not Credential.objects.filter(subscription=subscription).exists()


def test_a_fan_spotifys_development_mode_does_not_serve_fails_with_the_reason(sandbox, campaign):
    alice = make_subscription(campaign, sandbox, "alice")
    bob = make_subscription(campaign, sandbox, "bob")
    sandbox.faults(registered_users=["alice"])  # the app's dashboard lists alice only

    engine.deliver_campaign(campaign.pk)

    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.status == Subscription.Status.DELIVERED
    assert (bob.status, bob.attempts) == (Subscription.Status.FAILED, 1), "not retried: it would fail again"
    assert bob.last_error == (
        "Spotify's development mode: this fan is not one of the users listed in our app's dashboard."
    )
    assert not Credential.objects.filter(subscription=bob).exists(), "failed for good: no token is kept"


def test_passing_server_errors_end_in_delivery(sandbox, campaign, settings):
    settings.DELIVERY_MAX_ATTEMPTS = 12
    for user in FANS:
        make_subscription(campaign, sandbox, user)
    sandbox.faults(error_rate=0.4, seed=7)

    engine.deliver_campaign(campaign.pk)

    statuses = set(Subscription.objects.values_list("status", flat=True))
    assert statuses == {"delivered"}
    assert DeliveryAttempt.objects.filter(outcome="retry").exists(), "the faults did hit"
    for user in FANS:
        assert sandbox.library(user)["saved"] == [ALBUM_URI]


def test_timeouts_are_retried(sandbox, campaign, settings):
    settings.SERVICE_TIMEOUT_SECONDS = 0.5
    settings.DELIVERY_MAX_ATTEMPTS = 2
    subscription = make_subscription(campaign, sandbox, "alice")
    sandbox.faults(timeout_rate=1.0, hang_seconds=2)

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED
    assert "did not answer in time" in subscription.last_error


def test_fan_without_stored_authorization_is_revoked(sandbox, campaign):
    subscription = make_subscription(campaign, sandbox, "alice")
    Credential.objects.filter(pk=subscription.pk).delete()
    engine.deliver_campaign(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.REVOKED


GONE = "gone:Z29uZWdvbmVnb25lZ29uZWdvbmVnb25lZ29uZWdvbmU="
NEW_KEY = "test-a:YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="


def test_a_token_sealed_under_a_key_taken_out_waits_for_it_and_fails_nobody(sandbox, campaign, settings):
    """A key rotation finished before `rewrap_tokens` ran: a setting to put right, not the fans' failure."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 48
    settings.TOKEN_ENCRYPTION_KEYS = GONE
    subscription = make_subscription(campaign, sandbox, "alice")
    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEY

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert (subscription.status, subscription.attempts) == ("pending", 0)
    assert subscription.last_error == (
        "The key 'gone' that sealed this fan's authorization is not in TOKEN_ENCRYPTION_KEYS as the worker that "
        f"tried (process {os.getpid()}) read them when it started (a worker started before the key was added, or "
        "the key was taken out). The fan is tried again every 5 minutes, using up no attempt, until 48 hours after "
        "its release time."
    )
    assert sandbox.writes("alice") == []
    assert not DeliveryAttempt.objects.filter(subscription=subscription).exists()  # a wait, not an attempt

    settings.TOKEN_ENCRYPTION_KEYS = f"{NEW_KEY},{GONE}"  # put back, as the old key of a rotation
    Subscription.objects.filter(pk=subscription.pk).update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.DELIVERED


def test_a_key_still_missing_after_the_wait_fails_with_the_reason(sandbox, db, settings):
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 1
    settings.TOKEN_ENCRYPTION_KEYS = GONE
    subscription = make_subscription(make_campaign(release_in=-dt.timedelta(hours=2)), sandbox, "alice")
    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEY

    engine.deliver_campaign(subscription.campaign_id)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED
    assert subscription.last_error == (
        "Gave up waiting: the key 'gone' that sealed this fan's authorization is not in TOKEN_ENCRYPTION_KEYS as the "
        f"worker that tried (process {os.getpid()}) read them when it started, still 1 hour after its release time."
    )
    assert sandbox.writes("alice") == []


def test_a_damaged_token_fails_with_a_readable_reason(sandbox, campaign):
    subscription = make_subscription(campaign, sandbox, "alice")
    Credential.objects.filter(pk=subscription.pk).update(ciphertext=b"\x00" * 60)

    engine.deliver_campaign(campaign.pk)

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.FAILED
    assert subscription.last_error.startswith("The stored authorization could not be decrypted")


def test_draft_campaign_is_not_delivered(sandbox, db):
    campaign = make_campaign(status="draft")
    make_subscription(campaign, sandbox, "alice")
    report = engine.deliver_campaign(campaign.pk)
    assert "draft" in report.summary()
    assert sandbox.writes("alice") == []


def test_rate_limit_is_honoured_with_retry_after(sandbox, campaign, settings):
    settings.DELIVERY_MAX_RETRY_AFTER_SECONDS = 60  # wait in place for the window to free
    for user in FANS:
        make_subscription(campaign, sandbox, user)
    # 6 calls are needed (refresh + save for 3 fans); the window allows 4, then answers 429 + Retry-After.
    sandbox.faults(rate_limit=4)

    engine.deliver_campaign(campaign.pk)

    counters = sandbox.control("GET", "counters")
    assert counters["rate_limited"] >= 1
    assert counters["rate_limited"] <= 3, "after a 429 the run waits instead of hammering"
    assert set(Subscription.objects.values_list("status", flat=True)) == {"delivered"}
    for user in FANS:
        assert len(sandbox.writes(user)) == 1


def test_retry_after_is_waited_out_without_a_rate_limit_of_our_own(sandbox, campaign, settings):
    """SPOTIFY_RATE_LIMIT = 0 turns our own pacing off, not the service's: a 429's Retry-After is still waited."""
    settings.SPOTIFY_RATE_LIMIT = 0
    settings.DELIVERY_MAX_RETRY_AFTER_SECONDS = 60
    make_subscription(campaign, sandbox, "alice")
    sandbox.faults(rate_limit=3)  # availability (app token, album) and the refresh; the save waits 30 s

    engine.deliver_campaign(campaign.pk)

    assert sandbox.control("GET", "counters")["rate_limited"] <= 2, "the 429 was waited out, not called again"
    assert set(Subscription.objects.values_list("status", flat=True)) == {"delivered"}
    assert not DeliveryAttempt.objects.exclude(outcome="delivered").exists()


def test_no_token_reaches_a_log_record(sandbox, campaign, caplog, settings):
    caplog.set_level("DEBUG")
    settings.DELIVERY_MAX_ATTEMPTS = 4
    subscription = make_subscription(campaign, sandbox, "alice")
    refresh_token = subscription.credential.reveal()
    # Refreshes that fail now and then, saves that always do: the fan gives up after passing errors, and keeps
    # the last rotated token for Retry failed (a delivered fan's is deleted).
    sandbox.faults(error_rate=0.5, seed=2, errors_matching="spotify:album:")

    engine.deliver_campaign(campaign.pk)

    rotated = Credential.objects.get(pk=subscription.pk).reveal()
    assert rotated != refresh_token
    assert set(DeliveryAttempt.objects.values_list("call", flat=True)) == {"refresh", "save"}, "both failed"
    assert caplog.records, "logging was captured"
    for secret in (refresh_token, rotated):
        assert secret not in caplog.text


def test_a_batchs_attempts_written_again_are_not_doubled(sandbox, campaign):
    """After a dropped connection the engine writes a batch's record again, not knowing whether the first write
    was committed: the attempts share their time, and the same attempt is not inserted twice."""
    subscription = make_subscription(campaign, sandbox, "alice")
    attempts, at = [bulk.Attempt(subscription.pk, "save", "delivered", 200, "")], timezone.now()

    bulk.insert_attempts(attempts, at)
    bulk.insert_attempts(attempts, at)
    assert DeliveryAttempt.objects.filter(subscription=subscription).count() == 1

    bulk.insert_attempts(attempts, at + dt.timedelta(seconds=1))  # a later attempt is one more
    assert DeliveryAttempt.objects.filter(subscription=subscription).count() == 2
