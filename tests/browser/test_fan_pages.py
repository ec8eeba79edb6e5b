"""The fan pages in Chromium: in-app browsers (Instagram, TikTok), the smart link after release ordered by
country, and the privacy self-service (export and erasure). Screenshots go to tests/artifacts/."""

import datetime as dt
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery import engine
from fans import signups
from fans.models import ConsentRecord, EmailSignup, Fan, FunnelEvent, Subscription
from releases import markets
from releases.models import Campaign, ReleaseLink
from tests.conftest import ARTIFACTS, PHONE, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
INSTAGRAM_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/131.0.6778.39 Mobile Safari/537.36 Instagram 357.0.0.25.101 Android (34/14; 420dpi; "
    "1080x2205; Google/google; Pixel 8; shiba; shiba; en_GB; 640113288)"
)
TIKTOK_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 "
    "musical_ly_35.1.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/GB"
)


def phone_context(browser, **options):
    return browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, **options)


OUTLINE_CONTRAST = """element => {
    const rgb = color => color.match(/\\d+(\\.\\d+)?/g).slice(0, 3).map(Number);
    const luminance = color => {
        const linear = v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        const [r, g, b] = rgb(color).map(v => linear(v / 255));
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    let behind = element.parentElement;
    while (getComputedStyle(behind).backgroundColor === "rgba(0, 0, 0, 0)") behind = behind.parentElement;
    const [a, b] = [getComputedStyle(element).borderTopColor, getComputedStyle(behind).backgroundColor].map(luminance);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def outline_contrast(locator) -> float:
    """The contrast ratio of an element's border against the background it sits on."""
    return locator.evaluate(OUTLINE_CONTRAST)


def csp_violations(page) -> list[str]:
    found: list[str] = []
    page.on("console", lambda message: found.append(message.text) if "Content Security Policy" in message.text else 0)
    return found


def test_instagram_on_android_explains_and_offers_the_browser_and_an_email(site, browser, sandbox, mailoutbox):
    campaign = make_campaign(subtitle="The debut album")
    context = phone_context(browser, user_agent=INSTAGRAM_ANDROID)
    try:
        phone = context.new_page()
        violations = csp_violations(phone)
        phone.goto(site + campaign.get_absolute_url() + "?utm_source=instagram&utm_medium=story")

        assert phone.get_by_role("heading", name="You're in Instagram's browser").is_visible()
        link = phone.get_by_role("link", name="Open in your browser")
        assert link.get_attribute("href").startswith("intent://")
        assert phone.get_by_role("button", name="Pre-save on Spotify").is_visible()
        assert phone.locator("[data-unit=seconds]").inner_text()  # the countdown is there without waiting
        phone.screenshot(path=ARTIFACTS / "in-app-instagram-phone.png", full_page=True)

        phone.get_by_label("Your email address").fill("fan@example.test")
        phone.get_by_role("button", name="Email me when it's out").click()
        assert phone.get_by_role("alert").first.inner_text().startswith("Tick the box")  # consent is explicit
        phone.get_by_label("Your email address").fill("fan@example.test")
        phone.locator("input[name=consent]").check()
        phone.get_by_role("button", name="Email me when it's out").click()

        assert phone.get_by_role("heading", name="Check your inbox.").is_visible()
        phone.screenshot(path=ARTIFACTS / "email-check-inbox-phone.png", full_page=True)
        signup = EmailSignup.objects.get()
        assert (signup.email, signup.campaign_id, signup.confirmed_at) == ("fan@example.test", campaign.pk, None)
        event = FunnelEvent.objects.get(kind="email_optin")
        assert (event.in_app_browser, event.utm_source, event.device) == ("instagram", "instagram", "mobile")

        signups.send_confirmation(signup.pk)  # what the worker does with the task the sign-up queued
        link = re.search(r"https?://\S+/e/confirm/\S+/", mailoutbox[0].body).group(0)
        phone.goto(site + urlsplit(link).path)
        phone.screenshot(path=ARTIFACTS / "email-confirm-phone.png", full_page=True)
        assert phone.title().startswith("Confirm your email")
        phone.get_by_role("button", name="Yes, email me when it's out").click()
        assert phone.get_by_role("heading", name="You're on the list.").is_visible()
        assert phone.title() == f"Email confirmed · {campaign.release.title}"  # the tab says it's done too
        signup.refresh_from_db()
        assert signup.confirmed_at is not None
        assert violations == []
    finally:
        context.close()


def test_an_ordinary_browser_offers_the_email_below_the_buttons_and_it_signs_up(site, browser, sandbox):
    """A fan who listens on a service we can't pre-save on is offered the email as a second choice."""
    campaign = make_campaign()
    context = phone_context(browser)
    try:
        phone = context.new_page()
        violations = csp_violations(phone)
        phone.goto(site + campaign.get_absolute_url())

        heading = phone.get_by_role("heading", name="Not on these? Get an email when it's out")
        button = phone.get_by_role("button", name="Pre-save on Spotify")
        assert heading.bounding_box()["y"] > button.bounding_box()["y"]
        phone.screenshot(path=ARTIFACTS / "email-second-choice-phone.png", full_page=True)
        phone.get_by_label("Your email address").fill("fan@example.test")
        phone.locator("input[name=consent]").check()
        phone.get_by_role("button", name="Email me when it's out").click()

        phone.get_by_role("heading", name="Check your inbox.").wait_for()  # sent once js/form-token.js has a token
        assert EmailSignup.objects.get().email == "fan@example.test"
        assert FunnelEvent.objects.get(kind="email_optin").in_app_browser == ""
        assert violations == []
    finally:
        context.close()


def test_a_mistyped_email_opens_the_page_at_the_form_with_the_focus_and_the_tick_kept(site, browser, sandbox):
    """Sent back with an error, a phone must not show the top of the page as if all went well: the page opens at
    the form with its error, the title says so, what was typed and ticked stays."""
    campaign = make_campaign()
    context = phone_context(browser, user_agent=INSTAGRAM_ANDROID)
    try:
        phone = context.new_page()
        phone.goto(site + campaign.get_absolute_url())
        phone.get_by_label("Your email address").fill("fan@gmail")
        phone.locator("input[name=consent]").check()
        phone.get_by_role("button", name="Email me when it's out").click()

        phone.locator("#email-error").wait_for()  # sent once the form's token is fetched (js/form-token.js)
        assert phone.title().startswith("Error: ")
        box = phone.locator("#id_email").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], "the field is on the screen"
        assert phone.locator("#email-error").inner_text()
        assert phone.locator("input[name=consent]").is_checked()
        assert phone.get_by_label("Your email address").input_value() == "fan@gmail"
        assert not EmailSignup.objects.exists()
    finally:
        context.close()


def test_tiktok_on_iphone_shows_the_steps_to_open_the_browser(site, browser, sandbox):
    campaign = make_campaign()
    context = phone_context(browser, user_agent=TIKTOK_IPHONE)
    try:
        phone = context.new_page()
        phone.goto(site + campaign.get_absolute_url())

        assert phone.get_by_role("heading", name="You're in TikTok's browser").is_visible()
        steps = phone.locator("#open-in-browser-steps")
        assert "Open in browser" in steps.inner_text()
        assert phone.get_by_role("link", name="Open in your browser").count() == 0
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        phone.screenshot(path=ARTIFACTS / "in-app-tiktok-phone.png", full_page=True)
        assert FunnelEvent.objects.get(kind="view").in_app_browser == "tiktok"
    finally:
        context.close()


def test_the_smart_link_is_ordered_by_country_and_remembers_the_choice(site, browser, sandbox):
    campaign = make_campaign(release_in=-dt.timedelta(days=1))
    links = {
        "deezer": "https://www.deezer.com/album/123456",
        "apple_music": "https://music.apple.com/fr/album/first-light/1234567890",
        "youtube_music": "https://music.youtube.com/playlist?list=OLAK5uy_test",
    }
    for platform, url in links.items():
        ReleaseLink.objects.create(release=campaign.release, platform=platform, url=url)
    context = phone_context(browser, extra_http_headers={"CF-IPCountry": "FR"})
    try:
        phone = context.new_page()
        phone.route("https://music.youtube.com/**", lambda route: route.fulfill(body="YouTube Music", status=200))
        phone.goto(site + campaign.get_absolute_url())
        buttons = phone.locator(".listen-links a")
        assert buttons.all_inner_texts()[:2] == ["Listen on Deezer", "Listen on Spotify"]
        phone.screenshot(path=ARTIFACTS / "smart-link-phone.png", full_page=True)

        phone.get_by_role("link", name="Listen on YouTube Music").click()
        phone.wait_for_url("https://music.youtube.com/**")
        assert FunnelEvent.objects.get(kind="listen_click").service == "youtube_music"

        phone.goto(site + campaign.get_absolute_url())
        assert buttons.first.inner_text() == "Listen on YouTube Music"
    finally:
        context.close()


def test_a_per_market_campaign_out_in_auckland_is_still_a_pre_save_in_new_york(site, browser, sandbox):
    """An hour after Auckland's midnight: a fan there gets the smart link, a fan in New York (their browser
    says en-US, and they sit in Paris) the pre-save, counting down to New York's midnight, told in their own
    time too."""
    auckland_midnight = timezone.now().astimezone(markets.zone_for("NZ")) - dt.timedelta(hours=1)
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", status="delivering")
    release = campaign.release
    release.release_date, release.release_time = (
        auckland_midnight.date(),
        auckland_midnight.time().replace(microsecond=0),
    )
    release.save()
    ReleaseLink.objects.create(release=release, platform="deezer", url="https://www.deezer.com/album/123456")
    for locale, timezone_id in (("en-US", "Europe/Paris"), ("en-NZ", "Pacific/Auckland")):
        context = browser.new_context(locale=locale, timezone_id=timezone_id)
        try:
            fan = context.new_page()
            fan.goto(site + campaign.get_absolute_url())
            if locale == "en-US":
                assert fan.get_by_role("button", name="Pre-save on Spotify").is_visible()
                assert "(America/New_York)" in fan.locator(".release-date").inner_text()
                assert "where you are" in fan.locator("[data-local-time]").inner_text()
                hours = int(fan.locator("[data-unit=hours]").inner_text())
                assert 16 <= hours <= 18, "New York's midnight is 17 hours after Auckland's in the northern winter"
            else:
                assert fan.get_by_role("heading", name="Out now").is_visible()
                assert fan.get_by_role("link", name="Listen on Deezer").is_visible()
        finally:
            context.close()


def alice_presaves_with_the_email_box(page, site, sandbox, campaign) -> None:
    """Alice pre-saves `campaign` on Spotify with the email box ticked, through the sandbox's login page."""
    page.goto(site + campaign.get_absolute_url())
    page.locator("input[name=email_opt_in]").check()
    page.get_by_role("button", name="Pre-save on Spotify").click()
    page.wait_for_url(f"{sandbox.accounts_url}/authorize*")
    page.check("input[name=user][value=alice]")
    page.click("#agree")
    page.wait_for_url(site + reverse("fans:thanks", args=[campaign.slug]))


def test_a_fan_downloads_their_data_and_erases_everything(site, page, sandbox):
    campaign = make_campaign()
    alice_presaves_with_the_email_box(page, site, sandbox, campaign)

    page.get_by_role("link", name="See, download or erase what we hold about you").click()
    assert page.get_by_role("heading", name="What we hold about you").is_visible()
    assert page.get_by_text("alice@sandbox.test", exact=True).is_visible()
    page.screenshot(path=ARTIFACTS / "privacy.png", full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download my data (JSON)").click()
    data = json.loads(Path(download.value.path()).read_text())
    assert data["fan"]["email"] == "alice@sandbox.test"
    assert [s["campaign"] for s in data["subscriptions"]] == [campaign.slug]

    page.get_by_role("link", name="Erase everything about me").click()
    page.click("#confirm-erase")
    assert page.get_by_role("heading", name="Your account's data is erased").is_visible()
    assert not Fan.objects.exists() and not Subscription.objects.exists()
    record = ConsentRecord.objects.get()
    assert (record.display_name, record.email, record.user_agent, record.ip_address) == ("", "", "", None)
    assert FunnelEvent.objects.filter(kind="authorize", subscription__isnull=True).count() == 1


def test_a_fan_spotifys_development_mode_turns_away_can_still_ask_for_the_email(site, browser, sandbox):
    """The label's Spotify app has no extended quota and does not list this fan: after the sign-in they read
    why, and sign up for the email on the same page, on a phone."""
    campaign = make_campaign(subtitle="The debut album")
    sandbox.faults(registered_users=["bob"])
    context = phone_context(browser)
    try:
        phone = context.new_page()
        violations = csp_violations(phone)
        phone.goto(site + campaign.get_absolute_url())
        phone.get_by_role("button", name="Pre-save on Spotify").click()
        phone.wait_for_url(f"{sandbox.accounts_url}/authorize*")
        phone.check("input[name=user][value=alice]")
        phone.click("#agree")
        phone.wait_for_url(f"{site}{reverse('fans:oauth_callback', args=['spotify'])}*")

        assert phone.get_by_role("heading", name="This pre-save can't use your account yet").is_visible()
        assert not Subscription.objects.exists()
        back = phone.get_by_role("link", name="Back to the pre-save page")  # a quiet button: its border is all
        assert outline_contrast(back) >= 3, "a control's outline must stand out (WCAG 1.4.11)"
        phone.screenshot(path=ARTIFACTS / "spotify-development-mode-phone.png", full_page=True)
        phone.get_by_label("Your email address").fill("alice@example.test")
        phone.locator("input[name=consent]").check()
        phone.get_by_role("button", name="Email me when it's out").click()

        assert phone.get_by_role("heading", name="Check your inbox.").is_visible()
        assert EmailSignup.objects.get().email == "alice@example.test"
        assert violations == []
    finally:
        context.close()


def test_label_staff_preview_a_draft_from_the_console_and_fans_get_a_404(site, browser, sandbox):
    from tests.browser.test_console import log_in
    from tests.releases.personas import member_of

    member_of("Label staff", "lena")
    draft = make_campaign(slug="low-tide-lights", status="draft", page_text="Not announced yet.")
    context = browser.new_context()
    try:
        staff = context.new_page()
        violations = csp_violations(staff)
        log_in(staff, site)
        staff.goto(site + reverse("admin:releases_campaign_change", args=[draft.pk]))
        staff.get_by_role("link", name="View on site").click()
        preview = staff
        preview.wait_for_url(site + draft.get_absolute_url())
        assert preview.get_by_role("heading", name="Preview — fans can't see this page yet").is_visible()
        assert preview.get_by_role("button", name="Pre-save on Spotify").is_disabled()
        preview.screenshot(path=ARTIFACTS / "campaign-preview.png", full_page=True)
        preview.get_by_role("button", name="Pre-save on Spotify").click(force=True)  # switched off: stays put
        assert preview.url == site + draft.get_absolute_url() and not Subscription.objects.exists()
        assert not violations
    finally:
        context.close()
    fan = browser.new_page()
    try:
        assert fan.goto(site + draft.get_absolute_url()).status == 404
    finally:
        fan.close()


def test_the_local_time_hint_shows_only_when_the_fan_s_clock_says_another_time(site, browser, sandbox):
    campaign = make_campaign()
    campaign.release.timezone = "Europe/Paris"
    campaign.release.save()
    for zone, shown in (("Europe/Berlin", False), ("America/New_York", True)):  # Berlin's clock is Paris's
        context = browser.new_context(timezone_id=zone, locale="en-GB")
        try:
            fan = context.new_page()
            fan.goto(site + campaign.get_absolute_url())
            hint = fan.locator("[data-local-time]")
            fan.wait_for_load_state("load")
            assert hint.is_visible() is shown, zone
            if shown:
                assert "where you are" in hint.inner_text()
        finally:
            context.close()


def test_a_page_view_asks_for_nothing_that_is_not_there_not_even_an_icon(site, page, sandbox):
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status >= 400 else None)
    campaign = make_campaign()

    page.goto(site + campaign.get_absolute_url())
    icon = page.evaluate("fetch(document.querySelector('link[rel=icon]').href).then(r => r.status)")
    page.goto(site + "/favicon.ico")  # what a browser asks of a page that names no icon (the console's)

    assert icon == 200 and missing == []
    assert page.url == site + "/static/favicon.ico"


def test_on_the_privacy_page_a_fan_cancels_one_pre_save_and_stops_the_email_of_one_already_done(site, page, sandbox):
    waiting, done = make_campaign(), make_campaign(slug="second-light")
    for campaign in (waiting, done):
        alice_presaves_with_the_email_box(page, site, sandbox, campaign)
    Subscription.objects.filter(campaign=done).update(status="delivered", delivered_at=timezone.now())
    page.get_by_role("link", name="See, download or erase what we hold about you").click()

    done_item = page.locator(f"[data-subscription='{Subscription.objects.get(campaign=done).pk}']")
    assert done_item.get_by_role("link", name="Cancel this pre-save").count() == 0
    assert done_item.get_by_text("to undo it, remove First Light from your Spotify library").is_visible()
    page.screenshot(path=ARTIFACTS / "privacy-actions.png", full_page=True)
    done_item.get_by_role("button", name="Stop the email").click()
    assert page.get_by_role("status").get_by_text("We won't email you about First Light").is_visible()

    waiting_item = page.locator(f"[data-subscription='{Subscription.objects.get(campaign=waiting).pk}']")
    waiting_item.get_by_role("link", name="Cancel this pre-save").click()
    assert page.get_by_role("heading", name="Cancel your pre-save?").is_visible()
    assert Subscription.objects.get(campaign=waiting).status == "pending", "asking changes nothing"
    page.click("#confirm-cancel")
    assert page.get_by_role("status").get_by_text("Your pre-save of First Light on Spotify is cancelled").is_visible()
    assert page.get_by_text("not used any more: withdrawn").is_visible()
    page.screenshot(path=ARTIFACTS / "privacy-cancelled.png", full_page=True)
    assert Subscription.objects.get(campaign=waiting).status == "revoked"
    assert Subscription.objects.get(campaign=done).status == "delivered"


def test_a_fan_whose_permission_was_withdrawn_in_spotify_stops_the_email_still_to_come(site, page, sandbox):
    """The permission withdrawn in the service ends the pre-save, not the release-day email the fan asked for: the
    privacy page says the email still goes out and offers to stop it (and no cancel: there's nothing to cancel)."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    alice_presaves_with_the_email_box(page, site, sandbox, campaign)
    sandbox.control("POST", "users/alice/revoke")  # Alice removes the app's access in Spotify
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)  # what Deliver now runs
    page.get_by_role("link", name="See, download or erase what we hold about you").click()

    item = page.locator(f"[data-subscription='{Subscription.objects.get().pk}']")
    assert item.get_by_text("the permission you gave us was withdrawn in your Spotify account").is_visible()
    assert item.get_by_role("link", name="Cancel this pre-save").count() == 0
    assert item.get_by_text("You asked us to email you when it's out, and we still will").is_visible()
    page.screenshot(path=ARTIFACTS / "privacy-withdrawn-email.png", full_page=True)
    item.get_by_role("button", name="Stop the email").click()

    assert page.get_by_role("status").get_by_text("We won't email you about First Light").is_visible()
    assert item.get_by_role("button", name="Stop the email").count() == 0
    assert not ConsentRecord.objects.sharing_email().exists()


BUTTON_BOXES = """() => [...document.querySelectorAll(".privacy .buttons .button")].map(button => {
    const box = button.getBoundingClientRect(), row = button.closest(".buttons").getBoundingClientRect();
    return {name: button.textContent.trim(), width: box.width, row: row.width, height: box.height};
})"""


def test_on_a_phone_every_privacy_button_is_full_width_and_easy_to_tap(site, browser, sandbox):
    context = phone_context(browser)
    try:
        page = context.new_page()
        alice_presaves_with_the_email_box(page, site, sandbox, make_campaign())
        page.get_by_role("link", name="See, download or erase what we hold about you").click()
        page.get_by_role("heading", name="What we hold about you").wait_for()
        page.screenshot(path=ARTIFACTS / "privacy-phone.png", full_page=True)

        boxes = page.evaluate(BUTTON_BOXES)

        names = {box["name"] for box in boxes}
        assert names == {
            "Cancel this pre-save",
            "Stop the email",
            "Download my data (JSON)",
            "Erase everything about me",
        }
        for box in boxes:
            assert box["width"] == pytest.approx(box["row"], abs=1), f"{box['name']} spans its row"
            assert box["height"] >= 48, f"{box['name']} is a finger's height"
        assert page.evaluate("document.documentElement.scrollWidth") == PHONE["width"]
    finally:
        context.close()


NOTE_GAPS = """() => [...document.querySelectorAll(".privacy .buttons + p")].map(note => ({
    note: note.textContent.trim().slice(0, 40),
    gap: note.getBoundingClientRect().top - note.previousElementSibling.getBoundingClientRect().bottom,
}))"""


@pytest.mark.parametrize("viewport", [PHONE, {"width": 1280, "height": 800}], ids=["phone", "desktop"])
def test_the_privacy_pages_grey_notes_keep_their_distance_from_the_buttons_above(site, browser, sandbox, viewport):
    context = browser.new_context(viewport=viewport)
    try:
        page = context.new_page()
        alice_presaves_with_the_email_box(page, site, sandbox, make_campaign())
        page.get_by_role("link", name="See, download or erase what we hold about you").click()
        page.get_by_role("heading", name="What we hold about you").wait_for()

        gaps = page.evaluate(NOTE_GAPS)

        assert [gap["note"][:20] for gap in gaps] == ["You asked us to emai", "Page views and click"]
        for gap in gaps:
            assert gap["gap"] >= 12, f"{gap['note']}… sits {gap['gap']}px under its buttons"
    finally:
        context.close()


def test_countdown_counts_from_the_server_even_when_the_phone_clock_is_a_day_ahead(site, browser):
    campaign = make_campaign(release_in=dt.timedelta(hours=2))
    context = phone_context(browser)
    try:
        phone = context.new_page()
        phone.clock.install(time=timezone.now() + dt.timedelta(days=1))  # the phone's clock is wrong
        phone.goto(site + campaign.get_absolute_url())
        phone.clock.run_for(2_000)  # countdown.js has ticked

        assert phone.locator("[data-unit=hours]").inner_text() == "01"
        assert phone.locator("[data-unit=minutes]").inner_text() == "59"
        assert phone.locator(".countdown-done").count() == 0
    finally:
        context.close()


def test_countdown_at_zero_gives_way_to_a_link_to_the_smart_link(site, browser):
    campaign = make_campaign(release_in=dt.timedelta(seconds=3))
    context = phone_context(browser)
    try:
        phone = context.new_page()
        phone.goto(site + campaign.get_absolute_url())
        phone.locator(".countdown-done").wait_for(timeout=10_000)

        assert timezone.now() >= campaign.release.release_at, "zero is the release instant, not a second before"
        assert phone.locator(".countdown").count() == 0
        phone.get_by_role("link", name="Reload to listen").click()
        phone.get_by_role("heading", name="Out now").wait_for(timeout=10_000)  # the smart link, from the server
    finally:
        context.close()


def test_the_thank_you_page_tells_the_fan_s_market_s_release_time_in_their_own_time_too(site, browser, sandbox):
    """As the campaign page does: a fan in New York's market (their browser says en-US) who sits in Paris reads
    New York's release time, and what it is on their own clock."""
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB")
    context = browser.new_context(locale="en-US", timezone_id="Europe/Paris")
    try:
        fan = context.new_page()
        violations = csp_violations(fan)
        alice_presaves_with_the_email_box(fan, site, sandbox, campaign)

        assert "(America/New_York)" in fan.locator(".lead").first.inner_text()
        hint = fan.locator("[data-local-time]")
        assert hint.get_attribute("data-release-zone") == "America/New_York"
        assert hint.is_visible() and "where you are" in hint.inner_text()
        assert violations == []
    finally:
        context.close()
