"""Deliver now from the admin: the confirm page, the permission, the action, and a real worker delivering."""

import datetime as dt
import html

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_q.models import OrmQ

from delivery import scheduling
from delivery.sandbox import demo_catalog
from fans.models import Fan, Subscription
from releases.models import Campaign
from tests.conftest import make_campaign, make_subscription, wait_for

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"
CHANGELIST = reverse("admin:releases_campaign_changelist")


def text(response) -> str:
    return html.unescape(response.content.decode())


def deliver_now_url(campaign: Campaign) -> str:
    return reverse("admin:releases_campaign_deliver_now", args=[campaign.pk])


@pytest.fixture
def manager_without_deliver(django_user_model):
    """Staff who may edit campaigns but not start a delivery."""
    user = django_user_model.objects.create_user("max", "max@label.test", "staff-password-2", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="releases", codename__in=["view_campaign", "change_campaign"])
    )
    return user


@pytest.mark.django_db(transaction=True)
def test_staff_delivers_now_and_a_real_worker_saves_each_album_once(staff_client, sandbox, start_worker):
    campaign = make_campaign()
    for user in ("alice", "bob"):
        make_subscription(campaign, sandbox, user)
    start_worker()

    confirm = staff_client.get(deliver_now_url(campaign))
    assert confirm.status_code == 200
    assert confirm.context["pending"] == 2
    assert "Pending pre-saves to deliver: <strong>2</strong>" in text(confirm)

    response = staff_client.post(deliver_now_url(campaign), follow=True)

    assert response.redirect_chain == [(reverse("admin:releases_campaign_change", args=[campaign.pk]), 302)]
    assert "started for 2 pending pre-saves due now." in text(response)
    wait_for(
        lambda: not Subscription.objects.filter(campaign=campaign, status="pending").exists(),
        timeout=60,
        message="the worker to deliver",
    )
    assert set(Subscription.objects.filter(campaign=campaign).values_list("status", flat=True)) == {"delivered"}
    for user in ("alice", "bob"):
        assert sandbox.library(user)["saved"] == [ALBUM_URI]
        assert [write["uri"] for write in sandbox.writes(user)] == [ALBUM_URI], f"{user} saved once"


@pytest.mark.django_db
def test_get_of_the_confirm_page_changes_nothing(staff_client, campaign):
    response = staff_client.get(deliver_now_url(campaign))

    assert response.status_code == 200
    assert "Yes, deliver now" in text(response)
    assert not OrmQ.objects.exists()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.LIVE


@pytest.mark.django_db
def test_the_confirm_page_warns_that_delivering_before_the_release_closes_the_pre_save(staff_client, db):
    before = make_campaign(slug="before")  # out in two weeks, fires at one instant
    after = make_campaign(slug="after", release_in=-dt.timedelta(minutes=5))
    per_market = make_campaign(slug="per-market", firing=Campaign.Firing.PER_MARKET)

    assert "This closes the pre-save before its release time." in text(staff_client.get(deliver_now_url(before)))
    assert "closes the pre-save" not in text(staff_client.get(deliver_now_url(after)))
    per_market_page = " ".join(text(staff_client.get(deliver_now_url(per_market))).split())
    assert "closes the pre-save" not in per_market_page
    assert "Fans in markets still to come can go on pre-saving." in per_market_page


@pytest.mark.django_db
def test_user_without_the_deliver_permission_gets_403(client, campaign, manager_without_deliver):
    client.force_login(manager_without_deliver)

    assert client.get(deliver_now_url(campaign)).status_code == 403
    assert client.post(deliver_now_url(campaign)).status_code == 403
    assert not OrmQ.objects.exists()

    change = client.get(reverse("admin:releases_campaign_change", args=[campaign.pk]))
    assert change.status_code == 200 and deliver_now_url(campaign) not in text(change)
    assert "deliver_now_action" not in client.get(CHANGELIST).content.decode(), "the action is not offered"


@pytest.mark.django_db
def test_the_deliver_permission_lets_a_manager_deliver(client, campaign, manager_without_deliver):
    manager_without_deliver.user_permissions.add(Permission.objects.get(codename="deliver_campaign"))
    client.force_login(manager_without_deliver)

    response = client.post(deliver_now_url(campaign))

    assert response.status_code == 302
    assert OrmQ.objects.count() == 1


@pytest.mark.django_db
def test_a_draft_cannot_be_delivered(staff_client, db):
    draft = make_campaign(status="draft")

    confirm = staff_client.get(deliver_now_url(draft))
    assert "a draft campaign can't be delivered" in text(confirm)
    assert "Yes, deliver now" not in text(confirm)

    response = staff_client.post(deliver_now_url(draft), follow=True)
    assert "A draft campaign can't be delivered; make it live first." in text(response)
    assert not OrmQ.objects.exists()


@pytest.mark.django_db
def test_the_campaign_list_offers_no_bulk_deliver_now(staff_client, campaign):
    """Delivering early closes a campaign's pre-saves for good: that is asked on a confirm page, one campaign at a
    time. The list once had an action doing it at once for every ticked campaign; posting its name now does
    nothing."""
    assert "deliver_now_action" not in text(staff_client.get(CHANGELIST))

    response = staff_client.post(
        CHANGELIST, {"action": "deliver_now_action", "_selected_action": [campaign.pk]}, follow=True
    )

    assert response.status_code == 200
    assert not OrmQ.objects.exists()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.LIVE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("persona", "changelist", "action"),
    [
        ("superuser", reverse("admin:releases_artist_changelist"), "delete_selected"),  # neither role deletes artists
    ],
)
def test_an_action_on_ids_that_are_not_ids_is_a_message_not_a_500(
    request, client, campaign, persona, changelist, action
):
    client.force_login(request.getfixturevalue(persona))
    response = client.post(changelist, {"action": action, "_selected_action": [campaign.pk, "1 OR 1=1"]}, follow=True)

    assert response.status_code == 200
    assert "No such items: nothing was changed." in text(response)
    assert not OrmQ.objects.exists()
    assert Campaign.objects.filter(pk=campaign.pk).exists()


@pytest.mark.django_db
def test_confirm_page_for_a_missing_campaign_redirects_with_a_message(staff_client):
    response = staff_client.get(reverse("admin:releases_campaign_deliver_now", args=[999999]), follow=True)
    assert response.status_code == 200
    assert "doesn’t exist" in text(response)


@pytest.mark.django_db
def test_deliver_now_on_a_done_campaign_queues_nothing_and_says_so(staff_client, db):
    """A done campaign with nothing pending: a run would mark it done again and mail the release-day report twice."""
    from fans.models import Fan

    campaign = make_campaign(status=Campaign.Status.DONE, release_in=-dt.timedelta(hours=1))
    fan = Fan.objects.create(service="spotify", service_user_id="ada")
    Subscription.objects.create(fan=fan, campaign=campaign, status=Subscription.Status.DELIVERED)

    confirm = staff_client.get(deliver_now_url(campaign))
    assert "is done and no pre-save is pending. Every pre-save was delivered, failed or" in text(confirm)
    assert "Yes, deliver now" not in text(confirm)

    response = staff_client.post(deliver_now_url(campaign), follow=True)

    assert "Nothing to deliver: “First Light (first-light)” is done, no pre-save is pending." in text(response)
    assert "started" not in text(response)
    assert not OrmQ.objects.exists()  # no run, so no second report
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE


@pytest.mark.django_db(transaction=True)
def test_a_double_submitted_deliver_now_queues_one_run_and_records_one_entry(label_staff, db):
    """Three POSTs at once (a double click, a resent form, a second tab): one run queued, one audit entry, and
    the others told it was queued already."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection
    from django.test import Client

    from releases.models import AuditEntry

    campaign = make_campaign()
    barrier = Barrier(3)

    def press() -> str:
        client = Client()
        client.force_login(label_staff)
        barrier.wait()
        try:
            return text(client.post(deliver_now_url(campaign), follow=True))
        finally:
            connection.close()

    with ThreadPoolExecutor(3) as pool:
        pages = list(pool.map(lambda _: press(), range(3)))

    assert sum("Delivery of “First Light (first-light)” started" in page for page in pages) == 1
    assert sum("was already queued a moment ago; nothing more was queued" in page for page in pages) == 2
    assert OrmQ.objects.count() == 1
    assert AuditEntry.objects.filter(action=AuditEntry.Action.DELIVER_NOW).count() == 1


def test_deliver_now_on_a_per_market_campaign_reports_and_audits_the_fans_due_now(staff_client, db):
    """The release is out in Japan (UTC+9) and still to come in the UK: Deliver now delivers the Japanese fans
    and leaves the British ones for their time; it says so, and the audit log counts the fans due now."""
    from django.utils import timezone

    from fans.models import Fan
    from releases.models import AuditEntry

    campaign = make_campaign(release_in=dt.timedelta(hours=3), firing=Campaign.Firing.PER_MARKET)
    now = timezone.now()

    def fans(market: str, count: int, **fields) -> None:
        for _ in range(count):
            fan = Fan.objects.create(service="spotify", service_user_id=f"fan{Fan.objects.count()}")
            Subscription.objects.create(fan=fan, campaign=campaign, market=market, **fields)

    fans("JP", 3)  # not planned yet: their market's time has come
    fans("JP", 1, next_attempt_at=now - dt.timedelta(hours=6))  # planned by an earlier run
    fans("JP", 1, next_attempt_at=now - dt.timedelta(hours=6), lease_expires_at=now + dt.timedelta(minutes=1))
    fans("JP", 1, status=Subscription.Status.DELIVERED)
    fans("GB", 2)  # not planned: their market's time is 3 hours away
    fans("GB", 1, next_attempt_at=now + dt.timedelta(hours=3))

    response = staff_client.post(deliver_now_url(campaign), follow=True)

    assert "started for 4 pending pre-saves due now; 3 wait for their market's release time." in text(response)
    entry = AuditEntry.objects.get(action=AuditEntry.Action.DELIVER_NOW)
    assert entry.rows == 4 and entry.details["later"] == 3
    assert OrmQ.objects.count() == 1


def test_after_deliver_now_the_page_counts_pre_saves_and_shows_no_schedule_still_to_come(staff_client, db):
    """One fan due: "1 pending pre-save", the console's word for a fan's pre-save, not "subscription(s)". Once the
    run is under way, and once it is done, the panel no longer says "Delivery scheduled: <time>", which read as
    still to come; one fan waiting for their market is "1 waits"."""
    campaign = make_campaign()
    Subscription.objects.create(fan=Fan.objects.create(service="spotify", service_user_id="alice"), campaign=campaign)
    scheduling.sync_schedule(campaign)
    page = reverse("admin:releases_campaign_change", args=[campaign.pk])
    assert "Delivery scheduled:" in text(staff_client.get(page))

    response = staff_client.post(deliver_now_url(campaign), follow=True)

    assert "Delivery of “First Light (first-light)” started for 1 pending pre-save due now." in text(response)
    assert "Delivery scheduled" not in text(response), "the run is under way"
    Subscription.objects.update(status=Subscription.Status.DELIVERED)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DONE)
    done = " ".join(text(staff_client.get(page)).split())
    assert "Delivery done:" in done and "Delivery scheduled" not in done


def test_deliver_now_says_one_fan_waits_for_their_market(staff_client, db):
    campaign = make_campaign(release_in=dt.timedelta(hours=3), firing=Campaign.Firing.PER_MARKET)
    for market in ("JP", "GB"):
        fan = Fan.objects.create(service="spotify", service_user_id=f"fan-{market}")
        Subscription.objects.create(fan=fan, campaign=campaign, market=market)

    response = staff_client.post(deliver_now_url(campaign), follow=True)

    assert "started for 1 pending pre-save due now; 1 waits for their market's release time." in text(response)
