"""Retry failed against failures a real engine run made: the ones it gave up on come back, revoked ones don't."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django_q.models import OrmQ

from delivery import engine, scheduling
from delivery.sandbox import demo_catalog
from fans.models import Subscription
from releases.models import Campaign
from tests.conftest import make_campaign, make_subscription, wait_for

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"


@pytest.mark.django_db(transaction=True)
def test_failure_the_engine_gave_up_on_is_delivered_by_retry_failed_and_a_revoked_one_is_not(
    staff_client, sandbox, start_worker, settings
):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    campaign = make_campaign(release_in=-dt.timedelta(minutes=5))
    alice = make_subscription(campaign, sandbox, "alice")
    sandbox.faults(error_rate=1.0)  # every call a 5xx until alice's attempts run out
    engine.deliver_campaign(campaign.pk)
    sandbox.faults(error_rate=0.0)
    bob = make_subscription(campaign, sandbox, "bob")
    sandbox.control("POST", "users/bob/revoke")
    engine.deliver_campaign(campaign.pk, reopen=True)  # done since alice failed: Deliver now
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.status, alice.attempts) == ("failed", 2)
    assert alice.last_error.startswith(engine.GAVE_UP)
    assert bob.status == "revoked"

    url = reverse("admin:releases_campaign_retry_failed", args=[campaign.pk])
    confirm = staff_client.get(url)
    assert confirm.context["retryable"] == 1
    assert "1 pre-save failed." in confirm.content.decode()
    start_worker()
    response = staff_client.post(url, follow=True)

    assert "Re-queued 1 failed pre-save for delivery." in response.content.decode()
    wait_for(
        lambda: Subscription.objects.get(pk=alice.pk).status == "delivered",
        timeout=60,
        message="the worker to deliver the retried failure",
    )
    assert sandbox.library("alice")["saved"] == [ALBUM_URI]
    bob.refresh_from_db()
    assert (bob.status, bob.attempts) == ("revoked", 1)
    assert sandbox.writes("bob") == []


@pytest.mark.django_db
def test_retry_failed_before_the_release_time_waits_for_it(
    staff_client, sandbox, settings, django_capture_on_commit_callbacks
):
    """Delivered early with Deliver now, alice's save failed; Retry failed pressed two hours before the release
    time delivers nothing early: the campaign is live again, takes pre-saves, and its schedule delivers alice at
    the release time."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign(release_in=dt.timedelta(hours=2))
    release_at = campaign.release.release_at
    alice = make_subscription(campaign, sandbox, "alice")
    sandbox.faults(error_rate=1.0)
    engine.deliver_campaign(campaign.pk, reopen=True)  # Deliver now, early
    sandbox.faults(error_rate=0.0)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert Subscription.objects.get(pk=alice.pk).status == "failed"

    url = reverse("admin:releases_campaign_retry_failed", args=[campaign.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, follow=True)

    assert "Re-queued 1 failed pre-save; they wait for the release time" in response.content.decode()
    campaign = Campaign.objects.select_related("release").get(pk=campaign.pk)
    assert campaign.status == Campaign.Status.LIVE and campaign.accepts_presaves_in()
    assert not OrmQ.objects.exists(), "no run queued before the release time"
    assert scheduling.scheduled_time(campaign) == release_at
    alice.refresh_from_db()
    assert (alice.status, alice.attempts, alice.next_attempt_at) == ("pending", 0, release_at)
    assert sandbox.writes("alice") == []

    with time_machine.travel(release_at + dt.timedelta(seconds=5), tick=True):
        engine.deliver_campaign(campaign.pk, on_schedule=True)  # the release-time schedule's run
    assert Subscription.objects.get(pk=alice.pk).status == "delivered"
    assert sandbox.library("alice")["saved"] == [ALBUM_URI]
