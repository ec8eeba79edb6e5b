"""A fan pre-saves in Chromium: campaign page → sandbox login → thank-you page, with screenshots."""

import datetime as dt

import pytest
from django.urls import reverse

from fans.models import ConsentRecord, Credential, Fan, Subscription
from tests.conftest import ARTIFACTS, PHONE, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def cookie_names(page) -> set[str]:
    return {cookie["name"] for cookie in page.context.cookies()}


def test_fan_presaves_with_spotify_and_can_revoke(site, page, sandbox):
    campaign = make_campaign(
        follow_artist=True,
        subtitle="The debut album",
        page_text="Ten songs written on the night ferry between Harwich and Hook of Holland.",
    )
    page.goto(site + campaign.get_absolute_url())
    page.screenshot(path=ARTIFACTS / "campaign-page.png", full_page=True)
    checkbox = page.locator("input[name=email_opt_in]")
    assert not checkbox.is_checked()
    first_seconds = page.locator("[data-unit=seconds]").inner_text()
    page.wait_for_function(
        "s => document.querySelector('[data-unit=seconds]').textContent !== s", arg=first_seconds
    )  # the countdown ticks

    assert "csrftoken" not in cookie_names(page)  # the cached page mints no token: fetched when a button is pressed

    checkbox.check()
    page.get_by_role("button", name="Pre-save on Spotify").click()
    page.wait_for_url(f"{sandbox.accounts_url}/authorize*")
    assert "csrftoken" in cookie_names(page)
    page.check("input[name=user][value=alice]")
    page.click("#agree")
    page.wait_for_url(site + reverse("fans:thanks", args=[campaign.slug]))

    assert page.get_by_role("heading", name="You're in.").is_visible()
    revoke_link = page.get_by_role("link", name="Cancel this pre-save")
    assert revoke_link.get_attribute("href").startswith("/revoke/")
    page.screenshot(path=ARTIFACTS / "thanks.png", full_page=True)

    fan = Fan.objects.get()
    assert (fan.display_name, fan.email) == ("Alice", "alice@sandbox.test")
    subscription = Subscription.objects.get()
    assert (subscription.fan, subscription.campaign_id, subscription.status) == (fan, campaign.pk, "pending")
    assert Credential.objects.filter(subscription=subscription).exists()
    record = ConsentRecord.objects.get()
    assert record.email_opt_in and record.user_agent
    assert record.scopes == ["user-library-modify", "user-follow-modify", "user-read-email"]

    revoke_link.click()
    page.screenshot(path=ARTIFACTS / "revoke-confirm.png", full_page=True)
    page.click("#confirm-revoke")
    assert page.get_by_role("heading", name="Pre-save cancelled").is_visible()
    subscription.refresh_from_db()
    assert subscription.status == "revoked"
    assert not Credential.objects.exists()


def test_campaign_page_reads_well_on_a_phone(site, browser, sandbox):
    campaign = make_campaign(subtitle="The debut album")
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        phone = context.new_page()
        phone.goto(site + campaign.get_absolute_url())
        button = phone.get_by_role("button", name="Pre-save on Spotify")
        box = button.bounding_box()
        assert box["width"] >= PHONE["width"] * 0.7 and box["height"] >= 44  # a big thumb target
        assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
        phone.screenshot(path=ARTIFACTS / "campaign-page-phone.png", full_page=True)
    finally:
        context.close()


def test_fan_who_cancels_on_spotify_sees_why_and_a_way_back(site, page, sandbox):
    campaign = make_campaign()
    page.goto(site + campaign.get_absolute_url())
    page.get_by_role("button", name="Pre-save on Spotify").click()
    page.wait_for_url(f"{sandbox.accounts_url}/authorize*")

    page.click("#cancel")

    page.wait_for_url(f"{site}{reverse('fans:oauth_callback', args=['spotify'])}*")
    assert page.get_by_role("heading", name="You didn't give permission").is_visible()
    assert page.get_by_text("Error 403").count() == 0, "the fan's own choice is no error"
    page.screenshot(path=ARTIFACTS / "problem.png", full_page=True)
    page.get_by_role("link", name="Back to the pre-save page").click()
    page.wait_for_url(site + campaign.get_absolute_url())
    assert not Subscription.objects.exists()


def test_released_campaign_links_to_the_release(site, browser, sandbox):
    campaign = make_campaign(release_in=-dt.timedelta(days=2))
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    try:
        phone = context.new_page()
        phone.goto(site + campaign.get_absolute_url())
        link = phone.get_by_role("link", name="Listen on Spotify")
        assert link.get_attribute("href") == reverse("fans:listen", args=[campaign.slug, "spotify"])
        phone.screenshot(path=ARTIFACTS / "out-now-phone.png", full_page=True)
    finally:
        context.close()


def test_without_javascript_a_fan_presaves_with_one_more_tap(site, browser, sandbox):
    campaign = make_campaign(page_text="Ten songs written on the night ferry.")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(site + campaign.get_absolute_url() + "?utm_source=newsletter")
        page.locator("input[name=email_opt_in]").check()
        page.get_by_role("button", name="Pre-save on Spotify").click()  # sent without a token: no script to fetch it

        page.wait_for_url(site + reverse("fans:presave", args=[campaign.slug, "spotify"]))
        assert page.get_by_role("heading", name="One more tap").is_visible()
        assert page.locator("input[name=email_opt_in]").is_checked()  # what the fan ticked is kept
        assert not Subscription.objects.exists()
        page.screenshot(path=ARTIFACTS / "campaign-page-one-more-tap.png", full_page=True)

        page.get_by_role("button", name="Pre-save on Spotify").click()
        page.wait_for_url(f"{sandbox.accounts_url}/authorize*")
        page.check("input[name=user][value=alice]")
        page.click("#agree")
        page.wait_for_url(site + reverse("fans:thanks", args=[campaign.slug]))

        record = ConsentRecord.objects.get()
        assert record.email_opt_in and "user-read-email" in record.scopes
        assert campaign.funnel_events.filter(kind="authorize", utm_source="newsletter").exists()
    finally:
        context.close()
