"""The site's own error pages: the styled 404 (fans and console), the static 500, the 403 of a form posted
without its CSRF cookie (or, from the campaign page without JavaScript, without any token: the page again, with
one), and the words of a few problem pages."""

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


def test_a_presave_with_a_token_but_no_csrf_cookie_is_the_styled_403_and_saves_nothing(campaign, settings):
    settings.DEBUG = False
    strict = Client(enforce_csrf_checks=True)  # an in-app browser that drops cookies: the fetched token came alone
    token = strict.get(reverse("fans:form_token")).json()["token"]
    strict.cookies.clear()

    answers = [
        strict.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), {"csrfmiddlewaretoken": token}),
        strict.post(
            reverse("fans:email_signup", args=[campaign.slug]),
            {"email": "fan@example.test", "consent": "1", "csrfmiddlewaretoken": token},
        ),
    ]

    for response in answers:
        page = text(response)
        assert response.status_code == 403
        assert "<h1>The security check didn't match</h1>" in page
        assert "cookies are blocked" in page and "Nothing was saved or shared." in page
        assert "reload the page and try again" in page
        assert f'href="{campaign.get_absolute_url()}">Back to the pre-save page</a>' in page
        assert "CSRF" not in page  # neither Django's page nor its reason ("CSRF cookie not set.")
        assert "One more tap" not in page
    assert not Subscription.objects.exists() and not EmailSignup.objects.exists()


def posted_token(page: str) -> str:
    return page.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]


def test_a_presave_sent_without_any_token_gets_the_page_again_with_one_and_what_was_chosen(campaign, settings):
    settings.DEBUG = False
    strict = Client(enforce_csrf_checks=True)  # JavaScript off: the cached page's form went without a token
    presave = reverse("fans:presave", args=[campaign.slug, "spotify"])

    response = strict.post(presave, {"email_opt_in": "1", "utm_source": "instagram"})

    page = text(response)
    assert response.status_code == 403 and "no-store" in response["Cache-Control"]
    assert "One more tap" in page and "nothing was saved or shared yet" in page
    assert 'name="email_opt_in" value="1" checked' in page  # what the fan ticked, kept
    assert '<input type="hidden" name="utm_source" value="instagram">' in page
    assert "form-token.js" not in page and "CSRF" not in page
    assert not Subscription.objects.exists()
    assert not campaign.funnel_events.filter(kind="view").exists()  # not a page view

    again = strict.post(presave, {"email_opt_in": "1", "csrfmiddlewaretoken": posted_token(page)})
    assert again.status_code == 302 and "/authorize?" in again["Location"]  # on to the service's sign-in


def test_an_email_signup_sent_without_any_token_keeps_the_address_and_goes_through_the_second_time(campaign, settings):
    settings.DEBUG = False
    strict = Client(enforce_csrf_checks=True)
    signup = reverse("fans:email_signup", args=[campaign.slug])

    response = strict.post(signup, {"email": "fan@example.test", "consent": "1"})

    page = text(response)
    assert response.status_code == 403 and "One more tap" in page
    assert 'value="fan@example.test"' in page and 'name="consent" value="1" required checked' in page
    assert not EmailSignup.objects.exists()

    again = strict.post(
        signup, {"email": "fan@example.test", "consent": "1", "csrfmiddlewaretoken": posted_token(page)}
    )
    assert again.status_code == 200 and EmailSignup.objects.filter(email="fan@example.test").exists()


def test_a_form_another_site_posts_is_refused_without_the_page_again(campaign, settings):
    settings.DEBUG = False
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(
        reverse("fans:presave", args=[campaign.slug, "spotify"]),
        {"email_opt_in": "1"},
        HTTP_ORIGIN="https://evil.example",
    )

    page = text(response)
    assert response.status_code == 403 and "<h1>The security check didn't match</h1>" in page
    assert "One more tap" not in page and "csrfmiddlewaretoken" not in page
    assert not Subscription.objects.exists()


def test_a_form_sent_without_any_token_to_a_campaign_gone_meanwhile_is_the_404(campaign, settings):
    settings.DEBUG = False
    strict = Client(enforce_csrf_checks=True)

    response = strict.post(reverse("fans:presave", args=["no-such-campaign", "spotify"]))

    assert response.status_code == 404 and "<h1>Page not found</h1>" in text(response)


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
    assert "<strong>fan@example.test</strong>, a link is on its way to that address." in sent


def test_saying_no_on_the_service_s_screen_is_no_error_page(client, campaign, sandbox):
    from tests.fans.test_oauth_callback import presave

    _, response = presave(client, campaign, decision="cancel")

    page = text(response)
    assert "Error 403" not in page and "Error" not in page.split("<title>")[1].split("</title>")[0]
    assert "You chose Cancel on Spotify, so nothing was saved" in page
    assert f'href="{campaign.get_absolute_url()}">Back to the pre-save page</a>' in page  # the way back


def test_saying_no_after_a_pre_save_of_another_campaign_claims_nothing_about_what_we_hold(client, campaign, sandbox):
    """Cancel on the service's screen leaves nothing of that attempt, but the same account (or browser) may have
    pre-saved another campaign: we may well hold something of theirs."""
    from tests.fans.test_oauth_callback import presave

    presave(client, make_campaign(slug="second-light"), email_opt_in=True)
    _, response = presave(client, campaign, decision="cancel")

    page = text(response)
    assert "You chose Cancel on Spotify, so nothing was saved. Changed your mind? You can pre-save again." in page
    assert "hold nothing" not in page


@pytest.mark.parametrize("service", ["deezer", "apple_music"])
def test_saying_no_on_any_service_s_screen_is_no_error_page(client, sandbox, service):
    from tests.delivery.test_deezer import presave_with_deezer

    campaign = make_campaign(services=[service])
    if service == "deezer":
        response = presave_with_deezer(client, campaign, "alice", decision="cancel")
    else:
        start = client.post(reverse("fans:presave", args=[campaign.slug, service]))
        state = client.get(start["Location"]).context["state"]
        response = client.post(reverse("fans:musickit_token"), {"state": state, "error": "access_denied"})

    page = text(response)
    assert response.status_code == 403 and "You didn't give permission" in page
    assert "Error 403" not in page


def test_a_fan_the_service_s_test_mode_turns_away_reads_no_error_code(client, campaign, sandbox):
    """Not the fan's doing: the label's app is in the service's test mode. The page says why, offers the
    email, and names no error code (the status is for machines)."""
    from tests.fans.test_oauth_callback import presave

    sandbox.faults(registered_users=["bob"])
    _, response = presave(client, campaign, user="alice")

    page = text(response)
    assert response.status_code == 403 and "This pre-save can't use your account yet" in page
    assert "Error 403" not in page


def test_a_pre_save_that_closed_during_the_sign_in_reads_no_error_code(client, campaign, sandbox):
    """Staff's Deliver now closed it while the fan was signing in: the way things are, not the fan's error."""
    from tests.fans.test_oauth_callback import CALLBACK, sandbox_login, start_presave

    authorize_url = start_presave(client, campaign)
    campaign.status = "delivering"
    campaign.save()

    response = client.get(CALLBACK, sandbox_login(authorize_url))

    page = text(response)
    assert response.status_code == 410 and "This pre-save has closed" in page
    assert "Error 410" not in page


def test_favicon_ico_is_the_site_s_icon_not_a_404(client, db):
    response = client.get("/favicon.ico")

    assert response.status_code == 302 and response["Location"] == "/static/favicon.ico"
    assert Path(finders.find("favicon.ico")).read_bytes().startswith(b"\x00\x00\x01\x00")  # an ICO file


def test_every_page_names_its_icon(client, campaign):
    assert '<link rel="icon" href="/static/favicon.ico"' in client.get(campaign.get_absolute_url()).content.decode()
