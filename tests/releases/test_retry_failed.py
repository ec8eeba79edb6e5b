"""Retry failed against failures a real engine run made: the ones it gave up on come back, revoked ones don't."""

import pytest
from django.urls import reverse

from delivery import engine
from delivery.sandbox import demo_catalog
from fans.models import Subscription
from tests.conftest import make_campaign, make_subscription, wait_for

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"


@pytest.mark.django_db(transaction=True)
def test_failure_the_engine_gave_up_on_is_delivered_by_retry_failed_and_a_revoked_one_is_not(
    staff_client, sandbox, start_worker, settings
):
    settings.DELIVERY_MAX_ATTEMPTS = 2
    campaign = make_campaign()
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
    assert staff_client.get(url).context["retryable"] == 1
    start_worker()
    response = staff_client.post(url, follow=True)

    assert "Re-queued 1 failed subscription(s)" in response.content.decode()
    wait_for(
        lambda: Subscription.objects.get(pk=alice.pk).status == "delivered",
        timeout=60,
        message="the worker to deliver the retried failure",
    )
    assert sandbox.library("alice")["saved"] == [ALBUM_URI]
    bob.refresh_from_db()
    assert (bob.status, bob.attempts) == ("revoked", 1)
    assert sandbox.writes("bob") == []
