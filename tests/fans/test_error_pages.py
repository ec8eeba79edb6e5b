"""The site's own error pages: the styled 404 (fans and console), the static 500, the 403 of a form posted
without its CSRF cookie, and the words of a few problem pages."""

import html
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.exceptions import PermissionDenied
from django.template import loader
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import permission_denied, server_error

from fans.models import EmailSignup, Subscription
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return html.unescape(response.content.decode())


@pytest.mark.parametrize("path", ["/e/c/abc/", "/e/u/abc/", "/%C3%A9/", "/first-light/nothing/"])
def test_a_damaged_link_or_unknown_address_is_the_styled_404(client, settings, path):
    settings.DEBUG = False

    response = client.get(path)

    page = text(response)
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in page and "open it again from where you found it" in page
    assert f'href="{reverse("fans:privacy_notice")}#privacy-link"' in page  # a way on: a fresh privacy link
    assert "Back to the console" not in page
    assert "The requested resource was not found on this server." not in page  # Django's bare page
    assert "This link is not valid" not in page  # the Http404's words are for the log, not the page


def test_an_unknown_console_address_is_the_styled_404_with_a_way_back_to_the_console(staff_client, settings):
    settings.DEBUG = False

    response = staff_client.get("/admin/no-such-page/")

    page = text(response)
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in page
    assert f'href="{reverse("admin:index")}">Back to the console</a>' in page


def test_the_500_page_renders_with_no_context_at_all():
    assert "Something broke on our side" in loader.get_template("500.html").render()

    response = server_error(RequestFactory().get("/first-light/"))

    assert response.status_code == 500 and "<h1>Something went wrong</h1>" in response.content.decode()


def test_a_permission_denied_on_the_fans_site_is_the_styled_403():
    response = permission_denied(RequestFactory().get("/first-light/"), PermissionDenied("for the log only"))

    page = text(response)
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in page and "open it again from where you found it" in page
    assert f'href="{reverse("fans:privacy_notice")}#privacy-link"' in page
    assert 'class="panel problem" data-status="403"' in page and "Error 403" in page
    assert "Back to the console" not in page and "for the log only" not in page
    assert "403 Forbidden" not in page  # Django's bare page


def test_a_console_page_a_role_does_not_open_is_the_styled_403_with_a_way_back(staff_client, campaign, settings):
    settings.DEBUG = False  # label staff may not export subscribers: only managers

    response = staff_client.get(reverse("admin:releases_campaign_export", args=[campaign.pk]))

    page = text(response)
    assert response.status_code == 403
    assert "<h1>Not allowed</h1>" in page and "ask whoever manages the console's accounts" in page
    assert f'href="{reverse("admin:index")}">Back to the console</a>' in page
    assert "403 Forbidden" not in page


def test_a_presave_without_a_csrf_cookie_is_the_styled_403_and_saves_nothing(campaign, settings):
    settings.DEBUG = False
    strict = Client(enforce_csrf_checks=True)  # an in-app browser that drops cookies

    answers = [
        strict.post(reverse("fans:presave", args=[campaign.slug, "spotify"])),
        strict.post(reverse("fans:email_signup", args=[campaign.slug]), {"email": "fan@example.test", "consent": "1"}),
    ]

    for response in answers:
        page = text(response)
        assert response.status_code == 403
        assert "<h1>The security check didn't match</h1>" in page
        assert "cookies are blocked" in page and "Nothing was saved or shared." in page
        assert "reload the page and try again" in page
        assert f'href="{campaign.get_absolute_url()}">Back to the pre-save page</a>' in page
        assert "CSRF" not in page  # neither Django's page nor its reason ("CSRF cookie not set.")
    assert not Subscription.objects.exists() and not EmailSignup.objects.exists()


def test_a_stale_csrf_token_elsewhere_is_the_styled_403_without_a_campaign_button(campaign, settings):
    settings.DEBUG = False
    strict = Client(enforce_csrf_checks=True)
    strict.cookies["csrftoken"] = "A" * 32  # a secret the posted token was not made with

    response = strict.post(reverse("fans:privacy_link"), {"email": "fan@example.test", "csrfmiddlewaretoken": "B" * 64})

    page = text(response)
    assert response.status_code == 403 and "<h1>The security check didn't match</h1>" in page
    assert "Back to the pre-save page" not in page and "CSRF" not in page
    # The console's login keeps Django's own page, which tells staff more.
    assert "CSRF verification failed" in text(strict.post(reverse("admin:login"), {"username": "x"}))


def test_apple_music_sending_no_sign_in_code_is_titled_as_such(client, sandbox):
    campaign = make_campaign()
    start = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]))
    state = client.get(start["Location"]).context["state"]

    response = client.post(reverse("fans:musickit_token"), {"state": state, "music_user_token": ""})

    page = text(response)
    assert response.status_code == 400
    assert "<h1>The sign-in didn't finish</h1>" in page
    assert "Apple Music sent you back without a sign-in code." in page
    assert "didn't start here" not in page
    assert not Subscription.objects.exists()


def test_the_privacy_pages_read_well(client):
    notice = text(client.get(reverse("fans:privacy_notice")))
    sent = text(client.post(reverse("fans:privacy_link"), {"email": "fan@example.test"}))

    assert "We keep the name and account id your music service gives you, your country" in notice
    assert "<strong>fan@example.test</strong>, we've sent a link to that address." in sent


def test_saying_no_on_the_service_s_screen_is_no_error_page(client, campaign, sandbox):
    from tests.fans.test_oauth_callback import presave

    _, response = presave(client, campaign, decision="cancel")

    page = text(response)
    assert "Error 403" not in page and "Error" not in page.split("<title>")[1].split("</title>")[0]
    assert "You chose Cancel on Spotify, so nothing was saved" in page
    assert f'href="{campaign.get_absolute_url()}">Back to the pre-save page</a>' in page  # the way back


def test_favicon_ico_is_the_site_s_icon_not_a_404(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code == 302 and response["Location"] == "/static/favicon.ico"
    assert Path(finders.find("favicon.ico")).read_bytes().startswith(b"\x00\x00\x01\x00")  # an ICO file


def test_every_page_names_its_icon(client, campaign):
    assert '<link rel="icon" href="/static/favicon.ico"' in client.get(campaign.get_absolute_url()).content.decode()
