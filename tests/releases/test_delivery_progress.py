"""The live progress partial during a real delivery: a django-q2 worker delivering to the sandbox over HTTP."""

import datetime as dt
import re
import time

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from delivery.ratelimit import limiter_for
from fans.models import Credential, Fan, FunnelEvent, Subscription
from releases.models import Campaign
from tests.conftest import make_campaign, make_subscription

pytestmark = pytest.mark.django_db(transaction=True)
SLOW = {"DELIVERY_CONCURRENCY": "2", "DELIVERY_BATCH_SIZE": "4", "DELIVERY_PARALLEL_RUNS": "1"}


def seed_fans(campaign, sandbox, count: int) -> None:
    for i in range(count):
        user = f"progress{i:02d}"
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": "GB"})
        make_subscription(campaign, sandbox, user)


def broken_token_fan(campaign) -> Subscription:
    """A fan whose stored token the service does not know: delivery ends revoked, never retried."""
    fan = Fan.objects.create(service="spotify", service_user_id="ghost", display_name="Ghost")
    subscription = Subscription.objects.create(fan=fan, campaign=campaign)
    credential = Credential(subscription=subscription, authorized_at=subscription.created_at)
    credential.store("not-a-token-the-sandbox-issued")
    credential.save()
    return subscription


def figures(html: str) -> dict:
    done = int(re.search(r'data-done="(\d+)"', html).group(1))
    total = int(re.search(r'data-total="(\d+)"', html).group(1))
    running = re.search(r'data-running="(\w+)"', html).group(1) == "yes"
    failures = re.search(r'class="progress-failures">(\d+)<', html)
    return {"done": done, "total": total, "running": running, "failures": int(failures.group(1)) if failures else 0}


def test_progress_partial_counts_up_during_a_real_delivery(staff_client, sandbox, start_worker):
    campaign = make_campaign()
    seed_fans(campaign, sandbox, 20)
    broken_token_fan(campaign)
    sandbox.faults(latency_ms=150)
    start_worker(**SLOW)
    url = reverse("admin:releases_campaign_progress", args=[campaign.pk])

    staff_client.post(reverse("admin:releases_campaign_deliver_now", args=[campaign.pk]))
    samples, previous = [], {}
    while not samples or samples[-1]["running"]:
        assert len(samples) < 400, "the delivery never finished"
        html = staff_client.get(url, previous, HTTP_HX_REQUEST="true").content.decode()
        samples.append(figures(html))
        if samples[-1]["running"]:  # the next request carries this one's count and time, as htmx does
            previous = dict(re.findall(r"[?&;](\w+)=([\d.]+)", re.search(r'hx-get="([^"]+)"', html).group(1)))
            assert "/s" in html or "measuring the rate" in html
        time.sleep(0.25)

    dones = [s["done"] for s in samples]
    assert dones == sorted(dones), "done only goes up"
    assert any(0 < s["done"] < 21 and s["running"] for s in samples), f"seen mid-way: {dones}"
    assert samples[-1] == {"done": 21, "total": 21, "running": False, "failures": 1}
    assert 'hx-trigger="every' not in html, "polling stops when the delivery is over"
    done = "<strong>Delivery done:</strong> 20 delivered, 0 failed, 1 revoked"
    assert done in " ".join(html.split())
    page = staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()
    assert done in " ".join(page.split()) and "Delivering:" not in page
    assert Subscription.objects.filter(campaign=campaign, status="delivered").count() == 20


@pytest.mark.parametrize(
    "query",
    [
        {"done": "-" + "9" * 400, "at": "now-1"},  # an int too large for a float
        {"done": "1", "at": "nan"},
        {"done": "1", "at": "inf"},
        {"done": "x", "at": "1e999"},
        {"done": "", "at": ""},
    ],
)
def test_a_forged_previous_reading_is_ignored_never_a_500(staff_client, query):
    campaign = make_campaign()
    if query["at"] == "now-1":
        query = {**query, "at": str(time.time() - 1)}
    response = staff_client.get(reverse("admin:releases_campaign_progress", args=[campaign.pk]), query)
    assert response.status_code == 200
    assert figures(response.content.decode())["total"] == 0


def test_the_progress_partial_needs_a_staff_login(client):
    campaign = make_campaign()
    response = client.get(reverse("admin:releases_campaign_progress", args=[campaign.pk]))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_progress_says_when_a_service_has_every_worker_waiting(staff_client, db):
    """A 429 with a long Retry-After, or our app's credentials refused: staff see that the service is paused and
    until when, rather than a count that no longer moves."""
    campaign = make_campaign(status="delivering")
    url = reverse("admin:releases_campaign_progress", args=[campaign.pk])
    assert "is paused" not in staff_client.get(url, HTTP_HX_REQUEST="true").content.decode()

    limiter_for("spotify").pause(300)
    html = staff_client.get(url, HTTP_HX_REQUEST="true").content.decode()

    until = timezone.localtime(timezone.now() + dt.timedelta(seconds=300))
    assert "<strong>Spotify is paused:</strong> every worker waits until" in html
    assert "the workers' log names which" in " ".join(html.split()), "not the fans' errors: those in flight have none"
    assert until.strftime("%H:%M") in html or (until - dt.timedelta(seconds=1)).strftime("%H:%M") in html
    assert re.search(r"until\s+\d\d:\d\d:\d\d UTC,", html), "in UTC, as every time in the console says"


@pytest.mark.django_db
def test_a_finished_delivery_says_done_with_its_outcome_and_a_stopped_one_does_not(staff_client, db):
    """After Deliver now or a scheduled run: "Delivery done" with each outcome, not a generic count; a campaign
    marked done that still has fans pending (a run that stopped) says how far it got instead."""
    campaign = make_campaign(status="done")
    for i, status in enumerate(["delivered"] * 3 + ["failed"] * 2 + ["revoked"]):
        fan = Fan.objects.create(service="spotify", service_user_id=f"fan{i}")
        Subscription.objects.create(fan=fan, campaign=campaign, status=status)
    url = reverse("admin:releases_campaign_progress", args=[campaign.pk])

    html = " ".join(staff_client.get(url, HTTP_HX_REQUEST="true").content.decode().split())

    assert "<strong>Delivery done:</strong> 3 delivered, 2 failed, 1 revoked" in html
    assert "hx-get" not in html and "Delivering:" not in html
    Subscription.objects.create(fan=Fan.objects.create(service="spotify", service_user_id="late"), campaign=campaign)
    html = " ".join(staff_client.get(url, HTTP_HX_REQUEST="true").content.decode().split())
    assert "Delivery done" not in html and "Delivery: 6 of 7 done" in re.sub(r"<[^>]+>", "", html)


@pytest.mark.django_db
def test_a_finished_deliverys_bar_is_labelled_done_on_the_campaign_page(staff_client, db):
    """Screen readers read the bar's label: "Delivery done" once every fan's outcome is in, not "progress"."""
    campaign = make_campaign(status="done")
    for i, status in enumerate(["delivered", "failed"]):
        fan = Fan.objects.create(service="spotify", service_user_id=f"fan{i}")
        Subscription.objects.create(fan=fan, campaign=campaign, status=status)

    html = staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()

    assert '<progress max="2" value="2" aria-label="Delivery done">' in html
    assert "Delivery progress" not in html
    Subscription.objects.create(fan=Fan.objects.create(service="spotify", service_user_id="late"), campaign=campaign)
    html = staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()
    assert '<progress max="3" value="2" aria-label="Delivery progress">' in html


@pytest.mark.django_db
def test_each_progress_refresh_brings_the_funnel_with_it(staff_client, db):
    """The funnel's Delivered step counts up with the KPIs: each refresh sends the funnel out of band (htmx swaps
    it in by its id), while the change page draws it in place."""
    campaign = make_campaign(status="delivering")
    FunnelEvent.objects.bulk_create([FunnelEvent(campaign=campaign, kind="view") for _ in range(4)])
    for i, status in enumerate(["delivered", "delivered", "pending"]):
        fan = Fan.objects.create(service="spotify", service_user_id=f"fan{i}")
        Subscription.objects.create(fan=fan, campaign=campaign, status=status)
    url = reverse("admin:releases_campaign_progress", args=[campaign.pk])

    html = " ".join(staff_client.get(url, HTTP_HX_REQUEST="true").content.decode().split())

    assert '<section id="campaign-funnel" hx-swap-oob="true">' in html
    assert re.search(r'<th scope="row">Page views</th><td>4</td>', html)
    assert re.search(r'<th scope="row">Delivered</th><td>2</td>', html)
    page = staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()
    assert page.count('id="campaign-funnel"') == 1 and "hx-swap-oob" not in page


@pytest.mark.django_db
def test_before_any_delivery_a_fan_who_cancelled_shows_no_progress_bar(staff_client, sandbox):
    campaign = make_campaign()
    make_subscription(campaign, sandbox, "alice")
    cancelled = make_subscription(campaign, sandbox, "bob")
    Subscription.objects.filter(pk=cancelled.pk).update(status=Subscription.Status.REVOKED)
    url = reverse("admin:releases_campaign_progress", args=[campaign.pk])

    html = staff_client.get(url, HTTP_HX_REQUEST="true").content.decode()

    assert "<progress" not in html and "not delivered" not in html
    assert re.search(r'<div class="kpi-revoked"><dt>Revoked</dt><dd>1</dd>', html), "the count stays in the KPIs"


@pytest.mark.django_db
def test_time_left_counts_only_the_fans_due_and_says_who_waits_for_their_market(staff_client, db):
    """Per market, fans whose market has not reached the release time aren't work yet: the estimate leaves them
    out, and the partial says how many wait and for which market next."""
    from releases.progress import Reading, progress

    # Out in Tokyo (local 3 hours from now there is 6 hours ago in UTC), not yet in New York nor London.
    campaign = make_campaign(status="delivering", firing="per_market", release_in=dt.timedelta(hours=3))
    for i, (market, status) in enumerate([("JP", "delivered")] * 2 + [("JP", "pending")] * 4 + [("US", "pending")] * 5):
        fan = Fan.objects.create(service="spotify", service_user_id=f"fan{i}")
        Subscription.objects.create(fan=fan, campaign=campaign, market=market, status=status)
    fan = Fan.objects.create(service="spotify", service_user_id="unknown-market")  # the default market, US
    Subscription.objects.create(fan=fan, campaign=campaign)

    reading = progress(campaign, Reading(0, time.time() - 2))

    assert reading.pending == 10 and reading.waiting == 6 and reading.due == 4
    assert reading.seconds_left == pytest.approx(4 / reading.rate)
    us_time = campaign.firing_time("US")
    assert reading.next_market == ("US", us_time)
    url = reverse("admin:releases_campaign_progress", args=[campaign.pk])
    html = " ".join(staff_client.get(url, {"done": 0, "at": time.time() - 2}).content.decode().split())
    assert "(for the 4 pre-saves due now)" in html
    assert f"6 pre-saves wait for their market's release time (next: US at {us_time:%Y-%m-%d %H:%M} UTC)" in html
    with CaptureQueriesContext(connection) as refresh:  # the partial's next refreshes reuse the count a while
        assert progress(campaign).waiting == 6
    assert not [query for query in refresh if '"market"' in query["sql"]]


def polling(html: str) -> str | None:
    """How often the progress element refreshes itself (its htmx trigger), None when it does not."""
    element = re.search(r'<div id="delivery-progress"[^>]*>', html).group(0)
    trigger = re.search(r'hx-trigger="every ([\d.]+s)"', element)
    return trigger.group(1) if trigger else None


def test_a_page_opened_before_the_release_time_notices_the_scheduled_run(staff_client, sandbox):
    """Opened before the schedule fires, the page has no run to follow: it starts polling, slowly, a few minutes
    before the release time and goes on once it is due, so that the run the schedule starts shows as it goes
    (the fast refresh takes over once it runs). It said "Pending 3, Delivered 0" a minute after the run."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    make_subscription(campaign, sandbox, "alice")
    page = reverse("admin:releases_campaign_change", args=[campaign.pk])
    url = reverse("admin:releases_campaign_progress", args=[campaign.pk])
    release_at = campaign.release.release_at

    assert polling(staff_client.get(page).content.decode()) is None, "an hour ahead: nothing to follow yet"
    with time_machine.travel(release_at - dt.timedelta(minutes=2)):
        assert polling(staff_client.get(page).content.decode()) == "10s"
    with time_machine.travel(release_at + dt.timedelta(seconds=30)):  # due, no worker has started it yet
        assert polling(staff_client.get(url, HTTP_HX_REQUEST="true").content.decode()) == "10s"
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DELIVERING)
        assert polling(staff_client.get(url, HTTP_HX_REQUEST="true").content.decode()) == "1.5s"
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DRAFT)
    with time_machine.travel(release_at - dt.timedelta(minutes=2)):
        assert polling(staff_client.get(page).content.decode()) is None, "a draft has no scheduled run"
