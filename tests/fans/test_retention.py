"""The daily retention task forgets each kind of personal data once its time is past, and nothing sooner."""

import datetime as dt
import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from delivery.models import DeliveryAttempt
from fans import retention
from fans.models import ConsentRecord, Credential, EmailSignup, FunnelEvent, Subscription
from tests.conftest import make_campaign, make_consent, make_subscription

pytestmark = pytest.mark.django_db


def ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def settle(subscription, status: str, days_ago: float) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(status=status, updated_at=ago(days_ago))


def test_each_kind_of_personal_data_is_forgotten_once_its_time_is_past_and_not_before(sandbox, settings):
    settings.RETENTION_CONSENT_NETWORK_DAYS = 90
    settings.RETENTION_SETTLED_TOKEN_DAYS = 14
    settings.RETENTION_VISITOR_HASH_DAYS = 30
    settings.RETENTION_ATTEMPT_DAYS = 180
    settings.EMAIL_CONFIRM_LINK_MAX_AGE = 14 * 86_400
    old = make_campaign(slug="long-out", release_in=-dt.timedelta(days=100))
    recent = make_campaign(slug="just-out", release_in=-dt.timedelta(days=10))
    network = {"ip_address": "198.51.100.23", "user_agent": "Mozilla/5.0 (kept for proof)"}
    spent = make_consent(make_subscription(old, sandbox, "alice"), **network)
    fresh = make_consent(make_subscription(recent, sandbox, "bob"), **network)
    delivered_long_ago = make_subscription(recent, sandbox, "chloe")
    settle(delivered_long_ago, Subscription.Status.DELIVERED, 20)
    failed_lately = make_subscription(recent, sandbox, "alice")
    settle(failed_lately, Subscription.Status.FAILED, 3)
    waiting = make_subscription(old, sandbox, "bob")
    Subscription.objects.filter(pk=waiting.pk).update(updated_at=ago(60))  # pending: its token is still needed
    for days, visitor in ((40, "a" * 32), (5, "b" * 32)):
        FunnelEvent.objects.create(campaign=recent, kind="view", visitor=visitor, created_at=ago(days))
    for days in (200, 20):
        DeliveryAttempt.objects.create(subscription=waiting, at=ago(days), call="save", outcome="retry")
    EmailSignup.objects.create(campaign=recent, email="never@fan.test", wording_version="v", created_at=ago(15))
    expired = SessionStore()
    expired["x"] = 1
    expired.create()
    Session.objects.filter(session_key=expired.session_key).update(expire_date=ago(1))
    live = SessionStore()
    live["x"] = 1
    live.create()

    result = retention.forget_expired()

    assert ConsentRecord.objects.filter(pk=spent.pk, ip_address=None, user_agent="").exists()
    assert ConsentRecord.objects.filter(pk=fresh.pk, **network).exists()
    assert ConsentRecord.objects.get(pk=spent.pk).service_user_id == "alice", "what was agreed to, and by whom, stays"
    kept = Credential.objects.values_list("subscription__fan__service_user_id", "subscription__campaign__slug")
    assert set(kept) == {
        ("alice", "long-out"),  # pending
        ("bob", "just-out"),
        ("alice", "just-out"),  # failed three days ago: Retry failed may still take it back
        ("bob", "long-out"),  # pending two months: still to deliver
    }
    assert sorted(FunnelEvent.objects.values_list("visitor", flat=True)) == ["", "b" * 32]
    assert FunnelEvent.objects.count() == 2, "the counts stay"
    assert [a.at.date() for a in DeliveryAttempt.objects.all()] == [ago(20).date()]
    assert not EmailSignup.objects.exists()
    assert list(Session.objects.values_list("session_key", flat=True)) == [live.session_key]
    assert "deleted 1 settled pre-save token(s)" in result and "forgot 1 unconfirmed email sign-up(s)" in result


def test_retry_failed_leaves_a_failure_whose_token_is_forgotten(sandbox, settings):
    """Past RETENTION_SETTLED_TOKEN_DAYS a failure has no token: re-queuing it could only end in revoked."""
    from delivery import engine
    from releases import retry

    campaign = make_campaign(release_in=-dt.timedelta(days=30))
    failure = make_subscription(campaign, sandbox, "alice")
    Subscription.objects.filter(pk=failure.pk).update(
        status=Subscription.Status.FAILED,
        attempts=settings.DELIVERY_MAX_ATTEMPTS,
        last_error=f"{engine.GAVE_UP} 5 attempts: Spotify had a server error (503).",
    )
    assert retry.retryable_count(campaign) == 1

    Credential.objects.all().delete()  # what the retention task does once the time is past

    assert retry.retryable_count(campaign) == 0


def test_a_daily_schedule_runs_the_retention_task_in_place_of_the_sign_ups_own():
    migration = importlib.import_module("fans.migrations.0016_retention_schedule")
    Schedule.objects.filter(name__in=[migration.NAME, migration.OLD_NAME]).delete()
    Schedule.objects.create(name=migration.OLD_NAME, func="fans.signups.forget_unconfirmed", schedule_type="D")

    migration.create_schedule(django_apps, None)

    schedule = Schedule.objects.get(name="fans-retention")
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "fans.retention.forget_expired",
        Schedule.DAILY,
        -1,
    )
    assert not Schedule.objects.filter(name=migration.OLD_NAME).exists()


def test_the_privacy_notice_states_each_period_as_configured(client, settings):
    settings.RETENTION_CONSENT_NETWORK_DAYS = 45
    settings.RETENTION_SETTLED_TOKEN_DAYS = 7

    page = client.get(reverse("fans:privacy_notice")).content.decode().replace("&#x27;", "'")

    assert "How long we keep it" in page
    assert "proof of your consent: 45 days after the release" in page
    assert "if it failed and could be tried again, 7 days more" in page


def test_an_unconfirmed_sign_up_forgotten_leaves_no_address_in_the_admin_history(settings, superuser):
    from django.contrib.admin.models import CHANGE, LogEntry

    settings.EMAIL_CONFIRM_LINK_MAX_AGE = 14 * 86_400
    campaign = make_campaign(slug="just-out", release_in=-dt.timedelta(days=10))
    old = EmailSignup.objects.create(campaign=campaign, email="never@fan.test", wording_version="v", created_at=ago(15))
    new = EmailSignup.objects.create(campaign=campaign, email="lately@fan.test", wording_version="v", created_at=ago(1))
    LogEntry.objects.log_actions(superuser.pk, [old, new], CHANGE)

    retention.forget_expired()

    names = dict(LogEntry.objects.values_list("object_id", "object_repr"))
    assert names == {str(old.pk): "(erased)", str(new.pk): str(new)}
