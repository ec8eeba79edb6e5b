"""A pre-save that closes without a save (the delivery engine moves the campaign's status with an UPDATE: Deliver
now, the release-time run, the campaign done) closes on its page at once, and a page another process still holds
can't start a sign-in for it: the start reads the status from the database and shows the closed page."""

import html

import pytest
from django.core.cache import caches
from django.urls import reverse
from django_q.models import OrmQ

from delivery import engine, tasks
from fans.models import Subscription
from releases.models import Campaign
from tests.conftest import make_campaign, make_subscription, wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # the pages are forgotten once the change is committed

PRESAVE_BUTTON = 'action="/first-light/presave/spotify/"'


@pytest.fixture(autouse=True)
def empty_page_cache():
    caches["pages"].clear()


def page(client) -> str:
    return html.unescape(client.get(reverse("fans:campaign", args=["first-light"])).content.decode())


def assert_closed(response) -> None:
    assert response.status_code == 410, response.get("Location")
    assert "This pre-save has closed" in html.unescape(response.content.decode())
    assert "Location" not in response


def test_deliver_now_closes_the_cached_page_and_its_buttons_at_once(client, staff_client, sandbox):
    campaign = make_campaign()  # out in two weeks, fires at one instant: delivering ends the pre-save
    make_subscription(campaign, sandbox, "alice")
    fan = client.__class__()
    assert PRESAVE_BUTTON in page(fan)  # cached

    staff_client.post(reverse("admin:releases_campaign_deliver_now", args=[campaign.pk]))
    task = OrmQ.objects.get()
    assert task.func() == "delivery.tasks.deliver_campaign"
    tasks.deliver_campaign(*task.args(), **task.kwargs())  # what the worker runs, here in this process

    assert Subscription.objects.get(campaign=campaign).status == "delivered"
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert PRESAVE_BUTTON not in page(fan)
    assert_closed(fan.post(reverse("fans:presave", args=[campaign.slug, "spotify"])))


def test_each_status_the_engine_sets_reaches_the_page(client, sandbox):
    campaign = make_campaign()
    assert PRESAVE_BUTTON in page(client)

    Campaign.objects.filter(pk=campaign.pk).set_status(Campaign.Status.DELIVERING)
    assert PRESAVE_BUTTON not in page(client)

    campaign.release.release_date = campaign.release.release_date.replace(year=campaign.release.release_date.year + 1)
    campaign.release.save()  # postponed: back to live (releases/signals.py)
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.LIVE
    assert PRESAVE_BUTTON in page(client)

    Campaign.objects.filter(pk=campaign.pk).set_status(Campaign.Status.DELIVERING)
    assert engine.finish_campaigns([Campaign.objects.get(pk=campaign.pk)]) == 1
    assert PRESAVE_BUTTON not in page(client)


def test_a_page_another_process_still_holds_starts_no_sign_in_once_a_worker_delivered(
    client, staff_client, sandbox, start_worker
):
    """Without Redis each process keeps its own pages: the worker's change can't drop this process's copy, which
    goes on showing the buttons for up to PAGE_CACHE_SECONDS; pressing one shows the closed page, not a sign-in."""
    campaign = make_campaign()
    make_subscription(campaign, sandbox, "alice")
    assert PRESAVE_BUTTON in page(client)
    start_worker()

    staff_client.post(reverse("admin:releases_campaign_deliver_now", args=[campaign.pk]))
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE,
        timeout=60,
        message="the worker to deliver",
    )

    assert PRESAVE_BUTTON in page(client), "this process's copy, as the test expects without Redis"
    assert_closed(client.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), {"email_opt_in": "1"}))
    assert not client.session.get("fans.pending_authorizations")
