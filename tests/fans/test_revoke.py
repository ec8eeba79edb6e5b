"""Revoking a pre-save with the one-click link: GET asks, POST revokes, twice is harmless. A pre-save release
day has done has nothing left to cancel: the link says how to undo it, and offers the privacy page's "Stop the
email" while its email is still to come."""

import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from fans import consent, privacy
from fans.models import ConsentRecord, Credential, Fan, ReleaseEmail, Subscription
from tests.conftest import make_campaign, make_subscription
from tests.fans.test_oauth_callback import presave

pytestmark = pytest.mark.django_db


def presaved(campaign, sandbox, user_id: str = "alice") -> tuple[Subscription, str]:
    """A fan's pending subscription with its credential and consent record; returns it and the revoke token."""
    subscription = make_subscription(campaign, sandbox, user_id)
    record = ConsentRecord(
        subscription=subscription,
        campaign=campaign,
        service="spotify",
        service_user_id=user_id,
        scopes=["user-library-modify"],
        wording_version=consent.WORDING_VERSION,
    )
    token = record.issue_revoke_token()
    record.save()
    return subscription, token


def revoke_url(token: str) -> str:
    return reverse("fans:revoke", args=[token])


def text(response) -> str:
    return response.content.decode().replace("&#x27;", "'")


def test_link_shows_a_confirm_button_and_changes_nothing(client, campaign, sandbox):
    subscription, token = presaved(campaign, sandbox)

    response = client.get(revoke_url(token))

    assert response.status_code == 200
    html = text(response)
    assert "Cancel your pre-save?" in html
    assert f'<form method="post" action="{revoke_url(token)}">' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'id="confirm-revoke"' in html
    subscription.refresh_from_db()
    assert subscription.status == "pending"
    assert Credential.objects.filter(subscription=subscription).exists()
    assert ConsentRecord.objects.get().revoked_at is None


def test_confirming_revokes_and_destroys_the_token(client, campaign, sandbox):
    subscription, token = presaved(campaign, sandbox)

    response = client.post(revoke_url(token))

    assert response.status_code == 200
    assert "Pre-save cancelled" in text(response)
    subscription.refresh_from_db()
    assert subscription.status == "revoked"
    assert not Credential.objects.filter(subscription=subscription).exists()
    assert ConsentRecord.objects.get().revoked_at is not None


def test_revoking_twice_says_it_is_already_revoked(client, campaign, sandbox):
    _, token = presaved(campaign, sandbox)
    client.post(revoke_url(token))
    revoked_at = ConsentRecord.objects.get().revoked_at

    again = client.post(revoke_url(token))
    visit = client.get(revoke_url(token))

    for response in (again, visit):
        assert response.status_code == 200
        assert "Already cancelled" in text(response)
        assert 'id="confirm-revoke"' not in text(response)
    assert ConsentRecord.objects.get().revoked_at == revoked_at


def test_revoking_withdraws_every_consent_of_the_subscription(client, campaign, sandbox):
    subscription, old_token = presaved(campaign, sandbox)
    newer = ConsentRecord(
        subscription=subscription,
        campaign=campaign,
        service="spotify",
        service_user_id="alice",
        wording_version=consent.WORDING_VERSION,
    )
    newer_token = newer.issue_revoke_token()
    newer.save()

    client.post(revoke_url(old_token))

    assert not ConsentRecord.objects.filter(revoked_at__isnull=True).exists()
    assert "Already cancelled" in text(client.get(revoke_url(newer_token)))


def asked_for_email(campaign, *, status: str = "pending") -> tuple[Subscription, str]:
    """Opted pre-saved with the email box ticked (the email still to come); returns it and the revoke token."""
    fan = Fan.objects.create(service="spotify", service_user_id="opted", display_name="Opted", email="opted@fan.test")
    delivered_at = timezone.now() if status == "delivered" else None
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, status=status, delivered_at=delivered_at)
    record = ConsentRecord(
        subscription=subscription,
        campaign=campaign,
        service="spotify",
        service_user_id="opted",
        scopes=["user-library-modify", "user-read-email"],
        email="opted@fan.test",
        email_opt_in=True,
        wording_version=consent.WORDING_VERSION,
    )
    token = record.issue_revoke_token()
    record.save()
    return subscription, token


def words(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def test_a_pre_save_done_on_release_day_has_nothing_to_cancel_and_says_how_to_undo_it(client, campaign):
    """As on the privacy page: no cancel button, and posting anyway (an old tab) withdraws nothing, not even
    the email the fan asked for."""
    subscription, token = asked_for_email(campaign, status="delivered")

    asked = client.get(revoke_url(token))
    answered = client.post(revoke_url(token))

    for response in (asked, answered):
        page = words(response)
        assert response.status_code == 200
        assert "Already done on release day" in page and "so there's nothing left to cancel" in page
        assert "to undo it, remove First Light from your Spotify library" in page
        assert 'id="confirm-revoke"' not in text(response) and "cancelled" not in page
    record = ConsentRecord.objects.get()
    assert (record.revoked_at, record.email_opt_in) == (None, True)
    assert Fan.objects.get().email == "opted@fan.test"
    subscription.refresh_from_db()
    assert subscription.status == "delivered"


def test_a_done_pre_save_s_link_stops_the_email_with_the_privacy_page_s_button(client, campaign):
    subscription, token = asked_for_email(campaign, status="delivered")
    html_text = text(client.get(revoke_url(token)))
    stop = re.search(r'<form method="post" action="(/privacy/([^/"]+)/stop-email/(\d+)/)">', html_text)
    assert stop and "Stop the email" in html_text
    fan_token = stop[2]
    assert privacy.subject_from(fan_token).fan == subscription.fan and int(stop[3]) == subscription.pk

    response = client.post(stop[1], follow=True)

    assert response.redirect_chain == [(reverse("fans:privacy", args=[fan_token]), 302)]
    assert "We won't email you about First Light" in words(response)
    assert ReleaseEmail.objects.get().unsubscribed_at is not None
    assert not ConsentRecord.objects.sharing_email().exists()
    again = words(client.get(revoke_url(token)))
    assert "Already done on release day" in again and "Stop the email" not in again


def test_the_question_says_the_email_goes_with_the_pre_save_and_the_answer_what_happened(client, campaign, sandbox):
    _, opted_token = asked_for_email(campaign)
    _, declined_token = presaved(make_campaign(slug="second-light"), sandbox, "alice")

    asked = words(client.get(revoke_url(opted_token)))
    assert "We won't save First Light by Nova Lark to your Spotify library on release day" in asked
    assert "The email you asked for goes with it: we won't email you when it's out." in asked
    assert "The email you asked for" not in words(client.get(revoke_url(declined_token)))

    answered = words(client.post(revoke_url(opted_token)))

    assert "Your pre-save of First Light on Spotify is cancelled" in answered
    assert "we won't email you about it" in answered
    assert not ConsentRecord.objects.sharing_email().exists()
    assert Fan.objects.get(service_user_id="opted").email == ""


def test_release_day_coming_between_the_question_and_the_answer_cancels_nothing(client, campaign):
    subscription, token = asked_for_email(campaign)
    assert 'id="confirm-revoke"' in text(client.get(revoke_url(token)))
    Subscription.objects.filter(pk=subscription.pk).update(status="delivered", delivered_at=timezone.now())

    page = words(client.post(revoke_url(token)))

    assert "Already done on release day" in page and "Stop the email" in page
    assert ConsentRecord.objects.sharing_email().count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_token_is_not_found(client, campaign, sandbox, method):
    presaved(campaign, sandbox)

    response = getattr(client, method)(revoke_url("not-a-real-token"))

    assert response.status_code == 404
    assert "doesn't match any pre-save" in text(response)
    assert Subscription.objects.get().status == "pending"


def test_the_fans_address_goes_with_their_last_email_consent(client, sandbox):
    """Staff look fans up by address in the console: an address whose every email consent was withdrawn is
    no longer held (nor shown, searched, mailed or exported)."""
    first, second = make_campaign(), make_campaign(slug="second-light")
    one, one_token = presaved(first, sandbox)
    two, two_token = presaved(second, sandbox)
    ConsentRecord.objects.update(email_opt_in=True, email="alice@sandbox.test")
    Fan.objects.update(email="alice@sandbox.test")

    client.post(revoke_url(one_token))
    assert Fan.objects.get().email == "alice@sandbox.test", "the other pre-save still shares it"

    client.post(revoke_url(two_token))
    assert Fan.objects.get().email == ""


def revoke_link_from_thanks(client, campaign) -> str:
    page = client.get(reverse("fans:thanks", args=[campaign.slug])).content.decode()
    return html.unescape(re.search(r'class="revoke-link" href="([^"]+)"', page).group(1))


def test_an_old_link_of_a_pre_save_made_again_says_so_cancels_nothing_and_leads_to_the_one_that_is_on(
    client, campaign, sandbox
):
    """The fan cancelled, pre-saved again, then opened the first thank-you page's link: their pre-save is on
    again, so the link is not "Already cancelled"; it cancels nothing (asked or posted: a tab left open on the
    question) and leads to the privacy page's question for the pre-save that is on."""
    presave(client, campaign)
    old_link = revoke_link_from_thanks(client, campaign)
    client.post(old_link)
    first = ConsentRecord.objects.get()
    presave(client, campaign)
    again = ConsentRecord.objects.exclude(pk=first.pk).get()

    for response in (client.get(old_link), client.post(old_link)):
        assert response.status_code == 200
        page = words(response)
        assert "Already cancelled" not in page and "was already cancelled" not in page
        assert "You pre-saved it again" in page
        assert f"which you cancelled on {timezone.localtime(first.revoked_at):%-d %B %Y}" in page
        assert f"You pre-saved it again on Spotify on {timezone.localtime(again.created_at):%-d %B %Y}" in page
        assert "that pre-save is still on: this link doesn't change it" in page
        assert "Cancel my current pre-save" in page
    subscription = Subscription.objects.get()
    assert subscription.status == "pending"
    assert Credential.objects.filter(subscription=subscription).exists()
    assert ConsentRecord.objects.get(pk=again.pk).revoked_at is None

    cancel_url = html.unescape(re.search(r'href="(/privacy/[^"]+/revoke/\d+/)"', text(response)).group(1))
    assert "Cancel your pre-save?" in words(client.get(cancel_url))
    client.post(cancel_url)
    assert Subscription.objects.get().status == "revoked"
    assert "Already cancelled" in words(client.get(old_link)), "both pre-saves are cancelled now"
