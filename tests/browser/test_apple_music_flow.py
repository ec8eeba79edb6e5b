"""A fan pre-adds with Apple Music in Chromium: campaign page → our MusicKit page → the MusicKit JS stand-in's
consent step → thank-you page; then release day delivers it to their library."""

import pytest
from django.urls import reverse

from delivery import engine
from delivery.sandbox import demo_catalog
from fans.models import ConsentRecord, Credential, Subscription
from tests.conftest import ARTIFACTS, PHONE, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_fan_pre_adds_with_apple_music_on_a_phone(site, browser, sandbox):
    campaign = make_campaign(subtitle="The debut album")
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        page.goto(site + campaign.get_absolute_url())
        page.get_by_role("button", name="Pre-save on Apple Music").click()
        page.wait_for_url(f"{site}{reverse('fans:musickit')}?state=*")
        connect = page.get_by_role("button", name="Continue with Apple Music")
        connect.wait_for(state="visible")
        page.locator("#musickit-connect:enabled").wait_for()  # no eval: the page's CSP forbids it
        page.screenshot(path=ARTIFACTS / "musickit-page.png", full_page=True)
        connect.click()
        page.fill("#musickit-sandbox-user", "Dana Fox")
        page.screenshot(path=ARTIFACTS / "musickit-consent.png")
        page.click("#musickit-sandbox-allow")
        page.wait_for_url(site + reverse("fans:thanks", args=[campaign.slug]))
        assert page.get_by_role("heading", name="You're in.").is_visible()
    finally:
        context.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors

    subscription = Subscription.objects.get()
    assert subscription.fan.service == "apple_music" and subscription.market == "GB"
    assert ConsentRecord.objects.get().service == "apple_music"
    assert Credential.objects.get().reveal().startswith("AmUT")

    engine.deliver_campaign(campaign.pk)
    assert Subscription.objects.get().status == "delivered"
    assert sandbox.library("dana-fox")["saved"] == [f"apple_music:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"]


def test_dont_allow_in_musickit_saves_nothing(site, page, sandbox):
    campaign = make_campaign()
    page.goto(site + campaign.get_absolute_url())
    page.get_by_role("button", name="Pre-save on Apple Music").click()
    page.locator("#musickit-connect:enabled").wait_for()  # no eval: the page's CSP forbids it
    page.get_by_role("button", name="Continue with Apple Music").click()
    page.click("#musickit-sandbox-deny")
    page.wait_for_url(f"{site}{reverse('fans:musickit_token')}")
    assert "You chose Cancel on Apple Music" in page.content()
    assert not Subscription.objects.exists()


def test_without_javascript_the_musickit_page_shows_only_its_notice(site, browser, sandbox):
    campaign = make_campaign()
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(site + campaign.get_absolute_url())
        page.get_by_role("button", name="Pre-save on Apple Music").click()  # a plain form post, without a token
        page.get_by_role("heading", name="One more tap").wait_for()  # the page again, holding one
        page.get_by_role("button", name="Pre-save on Apple Music").click()
        page.wait_for_url(f"{site}{reverse('fans:musickit')}?state=*")

        assert page.locator("#musickit-needs-javascript").is_visible()
        assert not page.get_by_text("Loading Apple Music").is_visible()
        assert page.get_by_role("button", name="Continue with Apple Music").count() == 0  # hidden: not in the tree
        assert page.get_by_role("link", name="Back").is_visible()
        page.screenshot(path=ARTIFACTS / "musickit-no-javascript.png", full_page=True)
    finally:
        context.close()
