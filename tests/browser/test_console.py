"""The staff console in Chromium: the dashboard, the campaign page's charts, and the live progress bar
advancing during a real delivery (a django-q2 worker and the sandbox) without reloading the page."""

import os
from pathlib import Path

import pytest
from django.urls import reverse

from fans.models import FunnelEvent, Subscription
from tests.conftest import make_campaign, make_subscription
from tests.releases.personas import PASSWORD, member_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture
def console(django_db_setup, live_server, settings):
    """The live server, with label staff to log in as. List it before `page` (see test_presave_flow)."""
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.PUBLIC_BASE_URL = live_server.url
    member_of("Label staff", "lena")
    ARTIFACTS.mkdir(exist_ok=True)
    return live_server.url


def log_in(page, base: str) -> None:
    page.goto(base + reverse("admin:login"))
    page.fill("#id_username", "lena")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(base + reverse("admin:index"))


def test_dashboard_and_campaign_page_render_with_charts(console, page, sandbox):
    campaign = make_campaign(slug="glass-harbour")
    for user in ("alice", "bob"):
        make_subscription(campaign, sandbox, user)
    FunnelEvent.objects.bulk_create(
        [FunnelEvent(campaign=campaign, kind="view", utm_source="instagram", device="mobile") for _ in range(8)]
        + [FunnelEvent(campaign=campaign, kind="click") for _ in range(4)]
        + [FunnelEvent(campaign=campaign, kind="authorize", utm_source="instagram") for _ in range(2)]
    )
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, console)

    dashboard = page.locator("#dashboard")
    assert dashboard.get_by_role("heading", name="Live and upcoming campaigns").is_visible()
    assert dashboard.locator(".kpi-pending dd").inner_text() == "2"
    assert dashboard.get_by_role("link", name="Nova Lark — First Light").is_visible()
    page.screenshot(path=ARTIFACTS / "admin-dashboard.png", full_page=True)

    dashboard.get_by_role("link", name="Nova Lark — First Light").click()
    chart = page.locator("svg.chart")
    chart.wait_for(state="visible")
    assert chart.locator("rect.bar").count() == 30
    box = chart.bounding_box()
    assert box["width"] > 400 and box["height"] > 80, "the chart is drawn at a readable size"
    funnel = page.locator("table.funnel")
    assert "Page views" in funnel.inner_text() and "50%" in funnel.inner_text()
    assert "instagram" in page.locator(".breakdowns").inner_text()
    page.screenshot(path=ARTIFACTS / "admin-campaign-insights.png", full_page=True)


def test_the_console_fits_a_phone_s_width(console, page, sandbox):
    """On a phone, wide tables scroll inside their box (as Django's change lists do), not the whole page."""
    campaign = make_campaign(slug="glass-harbour")
    make_subscription(campaign, sandbox, "alice")
    FunnelEvent.objects.bulk_create(
        [FunnelEvent(campaign=campaign, kind="view", utm_source="a-long-newsletter-name", device="mobile")] * 3
    )
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, console)
    widths = {"dashboard": page.evaluate("document.documentElement.scrollWidth")}
    page.goto(console + reverse("admin:releases_campaign_change", args=[campaign.pk]))
    page.locator("svg.chart").wait_for(state="visible")
    widths["campaign page"] = page.evaluate("document.documentElement.scrollWidth")
    page.screenshot(path=ARTIFACTS / "admin-campaign-phone.png", full_page=True)

    assert widths == {"dashboard": 390, "campaign page": 390}


def test_progress_bar_advances_during_a_delivery_without_a_reload(console, page, sandbox, start_worker):
    campaign = make_campaign(slug="glass-harbour")
    for i in range(24):
        user = f"live{i:02d}"
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": "GB"})
        make_subscription(campaign, sandbox, user)
    sandbox.faults(latency_ms=200)
    start_worker(DELIVERY_CONCURRENCY="2", DELIVERY_BATCH_SIZE="4", DELIVERY_PARALLEL_RUNS="1")
    log_in(page, console)
    page.goto(console + reverse("admin:releases_campaign_change", args=[campaign.pk]))

    page.get_by_role("link", name="Deliver now").click()
    page.get_by_role("button", name="Yes, deliver now").click()
    page.wait_for_url(console + reverse("admin:releases_campaign_change", args=[campaign.pk]))
    page.evaluate("window.stillTheSamePage = true")
    progress = page.locator("#delivery-progress")

    page.wait_for_function(
        "() => { const p = document.querySelector('#delivery-progress');"
        " return p && +p.dataset.done > 0 && +p.dataset.done < +p.dataset.total }",
        timeout=60_000,
    )
    assert progress.locator("progress").is_visible()
    assert "time left" in progress.inner_text()
    page.screenshot(path=ARTIFACTS / "admin-delivery-progress.png", full_page=True)
    page.wait_for_function(
        "() => document.querySelector('#delivery-progress').dataset.running === 'no'", timeout=90_000
    )

    assert page.evaluate("window.stillTheSamePage") is True, "updated in place by htmx, no reload"
    assert progress.get_attribute("data-done") == "24"
    assert "24 of 24 done" in " ".join(progress.inner_text().split())
    assert progress.locator(".kpi-delivered dd").inner_text() == "24", "the KPIs refresh with the bar"
    assert Subscription.objects.filter(campaign=campaign, status="delivered").count() == 24
