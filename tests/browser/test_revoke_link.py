"""The thank-you page's one-click revoke link in Chromium, in the privacy page's words: before release day it
asks, saying the email goes too, then says what happened; after it, nothing is cancelled (how to undo it in the
service instead) and the way to stop the email, still to come, is a privacy link asked for by email. And a
past-dated draft's preview."""

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from delivery import engine
from delivery.sandbox import demo_catalog
from fans.models import ConsentRecord, Fan, ReleaseEmail, Subscription
from tests.browser.test_fan_pages import alice_presaves_with_the_email_box
from tests.conftest import ARTIFACTS, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def pre_save_with_the_email_box(page, site, sandbox, campaign) -> str:
    """Alice pre-saves `campaign` with the email box ticked; returns the thank-you page's revoke link."""
    alice_presaves_with_the_email_box(page, site, sandbox, campaign)
    return page.get_by_role("link", name="Cancel this pre-save").get_attribute("href")


def test_the_revoke_link_of_a_pre_save_done_on_release_day_cancels_nothing_and_leads_to_a_privacy_link(
    site, page, sandbox
):
    """After release day the link, which never expires, mints no privacy link: the way to stop the email is the
    privacy notice's form, which emails the fan one."""
    waiting, done = make_campaign(), make_campaign(slug="second-light")
    waiting_link = pre_save_with_the_email_box(page, site, sandbox, waiting)
    done_link = pre_save_with_the_email_box(page, site, sandbox, done)
    Subscription.objects.filter(campaign=done).update(status="delivered", delivered_at=timezone.now())

    page.goto(site + done_link)
    assert page.get_by_role("heading", name="Already done", exact=True).is_visible()
    assert page.get_by_text("before its release, so there's nothing left to cancel").is_visible(), "Deliver now's"
    assert page.get_by_text("so there's nothing left to cancel: to undo it, remove First Light from your").is_visible()
    assert page.get_by_role("button", name="Cancel my pre-save").count() == 0
    assert page.get_by_role("button", name="Stop the email").count() == 0
    page.screenshot(path=ARTIFACTS / "revoke-after-release-day.png", full_page=True)
    page.get_by_role("link", name="get a link to your privacy page by email").click()

    assert page.get_by_role("heading", name="Your link expired?").is_visible()
    page.get_by_label("Email").fill("alice@sandbox.test")
    page.get_by_role("button", name="Email me a link").click()
    assert page.get_by_text("Check your inbox.").is_visible()
    assert ConsentRecord.objects.get(campaign=done).revoked_at is None, "nothing was cancelled"
    assert not ReleaseEmail.objects.filter(campaign=done, unsubscribed_at__isnull=False).exists()

    page.goto(site + waiting_link)
    assert page.get_by_role("heading", name="Cancel your pre-save?").is_visible()
    assert page.get_by_text("The email you asked for goes with it: we won't email you when it's out.").is_visible()
    page.screenshot(path=ARTIFACTS / "revoke-confirm-email.png", full_page=True)
    assert Subscription.objects.get(campaign=waiting).status == "pending", "asking changes nothing"
    page.click("#confirm-revoke")

    assert page.get_by_role("heading", name="Pre-save cancelled").is_visible()
    assert page.get_by_role("status").get_by_text("Your pre-save of First Light on Spotify is cancelled").is_visible()
    assert Subscription.objects.get(campaign=waiting).status == "revoked"
    assert Fan.objects.get().email == "alice@sandbox.test", "the done pre-save's email is still to come"
    assert Subscription.objects.get(campaign=done).status == "delivered"


def test_the_old_link_of_a_pre_save_made_again_leads_to_the_one_that_is_on(site, page, sandbox):
    """Alice cancelled with the thank-you page's link, pre-saved again, then opened the old link: not "Already
    cancelled" but that her later pre-save is on, and the way to cancel that one."""
    campaign = make_campaign()
    old_link = pre_save_with_the_email_box(page, site, sandbox, campaign)
    page.goto(site + old_link)
    page.click("#confirm-revoke")
    assert page.get_by_role("heading", name="Pre-save cancelled").is_visible()
    pre_save_with_the_email_box(page, site, sandbox, campaign)

    page.goto(site + old_link)

    assert page.get_by_role("heading", name="You pre-saved it again").is_visible()
    assert page.get_by_text("that pre-save is still on: this link doesn't change it").is_visible()
    assert page.get_by_role("heading", name="Already cancelled").count() == 0
    assert Subscription.objects.get().status == "pending"
    page.screenshot(path=ARTIFACTS / "revoke-old-link-pre-saved-again.png", full_page=True)
    page.get_by_role("link", name="Cancel my current pre-save").click()
    assert page.get_by_role("heading", name="Cancel your pre-save?").is_visible()
    page.click("#confirm-cancel")
    assert page.get_by_role("status").get_by_text("Your pre-save of First Light on Spotify is cancelled").is_visible()
    assert Subscription.objects.get().status == "revoked"


def test_a_draft_s_preview_past_its_release_date_has_its_listen_links_switched_off(site, browser, sandbox):
    from tests.browser.test_console import log_in
    from tests.releases.personas import member_of

    member_of("Label staff", "lena")
    draft = make_campaign(slug="low-tide-lights", status="draft", release_in=dt.timedelta(days=-1))
    context = browser.new_context()
    try:
        staff = context.new_page()
        log_in(staff, site)
        staff.goto(site + draft.get_absolute_url())
        listen = staff.get_by_role("link", name="Listen on Spotify")
        assert listen.is_disabled()
        listen.click(force=True)  # switched off: stays put, where it led to a "Page not found"
        assert staff.url == site + draft.get_absolute_url()
        staff.screenshot(path=ARTIFACTS / "campaign-preview-out.png", full_page=True)
    finally:
        context.close()


def pre_saved_in_jp_while_out_only_in_gb(page, site, sandbox):
    """Alice pre-saves an hour before the release, in JP, an album the sandbox has out only in GB: the campaign and
    her thank-you page's revoke link."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    link = pre_save_with_the_email_box(page, site, sandbox, campaign)
    Subscription.objects.update(market="JP")
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    return campaign, link


def test_past_the_release_time_the_thank_you_page_and_the_revoke_link_say_what_is_being_done(site, page, sandbox):
    """Out on Spotify only in GB when release day's run comes: Alice, in JP, waits for it there. The thank-you page
    and the revoke link's question say so, in the privacy page's words, never "on release day"; the page still
    offers the link, pending as it is, and it cancels."""
    campaign, link = pre_saved_in_jp_while_out_only_in_gb(page, site, sandbox)

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)
        assert Subscription.objects.get().status == "pending"
        page.goto(site + reverse("fans:thanks", args=[campaign.slug]))
        waiting = "your pre-save on Spotify is waiting for the release to come out on Spotify in your market."
        assert page.get_by_text(waiting).is_visible()
        thanks = page.locator("article").inner_text()
        page.get_by_role("link", name="Cancel this pre-save").click()  # offered while it is pending
        assert page.url == site + link
        asked = page.locator("article").inner_text()
        page.screenshot(path=ARTIFACTS / "revoke-confirm-waiting-in-market.png", full_page=True)
        page.click("#confirm-revoke")
        assert page.get_by_role("heading", name="Pre-save cancelled").is_visible()
        answered = page.get_by_role("status").inner_text()

    assert (
        "Your pre-save on Spotify is waiting for the release to come out on Spotify in your market. If you cancel "
        "before it's done, we won't save First Light by Nova Lark to your Spotify library" in asked
    )
    assert answered == (
        "Your pre-save of First Light on Spotify is cancelled: it won't be done, we've deleted the permission you "
        "gave us, and we won't email you about it."
    )
    assert "release day" not in thanks + asked + answered
    assert "is out now" not in thanks, "not on Spotify in Alice's market"
    assert Subscription.objects.get().status == "revoked"


def test_a_pre_save_that_couldnt_be_done_offers_on_the_thank_you_page_to_withdraw_the_permission_we_keep(
    site, page, sandbox, settings
):
    """Release day's run gives up on Alice's save (the service answered 503): the permission is kept for Retry
    failed, and the thank-you page offers its revoke link to withdraw it, in the cancel question's words; the link
    asks, then withdraws it."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    link = pre_save_with_the_email_box(page, site, sandbox, campaign)
    sandbox.faults(errors_matching="spotify:album:")

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)
        assert Subscription.objects.get().status == "failed"
        page.goto(site + reverse("fans:thanks", args=[campaign.slug]))
        thanks = page.locator("article").inner_text()
        page.get_by_role("link", name="Withdraw the permission you gave us").click()
        assert page.url == site + link
        asked = page.locator("article").inner_text()
        page.click("#confirm-revoke")
        answered = page.get_by_role("status").inner_text()

    assert (
        "Your pre-save couldn't be done. We keep the permission you gave us for a while, in case the label tries it "
        "again: this link withdraws that permission, and we'll delete it." in thanks
    )
    assert "no pre-save left to cancel" not in thanks
    assert "cancelling it only withdraws that permission, and we'll delete it." in asked
    assert answered.startswith(
        "Your pre-save of First Light on Spotify, which couldn't be done, is cancelled: we've withdrawn the "
        "permission you gave us, so it can't be tried again"
    )
    assert Subscription.objects.get().status == "revoked"


def test_a_pre_save_that_gave_up_waiting_for_the_release_in_the_fans_market_is_not_told_it_is_out_now(
    site, page, sandbox, settings
):
    """Out on Spotify only in GB: release day's run waits for it in JP, Alice's market, and gives up after
    DELIVERY_AVAILABILITY_WAIT_HOURS. Her thank-you page says so, not "is out now"; the permission is kept for
    Retry failed, and the page offers to withdraw it."""
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 1
    campaign, _ = pre_saved_in_jp_while_out_only_in_gb(page, site, sandbox)

    with time_machine.travel(timezone.now() + dt.timedelta(hours=3), tick=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)
        assert Subscription.objects.get().status == "failed"
        page.goto(site + reverse("fans:thanks", args=[campaign.slug]))
        lead = page.locator(".lead").inner_text()
        thanks = page.locator("article").inner_text()

    assert lead == (
        "First Light by Nova Lark has reached its release time, but it didn't come out on Spotify in your market "
        "while we waited, so we couldn't do what you allowed on Spotify. Open its page to listen, and save it there "
        "yourself once it's out in your market."
    )
    assert "is out now" not in thanks and "It's out" not in thanks
    assert page.get_by_role("link", name="Withdraw the permission you gave us").is_visible()
