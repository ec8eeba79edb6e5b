"""The staff console in Chromium: the dashboard, the campaign page's charts, the live progress bar
advancing during a real delivery (a django-q2 worker and the sandbox) without reloading the page, and every
kind of console page under its Content-Security-Policy with nothing refused."""

import os
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse

from delivery.engine import GAVE_UP
from delivery.models import DeliveryAttempt
from fans.models import FunnelEvent, Subscription
from releases import audit
from releases.models import AuditEntry
from tests.conftest import make_campaign, make_consent, make_subscription
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


# Chromium logs what a Content-Security-Policy refuses ("Refused to … because it violates …"); the page's
# securitypolicyviolation event is logged as well, in case a message is worded otherwise.
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", event => console.error(
    `CSP violation: ${event.effectiveDirective} refused ${event.blockedURI || "inline"} on ${location.pathname}`))"""


def csp_violations(page) -> list[str]:
    """What the pages this tab opens from now on are refused by their Content-Security-Policy."""
    found: list[str] = []
    page.add_init_script(REPORT_VIOLATIONS)

    def note(message) -> None:
        if "Content Security Policy" in message.text or message.text.startswith("CSP violation"):
            found.append(f"{page.url}: {message.text}")

    page.on("console", note)
    return found


def log_in(page, base: str, username: str = "lena") -> None:
    page.goto(base + reverse("admin:login"))
    page.fill("#id_username", username)
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
    violations = csp_violations(page)
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
    assert violations == []


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


def test_the_campaign_list_and_the_dashboard_fit_a_1400_px_window(console, page, sandbox):
    """Every column is on the screen, without scrolling sideways, and a slug is not broken a word per line."""
    campaign = make_campaign(slug="glass-harbour-deluxe-edition-2026")
    make_subscription(campaign, sandbox, "alice")
    campaign.release.title = "Glass Harbour (Deluxe Edition, Remastered)"
    campaign.release.save()
    page.set_viewport_size({"width": 1400, "height": 900})
    log_in(page, console)
    widths = {"dashboard": page.evaluate("document.documentElement.scrollWidth")}
    page.goto(console + reverse("admin:releases_campaign_changelist"))
    page.screenshot(path=ARTIFACTS / "admin-campaign-list-1400.png", full_page=True)
    table = page.locator("#result_list")
    widths["campaign list"] = page.evaluate("document.documentElement.scrollWidth")
    widths["its table"] = table.evaluate(
        "t => Math.ceil(t.getBoundingClientRect().right) <= innerWidth && t.scrollWidth <= t.parentElement.clientWidth"
    )
    slug = table.locator("td.field-slug_with_link, th.field-slug_with_link").first

    assert widths == {"dashboard": 1400, "campaign list": 1400, "its table": True}
    assert slug.get_by_text(campaign.slug).bounding_box()["height"] < 30, "the slug on one line"


def test_progress_bar_advances_during_a_delivery_without_a_reload(console, page, sandbox, start_worker):
    campaign = make_campaign(slug="glass-harbour")
    for i in range(24):
        user = f"live{i:02d}"
        sandbox.control("POST", "users", {"id": user, "display_name": user, "country": "GB"})
        make_subscription(campaign, sandbox, user)
    sandbox.faults(latency_ms=200)
    start_worker(DELIVERY_CONCURRENCY="2", DELIVERY_BATCH_SIZE="4", DELIVERY_PARALLEL_RUNS="1")
    violations = csp_violations(page)
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
    assert "Delivery done: 24 delivered, 0 failed, 0 revoked" in " ".join(progress.inner_text().split())
    assert progress.locator(".kpi-delivered dd").inner_text() == "24", "the KPIs refresh with the bar"
    delivered_step = page.locator("#campaign-funnel tr", has_text="Delivered").locator("td").first
    assert delivered_step.inner_text() == "24", "the funnel refreshes with the bar"
    assert Subscription.objects.filter(campaign=campaign, status="delivered").count() == 24
    assert violations == [], "htmx swapped the progress in under the console's Content-Security-Policy"


@pytest.fixture
def one_of_each(console, sandbox):
    """Something on every console page: a campaign with the funnel, consents and attempts, a pre-save that
    failed for good on passing errors (Retry failed offers it), an audit entry; the superuser "sam"."""
    campaign = make_campaign(slug="glass-harbour")
    alice, bob = (make_subscription(campaign, sandbox, user) for user in ("alice", "bob"))
    make_consent(alice, email="alice@fans.test", email_opt_in=True)
    make_consent(bob)
    DeliveryAttempt.objects.create(subscription=bob, at=bob.created_at, call="save", outcome="failed", message="504")
    Subscription.objects.filter(pk=bob.pk).update(
        status="failed", attempts=settings.DELIVERY_MAX_ATTEMPTS, last_error=f"{GAVE_UP} 5 attempts: 504"
    )
    FunnelEvent.objects.bulk_create(
        [FunnelEvent(campaign=campaign, kind=kind, utm_source="instagram") for kind in ("view", "click", "authorize")]
    )
    sam = User.objects.create_superuser("sam", "sam@label.test", PASSWORD)
    audit.record(sam, AuditEntry.Action.DELIVER_NOW, campaign=campaign, rows=2)
    return campaign


@pytest.mark.parametrize("username", ["sam", "lena"])
def test_every_console_page_keeps_to_its_content_security_policy(console, one_of_each, page, username):
    """As a superuser and as label staff: the index, every change list (a filter, a search, the date
    hierarchy), its add and change forms and delete confirmation, the campaign's insights and confirm pages,
    the audit log, the export and the password change, with the admin's scripts at work (theme, sidebar,
    calendar, clock, autocomplete, inline rows, the action checkbox). Every response carries the console's
    policy (settings.CONSOLE_CONTENT_SECURITY_POLICY: nothing inline) and the browser refuses nothing."""
    campaign = one_of_each
    violations = csp_violations(page)
    log_in(page, console, username)
    statuses = {}

    def visit(url: str) -> int:
        response = page.goto(url if url.startswith("http") else console + url)
        assert "default-src 'none'" in response.headers.get("content-security-policy", ""), url
        statuses[url] = response.status
        return response.status

    def href(selector: str) -> str | None:
        link = page.locator(selector).first
        return link.get_attribute("href") if link.count() else None

    page.locator("button.theme-toggle").first.click()  # the admin's theme switch
    for model in filter(admin.site.is_registered, apps.get_models()):
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        if visit(changelist) == 403:
            continue
        links = {name: href(selector) for name, selector in CHANGELIST_LINKS.items()}
        if page.locator("#action-toggle").count():
            page.locator("#action-toggle").check()  # actions.js counts the selection
        if page.locator("#searchbar").count():
            visit(changelist + "?q=a")
        for name in ("filter", "date hierarchy", "add form", "change form"):
            if links[name]:
                visit(changelist + links[name] if links[name].startswith("?") else links[name])
        if links["change form"]:
            for link in [href("a.historylink"), href("a.deletelink")]:
                if link:
                    visit(link)

    visit(reverse("admin:releases_release_add"))  # the widgets' scripts: calendar, clock, autocomplete, inlines
    page.locator("#toggle-nav-sidebar").click()
    for widget in ("calendar", "clock"):
        page.locator(f"#{widget}link0").click()
        page.locator(f"#{widget}box0").wait_for(state="visible")
        page.keyboard.press("Escape")
    page.locator(".select2-selection").first.click()
    page.locator(".select2-results__option").first.wait_for()
    page.keyboard.press("Escape")
    page.locator(".add-row a").first.click()
    visit(reverse("admin:releases_artist_add") + "?_to_field=id&_popup=1")  # the "+" beside a foreign key

    visit(reverse("admin:releases_campaign_change", args=[campaign.pk]))
    assert page.locator("svg.chart rect.bar").count() == 30, "the insights' chart is drawn"
    assert page.locator("#delivery-progress .kpi-pending dd").inner_text() == "1"
    for view in ("deliver_now", "retry_failed"):
        visit(reverse(f"admin:releases_campaign_{view}", args=[campaign.pk]))
        assert page.get_by_role("button", name="Yes").is_visible()
    visit(reverse("admin:password_change"))
    if username == "sam":
        visit(reverse("admin:auth_user_password_change", args=[User.objects.get(username="lena").pk]))
    export = page.request.get(console + reverse("admin:releases_campaign_export", args=[campaign.pk]))
    assert "default-src 'none'" in export.headers["content-security-policy"]
    assert export.status == (200 if username == "sam" else 403)
    visit(reverse("admin:index"))
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    page.wait_for_timeout(300)  # the last page's console messages

    assert violations == []
    assert statuses[reverse("admin:releases_auditentry_changelist")] == (200 if username == "sam" else 403)
    assert len(statuses) > (60 if username == "sam" else 30), statuses


CHANGELIST_LINKS = {
    "filter": "#changelist-filter li:not(.selected) a",
    "date hierarchy": "nav.toplinks a",
    "add form": ".object-tools a.addlink",
    "change form": "#result_list tbody tr th a",
}
