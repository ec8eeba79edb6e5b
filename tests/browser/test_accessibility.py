"""axe-core (through axe-playwright-python) scans every fan page state, reached by the fans' own flows, at a
desktop and a phone viewport: no violation of a WCAG 2.0/2.1 A or AA rule. The sandbox's login page is the
streaming service's, not ours: the flows pass through it and never scan it."""

import datetime as dt
import io
import re
from urllib.parse import urlsplit

import pytest
import time_machine
from axe_playwright_python.sync_playwright import Axe
from django.utils import timezone
from PIL import Image

from fans import privacy, signups
from fans.models import EmailSignup, Fan, Subscription
from releases.models import ReleaseLink
from tests.browser.test_fan_pages import INSTAGRAM_ANDROID, TIKTOK_IPHONE, alice_presaves_with_the_email_box
from tests.conftest import PHONE, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
AXE = Axe()
WCAG_A_AA = {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": PHONE, "device_scale_factor": 2, "is_mobile": True, "has_touch": True},
}


def axe_violations(page, state: str) -> list[str]:
    """Each WCAG A/AA rule axe finds broken on `page`: the state, the rule, every element and the help URL.

    axe is injected with page.evaluate, which the pages' Content Security Policy does not apply to (it is not
    the page's script): the scan sees the pages as fans get them, CSP on, no bypass_csp needed."""
    found = AXE.run(page, options={"runOnly": WCAG_A_AA, "resultTypes": ["violations"]}).response["violations"]
    return [
        f"{state}: {rule['id']} ({rule['impact']}): {rule['help']} — {rule['helpUrl']}"
        + "".join(f"\n    {' '.join(node['target'])}: {node['html']}" for node in rule["nodes"])
        for rule in found
    ]


@pytest.fixture(params=VIEWPORTS)
def open_page(request, browser):
    """`open_page(user_agent=...)`: a page in a fresh context at the test's viewport (desktop, then phone)."""
    contexts = []

    def open_page(**options):
        context = browser.new_context(**VIEWPORTS[request.param], **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def test_the_campaign_page_before_release_and_the_email_sign_up(site, open_page, sandbox, mailoutbox):
    campaign = make_campaign(subtitle="The debut album", page_text="Ten songs written on the night ferry.")
    page = open_page()
    page.goto(site + campaign.get_absolute_url())
    found = axe_violations(page, "campaign page")
    page.get_by_role("button", name="Pre-save on Apple Music").click()
    page.locator("#musickit-connect:enabled").wait_for()  # MusicKit JS (the sandbox's stand-in) is loaded
    found += axe_violations(page, "Apple Music's sign-in (our MusicKit page)")
    tiktok = open_page(user_agent=TIKTOK_IPHONE)
    tiktok.goto(site + campaign.get_absolute_url())
    found += axe_violations(tiktok, "campaign page in TikTok")

    fan = open_page(user_agent=INSTAGRAM_ANDROID)
    fan.goto(site + campaign.get_absolute_url())
    found += axe_violations(fan, "campaign page in Instagram")
    fan.get_by_label("Your email address").fill("fan@gmail")
    fan.get_by_role("button", name="Email me when it's out").click()
    fan.locator("#email-error").wait_for()  # sent once the form's token is fetched (js/form-token.js)
    assert fan.locator("#email-error").is_visible() and fan.locator("#consent-error").is_visible()
    found += axe_violations(fan, "email form with its errors")
    fan.get_by_label("Your email address").fill("fan@example.test")
    fan.locator("input[name=consent]").check()
    fan.get_by_role("button", name="Email me when it's out").click()
    assert fan.get_by_role("heading", name="Check your inbox.").is_visible()
    found += axe_violations(fan, "check your inbox")

    signups.send_confirmation(EmailSignup.objects.get().pk)  # what the worker does with the task queued
    link = re.search(r"https?://\S+/e/confirm/\S+/", mailoutbox[0].body).group(0)
    fan.goto(site + urlsplit(link).path)
    found += axe_violations(fan, "email confirmation question")
    fan.get_by_role("button", name="Yes, email me when it's out").click()
    assert fan.get_by_role("heading", name="You're on the list.").is_visible()
    found += axe_violations(fan, "email confirmed")
    assert not found, "\n".join(found)


def test_the_thank_you_revoke_and_privacy_pages_after_a_pre_save(site, open_page, sandbox):
    campaign = make_campaign()
    page = open_page()
    alice_presaves_with_the_email_box(page, site, sandbox, campaign)
    found = axe_violations(page, "thank-you page")
    revoke_link = page.get_by_role("link", name="Cancel this pre-save").get_attribute("href")

    page.get_by_role("link", name="See, download or erase what we hold about you").click()
    assert page.get_by_role("heading", name="What we hold about you").is_visible()
    privacy_page = page.url
    found += axe_violations(page, "privacy page")
    page.get_by_role("link", name="Cancel this pre-save").click()
    assert page.get_by_role("heading", name="Cancel your pre-save?").is_visible()
    found += axe_violations(page, "privacy page's cancel question")

    page.goto(site + revoke_link)
    assert page.get_by_role("heading", name="Cancel your pre-save?").is_visible()
    found += axe_violations(page, "revoke link's question")
    page.click("#confirm-revoke")
    assert page.get_by_role("heading", name="Pre-save cancelled").is_visible()
    found += axe_violations(page, "revoke link's result")

    page.goto(privacy_page)  # the cancelled pre-save's revoke link leads to the form that emails one, not to it
    page.get_by_role("link", name="Erase everything about me").click()
    found += axe_violations(page, "erase question")
    page.click("#confirm-erase")
    assert page.get_by_role("heading", name="Your account's data is erased").is_visible()
    found += axe_violations(page, "erased")
    assert not found, "\n".join(found)


def test_the_thank_you_page_of_a_presave_done_and_of_one_that_could_not_be_done(site, open_page, sandbox):
    """The badge follows the pre-save's status: "Done" and "Not done" each read well on the page."""
    campaign = make_campaign(follow_artist=True)
    page = open_page()
    alice_presaves_with_the_email_box(page, site, sandbox, campaign)
    Subscription.objects.update(status=Subscription.Status.DELIVERED, done_calls="save follow")
    page.reload()
    assert page.get_by_role("heading", name="Your pre-save is done.").is_visible()
    found = axe_violations(page, "thank-you page, done")
    Subscription.objects.update(status=Subscription.Status.REVOKED, done_calls="")
    page.reload()
    assert page.get_by_role("heading", name="Your pre-save couldn't be done.").is_visible()
    assert page.locator(".badge-not-done").inner_text().lower() == "not done"
    found += axe_violations(page, "thank-you page, not done")
    assert not found, "\n".join(found)


def test_the_smart_link_after_release_and_a_campaign_page_taking_no_pre_save(site, open_page, sandbox, settings):
    campaign = make_campaign(release_in=-dt.timedelta(days=1))
    ReleaseLink.objects.create(release=campaign.release, platform="deezer", url="https://www.deezer.com/album/123456")
    page = open_page()
    page.goto(site + campaign.get_absolute_url())
    assert page.get_by_role("link", name="Listen on Deezer").is_visible()
    found = axe_violations(page, "smart link")
    closed = make_campaign(slug="closed", status="delivering")  # Deliver now was pressed before the release time
    page.goto(site + closed.get_absolute_url())
    assert page.get_by_role("heading", name="This pre-save has closed").is_visible()
    found += axe_violations(page, "closed campaign page")
    settings.SPOTIFY_ENABLED = settings.DEEZER_ENABLED = settings.APPLE_MUSIC_ENABLED = False
    email_only = make_campaign(slug="email-only")
    page.goto(site + email_only.get_absolute_url())
    assert page.get_by_role("heading", name="Email me when it's out").is_visible()
    found += axe_violations(page, "campaign page with no service enabled")
    assert not found, "\n".join(found)


def test_the_error_pages_and_the_privacy_notice(site, open_page, sandbox):
    fan = Fan.objects.create(service="spotify", service_user_id="alice")
    with time_machine.travel(timezone.now() - dt.timedelta(days=30)):
        expired = privacy.link_for_fan(fan)
    page = open_page()
    assert page.goto(site + "/no-such-campaign/").status == 404
    found = axe_violations(page, "404 page")
    assert page.goto(site + expired).status == 410
    found += axe_violations(page, "410 page (an expired privacy link)")
    page.get_by_role("contentinfo").get_by_role("link", name="Privacy").click()
    found += axe_violations(page, "privacy notice")
    page.get_by_role("button", name="Email me a link").click()
    assert page.locator("#privacy-email-error").is_visible()
    found += axe_violations(page, "privacy notice's form with its error")
    page.get_by_label("Your email address").fill("alice@example.test")
    page.get_by_role("button", name="Email me a link").click()
    assert page.get_by_role("heading", name="Check your inbox.").is_visible()
    found += axe_violations(page, "privacy link sent")

    campaign = make_campaign()
    page.goto(site + campaign.get_absolute_url())
    page.get_by_role("button", name="Pre-save on Spotify").click()
    page.wait_for_url(f"{sandbox.accounts_url}/authorize*")
    page.click("#cancel")  # on the service's own screen: the problem page says it was the fan's choice
    assert page.get_by_role("heading", name="You didn't give permission").is_visible()
    found += axe_violations(page, "problem page")
    assert not found, "\n".join(found)


def luminance(rgb) -> float:
    """WCAG's relative luminance of an sRGB colour (0-255 channels)."""
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (v / 255 for v in rgb))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a, b) -> float:
    lighter, darker = sorted((luminance(a), luminance(b)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


COLOR_AND_OPACITY = (
    "e => [getComputedStyle(e).color.match(/[\\d.]+/g).slice(0, 3).map(Number), +getComputedStyle(e).opacity]"
)


def test_the_words_of_the_cover_drawn_without_artwork_stand_out_from_its_gradient(site, open_page, sandbox):
    """axe leaves text on a gradient "incomplete" (it can't tell the colour behind it), so the artist (small
    text: 4.5:1) and the title (large: 3:1) are measured here against every pixel of the gradient behind them."""
    campaign = make_campaign()
    page = open_page()
    page.goto(site + campaign.get_absolute_url())
    needed = {".cover-placeholder-artist": 4.5, ".cover-placeholder-title": 3}
    ink = {selector: page.locator(selector).evaluate(COLOR_AND_OPACITY) for selector in needed}
    page.locator(".cover-placeholder span").evaluate_all("spans => spans.forEach(s => s.style.color = 'transparent')")
    for selector, ratio in needed.items():
        behind = Image.open(io.BytesIO(page.screenshot(clip=page.locator(selector).bounding_box()))).convert("RGB")
        color, opacity = ink[selector]
        worst = min(
            contrast([opacity * c + (1 - opacity) * b for c, b in zip(color, pixel, strict=True)], pixel)
            for _, pixel in behind.getcolors(maxcolors=1 << 20)
        )
        assert worst >= ratio, f"{selector}: {worst:.2f}:1 against the cover's gradient, {ratio}:1 needed"
