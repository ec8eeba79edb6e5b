"""Revoking a pre-save with the one-click link: GET asks, POST revokes, twice is harmless. A pre-save release
day has done has nothing left to cancel: the link says how to undo it, and leads to the privacy page's "Stop the
email" (by the form that emails a privacy link) while its email is still to come. The link never expires, so it
gives a privacy link only while its pre-save is still to come."""

import datetime as dt
import html
import re
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ

from delivery import engine
from delivery.sandbox import demo_catalog
from fans import consent, privacy, privacy_email
from fans.models import ConsentRecord, Credential, Fan, ReleaseEmail, Subscription
from tests.conftest import held_in_another_transaction, make_campaign, make_subscription
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
        assert "Already done" in page and "so there's nothing left to cancel" in page
        assert "to undo it, remove First Light from your Spotify library" in page
        assert 'id="confirm-revoke"' not in text(response) and "cancelled" not in page
    record = ConsentRecord.objects.get()
    assert (record.revoked_at, record.email_opt_in) == (None, True)
    assert Fan.objects.get().email == "opted@fan.test"
    subscription.refresh_from_db()
    assert subscription.status == "delivered"


def test_a_pre_save_staff_delivered_before_the_release_time_says_so_not_release_day(client, sandbox):
    """Staff's Deliver now delivers pending fans before the release time: the revoke link's page says when it
    was done, before the release, never "on release day"."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    _, done = presave(client, campaign)
    link = re.search(r'class="revoke-link" href="([^"]+)"', text(client.get(done["Location"]))).group(1)
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)  # what Deliver now runs
    assert Subscription.objects.get().status == "delivered"
    day = timezone.localdate()

    for response in (client.get(link), client.post(link)):
        page = words(response)
        assert "Already done · First Light" in page and "Already done" in page
        assert (
            f"Your pre-save of First Light by Nova Lark on Spotify was done on {day.day} {day:%B %Y}, before its "
            "release, so there's nothing left to cancel: to undo it, remove First Light from your Spotify library."
        ) in page
        assert "release day" not in page


def privacy_links_in(response) -> list[str]:
    """The fan's own privacy pages the page links or posts to (/privacy/<token>/…), not the notice's."""
    return re.findall(r'(?:href|action)="(/privacy/(?!#)[^"]+)"', text(response))


def test_a_done_pre_save_s_link_leads_to_the_privacy_link_form_to_stop_the_email(client, campaign, mailoutbox):
    """The revoke link never expires: after release day it mints no privacy link (its "Stop the email" form
    posted to one). The fan asks for one by email, and that page's "Stop the email" stops it."""
    subscription, token = asked_for_email(campaign, status="delivered")
    response = client.get(revoke_url(token))
    assert privacy_links_in(response) == []
    assert "Stop the email" in words(response) and 'id="stop-email"' not in text(response)
    form_url = html.unescape(re.search(r'href="([^"]*#privacy-link)"', text(response)).group(1))
    assert form_url == reverse("fans:privacy_notice") + "#privacy-link"
    assert 'id="privacy-link"' in text(client.get(form_url))

    client.post(reverse("fans:privacy_link"), {"email": "opted@fan.test"})
    (queued,) = OrmQ.objects.all()
    assert privacy_email.send_link(*queued.task["args"]) == "privacy link sent"  # what the worker runs
    (mailed,) = re.findall(r"https?://[^\s]+/privacy/[^\s]+/", mailoutbox[-1].body)
    privacy_page = client.get(urlsplit(mailed).path)
    stop = re.search(r'<form method="post" action="(/privacy/[^"]+/stop-email/\d+/)">', text(privacy_page))
    client.post(stop[1])

    assert ReleaseEmail.objects.get().unsubscribed_at is not None
    assert not ConsentRecord.objects.sharing_email().exists()
    again = words(client.get(revoke_url(token)))
    assert "Already done" in again and "Stop the email" not in again


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_a_pre_save_still_to_come_s_link_leads_to_the_fan_s_privacy_page(client, campaign, status):
    subscription, token = asked_for_email(campaign, status=status)

    (link,) = privacy_links_in(client.get(revoke_url(token)))

    assert privacy.subject_from(link.split("/")[2]).fan == subscription.fan


def test_the_answer_that_cancels_leads_to_the_fan_s_own_privacy_page(client, campaign, sandbox):
    """A fan who didn't tick the email box holds no address we could mail a link to: the answer of the cancel
    that link made leads to the fan's own privacy page (their name, account id and consent record are still
    held), as the question did, not to the form that emails one."""
    subscription, token = presaved(campaign, sandbox, user_id="bob")

    answered = client.post(revoke_url(token))

    assert "Pre-save cancelled" in words(answered)
    (link,) = privacy_links_in(answered)
    assert privacy.subject_from(link.split("/")[2]).fan == subscription.fan
    assert "#privacy-link" not in text(answered)
    page = client.get(link)
    assert page.status_code == 200 and "bob" in words(page)


@pytest.mark.parametrize("end", ["cancelled", "delivered"])
def test_the_link_of_a_pre_save_no_longer_to_come_mints_no_privacy_link(client, campaign, end):
    """Whoever ever saw the revoke link got a fresh 7-day privacy link (all about the fan, erase included) each
    time they opened it, for ever: now only while its pre-save is to come, and in the answer of the cancel it
    made; after, the form that emails one."""
    subscription, token = asked_for_email(campaign)
    if end == "cancelled":
        answered = client.post(revoke_url(token))
        assert "is cancelled" in words(answered) and len(privacy_links_in(answered)) == 1
    else:
        Subscription.objects.filter(pk=subscription.pk).update(status="delivered", delivered_at=timezone.now())

    for response in (client.get(revoke_url(token)), client.post(revoke_url(token))):
        assert response.status_code == 200
        assert privacy_links_in(response) == []
        assert (reverse("fans:privacy_notice") + "#privacy-link") in text(response)
    assert Subscription.objects.get().status == ("revoked" if end == "cancelled" else "delivered")


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

    assert "Already done" in page and "Stop the email" in page
    assert ConsentRecord.objects.sharing_email().count() == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_token_is_not_found(client, campaign, sandbox, method):
    presaved(campaign, sandbox)

    response = getattr(client, method)(revoke_url("not-a-real-token"))

    assert response.status_code == 404
    assert "doesn't match any pre-save" in text(response)
    assert Subscription.objects.get().status == "pending"


@pytest.mark.django_db(transaction=True)  # the erasure commits on a connection of its own
def test_an_erasure_landing_before_the_cancel_takes_its_lock_leaves_a_link_that_matches_no_pre_save(client, sandbox):
    """The link's cancel reads the consent while the fan's erasure (their privacy page's "erase everything", or
    staff's) holds it, not yet committed: the cancel waits for the row, and then answers as the link does once
    erased, not as a cancel of a consent left without its pre-save."""
    subscription, token = presaved(make_campaign(), sandbox)

    with held_in_another_transaction(
        lambda: privacy.erase(privacy.Subject(fan=subscription.fan)),
        holding="the erasure to hold the consent",
        waiter="the cancel",
    ) as erased:
        response = client.post(revoke_url(token))

    assert erased["consents"] == 1
    assert response.status_code == 404 and "doesn't match any pre-save" in text(response)
    assert client.get(revoke_url(token)).status_code == 404


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


def test_a_pre_save_whose_permission_was_withdrawn_in_the_service_has_nothing_to_cancel(client, sandbox):
    """Release day (or Deliver now) found the permission withdrawn in the fan's Spotify account: the pre-save
    ended revoked, its consents as they were. The link neither asks to cancel it nor, posted (a tab left open on
    the question), pretends to: nothing changes, and both say why there's nothing to cancel."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    _, done = presave(client, campaign, email_opt_in=True)
    link = re.search(r'class="revoke-link" href="([^"]+)"', text(client.get(done["Location"]))).group(1)
    assert 'id="confirm-revoke"' in text(client.get(link))
    sandbox.control("POST", "users/alice/revoke")  # the fan removes our app's access in Spotify
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)  # what Deliver now runs
    assert Subscription.objects.get().status == "revoked"

    for response in (client.get(link), client.post(link)):
        page = words(response)
        assert response.status_code == 200
        assert "Nothing left to cancel · First Light" in page
        assert (
            "Your pre-save of First Light by Nova Lark on Spotify couldn't be done: the permission you gave us was "
            "withdrawn in your Spotify account, so there's nothing left to cancel."
        ) in page
        assert 'id="confirm-revoke"' not in text(response) and "cancelled" not in page
    record = ConsentRecord.objects.get()
    assert record.revoked_at is None and record.email_opt_in
    assert Fan.objects.get().email == "alice@sandbox.test"


def test_a_withdrawn_pre_save_s_link_says_the_email_still_goes_out_and_leads_to_stopping_it(client, sandbox):
    """The permission withdrawn in the service leaves the email the fan asked for: it still goes out, and the
    link (which mints no privacy link once its pre-save is no longer to come) leads to the form that emails one."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    _, done = presave(client, campaign, email_opt_in=True)
    link = re.search(r'class="revoke-link" href="([^"]+)"', text(client.get(done["Location"]))).group(1)
    sandbox.control("POST", "users/alice/revoke")
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)

    response = client.get(link)

    page = words(response)
    assert "You asked us to email you when it's out, and we still will. To stop it, get a link" in page
    assert "its “Stop the email” stops it." in page
    assert privacy_links_in(response) == []
    assert (reverse("fans:privacy_notice") + "#privacy-link") in text(response)


def test_past_its_release_time_the_question_says_what_is_being_done_not_release_day(client, sandbox, settings):
    """The revoke link's question past the fan's release time tells what the engine is doing, as the privacy
    page does: doing it, trying again after the service answered 5xx, or waiting for the release to come out on
    the service in the fan's market."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1), default_market="US")
    subscription, token = presaved(campaign, sandbox)
    due = words(client.get(revoke_url(token)))
    sandbox.faults(error_rate=1.0)
    engine.deliver_campaign(campaign.pk, fan_out=False)
    retrying = words(client.get(revoke_url(token)))
    sandbox.faults(error_rate=0.0)
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    Subscription.objects.filter(pk=subscription.pk).update(market="JP", next_attempt_at=None)
    engine.deliver_campaign(campaign.pk, fan_out=False)
    waiting = words(client.get(revoke_url(token)))
    assert Subscription.objects.get().status == "pending"

    cancelling = "If you cancel before it's done, we won't save First Light by Nova Lark to your Spotify library"
    assert f"Your pre-save on Spotify is being done now. {cancelling}" in due
    assert f"Your pre-save on Spotify is being done: a try didn't go through, we'll try again. {cancelling}" in retrying
    assert (
        f"Your pre-save on Spotify is waiting for the release to come out on Spotify in your market. {cancelling}"
        in waiting
    )
    assert "release day" not in due + retrying + waiting
