"""The privacy page's per-pre-save actions say what they do: cancelling asks first and says afterwards what
happened; a pre-save that is done (on release day, or before it by staff's Deliver now) has nothing left to
cancel (the page says when it was done, and how to undo it in the service), and only its email, while still to
come, can be stopped."""

import datetime as dt
import html
import re

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule
from django_q.scheduler import scheduler

from delivery import engine
from delivery.sandbox import demo_catalog
from fans import pages, privacy, release_email, retention
from fans.models import ConsentRecord, Credential, Fan, ReleaseEmail, Subscription
from releases import retry
from tests.conftest import held_in_another_transaction, make_campaign, make_consent, make_subscription
from tests.delivery.test_playlist import NAME as PLAYLIST_NAME
from tests.delivery.test_playlist import SCOPES as PLAYLIST_SCOPES
from tests.delivery.test_playlist import long_player, only_playlist, playlist_campaign
from tests.fans.test_oauth_callback import CALLBACK, presave, sandbox_login
from tests.fans.test_release_email import pre_save, sign_up, smtp_server  # noqa: F401 (a fixture)
from tests.fans.test_revoke import presaved

pytestmark = pytest.mark.django_db


def text_of(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def privacy_url(fan) -> str:
    return reverse("fans:privacy", args=[privacy.sign({"fan": fan.pk})])


@pytest.fixture
def delivered():
    """Opted pre-saved with the email box ticked; release day saved it, and the email is still to come."""
    campaign = make_campaign(slug="out-now", release_in=dt.timedelta(minutes=-5), status="delivering")
    consent = pre_save(campaign, "opted", "opted@fan.test", opt_in=True)
    Subscription.objects.filter(pk=consent.subscription_id).update(status="delivered", delivered_at=timezone.now())
    return consent.subscription


@pytest.fixture
def waiting():
    """Keen pre-saved with the email box ticked; release day is to come."""
    consent = pre_save(make_campaign(), "keen", "keen@fan.test", opt_in=True)
    ConsentRecord.objects.filter(pk=consent.pk).update(scopes=["user-library-modify", "user-read-email"])
    credential = Credential(subscription=consent.subscription, authorized_at=timezone.now())
    credential.store("a-refresh-token")
    credential.save()
    return consent.subscription


def erasing_by(link: str, subscription: Subscription) -> tuple[privacy.Subject, str]:
    """The erasure races' subject and privacy token: by "the fan's" own link, or by "the address's" (Keen's)."""
    if link == "the fan's":
        return privacy.Subject(fan=subscription.fan), privacy.token_for_fan(subscription.fan)
    return privacy.Subject(email="keen@fan.test"), privacy.link_for_email("keen@fan.test").split("/")[2]


def today() -> str:
    day = timezone.localdate()
    return f"{day.day} {day:%B %Y}"


def test_a_pre_save_done_on_release_day_has_nothing_to_cancel_and_says_how_to_undo_it(client, delivered):
    page = text_of(client.get(privacy_url(delivered.fan)))

    assert "Cancel this pre-save" not in page
    assert f"First Light by Nova Lark, on Spotify: done on {today()}." in page
    assert "remove First Light from your Spotify library" in page  # how to undo it, in the service


def test_a_pre_save_staff_delivered_before_the_release_time_says_so_not_release_day(client, sandbox):
    """Staff's Deliver now delivers pending fans before the release time: the privacy page, its cancel page and
    its cancel's answer say it was done before the release, never "on release day"."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    presave(client, campaign)
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)  # what Deliver now runs
    subscription = Subscription.objects.get(status="delivered")
    url = privacy_url(subscription.fan)
    cancel_url = reverse("fans:privacy_revoke", args=[url.split("/")[2], subscription.pk])

    listed = text_of(client.get(url))
    asked = text_of(client.get(cancel_url))
    answered = text_of(client.post(cancel_url, follow=True))

    assert f"First Light by Nova Lark, on Spotify: done on {today()}, before its release." in listed
    assert "Already done" in asked
    assert f"on Spotify was done on {today()}, before its release, so there's nothing left to cancel" in asked
    assert f"First Light was already done on {today()}, before its release, so there was nothing to cancel" in (
        answered
    )
    for page in (listed, asked, answered):  # the words the fan agreed to ("… on release day") are theirs to read
        assert "release day" not in page.partition("What you agreed to")[0]


def test_a_done_pre_save_with_a_playlist_says_to_delete_the_playlist_too(client, delivered):
    type(delivered.campaign).objects.update(playlist_name="Glass Harbour — Pre-saves")

    page = text_of(client.get(privacy_url(delivered.fan)))

    assert (
        "to undo it, remove First Light from your Spotify library and delete the playlist “Glass Harbour — "
        "Pre-saves” in your Spotify account."
    ) in page


def test_posting_a_cancel_for_a_done_pre_save_changes_nothing_and_says_so(client, delivered):
    url = privacy_url(delivered.fan)
    token = url.split("/")[2]

    response = client.post(reverse("fans:privacy_revoke", args=[token, delivered.pk]), follow=True)

    consent = ConsentRecord.objects.get()
    assert (consent.revoked_at, consent.email_opt_in) == (None, True), "the email the fan asked for is not dropped"
    assert Fan.objects.get().email == "opted@fan.test"
    assert f"First Light was already done on {today()}, so there was nothing to cancel" in text_of(response)


def test_a_done_pre_save_whose_email_is_to_come_offers_to_stop_the_email(client, delivered):
    url = privacy_url(delivered.fan)
    assert "Stop the email" in text_of(client.get(url))

    response = client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], delivered.pk]), follow=True)

    page = text_of(response)
    assert "We won't email you about First Light" in page
    assert not ConsentRecord.objects.sharing_email().exists()
    assert ReleaseEmail.objects.get().unsubscribed_at is not None  # recorded as the email's own link would
    assert release_email.send_release_emails(delivered.campaign_id).startswith("release email")
    assert ReleaseEmail.objects.get().sent_at is None
    assert "Stop the email" not in page
    assert "you didn't ask for emails" not in page
    assert "not used any more: you stopped the email on" in page


def test_once_the_email_was_sent_too_nothing_is_offered(client, delivered, mailoutbox):
    release_email.send_release_emails(delivered.campaign_id)
    assert len(mailoutbox) == 1

    page = text_of(client.get(privacy_url(delivered.fan)))

    assert "Stop the email" not in page and "Cancel this pre-save" not in page


def test_cancelling_asks_first_and_changes_nothing_until_confirmed(client, waiting):
    token = privacy_url(waiting.fan).split("/")[2]

    response = client.get(reverse("fans:privacy_revoke", args=[token, waiting.pk]))

    assert response.status_code == 200
    page = text_of(response)
    assert "Cancel your pre-save?" in page
    assert "we'll delete the permission you gave us" in page and "won't email you" in page
    assert Subscription.objects.get().status == "pending" and Credential.objects.exists()


def test_the_question_lists_every_action_cancelling_stops_the_playlist_too(client, waiting):
    type(waiting.campaign).objects.update(follow_artist=True, playlist_name="Glass Harbour — Pre-saves")
    token = privacy_url(waiting.fan).split("/")[2]

    page = text_of(client.get(reverse("fans:privacy_revoke", args=[token, waiting.pk])))

    assert (
        "We won't save First Light by Nova Lark to your Spotify library, follow Nova Lark on Spotify or add First "
        "Light to a new private playlist “Glass Harbour — Pre-saves” in your Spotify account on release day, and "
        "we'll delete the permission you gave us."
    ) in page


def test_a_playlist_only_pre_save_s_question_names_the_playlist(client, waiting):
    type(waiting.campaign).objects.update(save_release=False, playlist_name="Glass Harbour <Pre-saves>")
    token = privacy_url(waiting.fan).split("/")[2]

    response = client.get(reverse("fans:privacy_revoke", args=[token, waiting.pk]))

    assert "“Glass Harbour &lt;Pre-saves&gt;”" in response.content.decode(), "the campaign's words, escaped"
    page = text_of(response)
    assert (
        "We won't add First Light to a new private playlist “Glass Harbour <Pre-saves>” in your Spotify account "
        "on release day, and we'll delete the permission you gave us."
    ) in page
    assert "library" not in page.split("Cancel your pre-save?")[-1]


def test_cancelling_says_afterwards_what_happened(client, waiting):
    token = privacy_url(waiting.fan).split("/")[2]

    response = client.post(reverse("fans:privacy_revoke", args=[token, waiting.pk]), follow=True)

    assert response.redirect_chain == [(reverse("fans:privacy", args=[token]), 302)]
    page = text_of(response)
    assert "Your pre-save of First Light on Spotify is cancelled" in page
    assert Subscription.objects.get().status == "revoked" and not Credential.objects.exists()
    assert "cancelled" in page and "Cancel this pre-save" not in page


def test_an_email_withdrawn_with_a_cancelled_pre_save_shows_as_withdrawn(client, waiting):
    token = privacy_url(waiting.fan).split("/")[2]
    client.post(reverse("fans:privacy_revoke", args=[token, waiting.pk]))

    page = text_of(client.get(privacy_url(waiting.fan)))

    assert "you didn't ask for emails" not in page
    assert "Email not used any more: withdrawn" in page
    never_asked = pre_save(waiting.campaign, "declined", "", opt_in=False).subscription.fan
    assert "Email none (you didn't ask for emails)" in text_of(client.get(privacy_url(never_asked)))


def test_what_the_fan_agreed_to_is_the_date_and_the_words_not_our_version_label(client, waiting):
    page = text_of(client.get(privacy_url(waiting.fan)))

    assert "v1" not in page and "wording" not in page  # make_consent's version label
    assert "Save this release to your Spotify library on release day." in page
    assert "Read your email address, so we can email you when it drops." in page  # the box the fan ticked
    agreed = timezone.localtime(ConsentRecord.objects.get().created_at)
    assert f"Agreed {agreed:%-d %B %Y}" in page


def test_the_export_names_the_words_and_labels_their_version_plainly(client, waiting):
    token = privacy_url(waiting.fan).split("/")[2]

    consent = client.get(reverse("fans:privacy_export", args=[token])).json()["consents"][0]

    assert consent["words_agreed_to"] == [
        "See your Spotify name and account id.",
        "Save this release to your Spotify library on release day.",
        "Read your email address, so we can email you when it drops.",
    ]
    assert consent["version_of_those_words"] == "v1" and "wording_version" not in consent


def test_someone_else_s_or_a_made_up_pre_save_is_a_404_and_a_bad_link_a_400(client, delivered, waiting):
    token = privacy_url(waiting.fan).split("/")[2]

    for name in ("privacy_revoke", "privacy_stop_email"):
        assert client.post(reverse(f"fans:{name}", args=[token, delivered.pk])).status_code == 404
        assert client.post(reverse(f"fans:{name}", args=[token, 10**30])).status_code == 404
        assert client.post(reverse(f"fans:{name}", args=["x" * 3000, waiting.pk])).status_code == 400
    assert client.get(reverse("fans:privacy_revoke", args=[token, delivered.pk])).status_code == 404
    assert ConsentRecord.objects.sharing_email().count() == 2


def test_after_stop_the_email_the_words_the_fan_agreed_to_mark_the_email_stopped_with_the_date(client, waiting):
    url = privacy_url(waiting.fan)
    read_email = "Read your email address, so we can email you when it drops."
    assert f"{read_email} (you stopped" not in text_of(client.get(url))

    client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], waiting.pk]))

    page = text_of(client.get(url))
    stopped = timezone.localtime(ReleaseEmail.objects.get().unsubscribed_at)
    assert f"{read_email} (you stopped the email on {stopped:%-d %B %Y})" in page
    assert f"not used any more: you stopped the email on {stopped:%-d %B %Y}" in page  # as the Email line says it
    assert "Save this release to your Spotify library on release day. (you stopped" not in page


def test_pre_saving_again_without_the_email_box_marks_the_email_stopped_on_that_day(client, sandbox):
    """The fan's later answer took the email back: the earlier consent's email words say when and how, and the
    Email line doesn't claim the fan never asked."""
    campaign = make_campaign()
    presave(client, campaign, email_opt_in=True)
    presave(client, campaign, email_opt_in=False)
    again = ConsentRecord.objects.latest("created_at")

    page = text_of(client.get(privacy_url(Fan.objects.get())))

    on = f"{timezone.localtime(again.created_at):%-d %B %Y}"
    read_email = "Read your email address, so we can email you when it drops."
    assert f"{read_email} (you stopped the email on {on}, pre-saving again without the email box)" in page
    assert f"Email not used any more: you pre-saved again on {on} without the email box" in page
    assert "(you stopped the email)" not in page and "you didn't ask for emails" not in page


def test_pre_saving_again_with_the_email_box_does_not_call_the_email_stopped(client, sandbox):
    campaign = make_campaign()
    presave(client, campaign, email_opt_in=True)
    presave(client, campaign, email_opt_in=True)
    again = ConsentRecord.objects.latest("created_at")

    page = text_of(client.get(privacy_url(Fan.objects.get())))

    on = f"{timezone.localtime(again.created_at):%-d %B %Y}"
    assert "you stopped the email" not in page
    assert f"(asked for again on {on}, with your later pre-save)" in page
    assert "Email alice@sandbox.test" in page


def test_after_stop_the_email_the_page_says_where_the_address_is_still_held_as_the_export_does(client, waiting):
    url = privacy_url(waiting.fan)
    client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], waiting.pk]))

    page = text_of(client.get(url))
    export = client.get(url + "export.json").json()

    assert export["fan"]["email"] == "" and [c["email"] for c in export["consents"]] == ["keen@fan.test"]
    assert [e["email"] for e in export["release_emails"]] == ["keen@fan.test"]
    stopped = timezone.localtime(ReleaseEmail.objects.get().unsubscribed_at)
    assert (
        f"Email not used any more: you stopped the email on {stopped:%-d %B %Y}. We still hold keen@fan.test in the "
        "record of what you agreed to, as its proof, and with our release-day email's record (whether it was sent, "
        "opened or clicked, and whether you unsubscribed), until you erase it"
    ) in page
    assert "none any more" not in page


def test_after_stop_the_email_planned_for_the_addresss_sign_up_the_page_says_the_fan_stopped_it(client):
    """The address's email sign-up had the campaign's email planned before the fan pre-saved with the box ticked
    (one email an address: its row names the sign-up, none of the pre-save's consents). After "Stop the email" the
    page says the fan stopped the email, as the words they agreed to do, not that they never asked for emails."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    sign_up(campaign, "keen@fan.test")
    release_email.plan_recipients(campaign)
    record = pre_save(campaign, "keen", "keen@fan.test", opt_in=True)
    ConsentRecord.objects.filter(pk=record.pk).update(scopes=["user-library-modify", "user-read-email"])
    subscription = record.subscription
    url = privacy_url(subscription.fan)

    page = text_of(
        client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], subscription.pk]), follow=True)
    )

    assert ReleaseEmail.objects.get().signup_id is not None
    assert f"Email not used any more: you stopped the email on {today()}." in page
    assert f"(you stopped the email on {today()})" in page
    assert "you didn't ask for emails" not in page


def test_the_privacy_page_shows_each_pre_saves_market_as_the_export_does(client, sandbox):
    campaign = make_campaign(default_market="GB")
    started = client.post(reverse("fans:presave", args=[campaign.slug, "spotify"]), HTTP_CF_IPCOUNTRY="NZ")
    client.get(CALLBACK, sandbox_login(started["Location"]))
    fan = Fan.objects.get()
    url = privacy_url(fan)

    page = text_of(client.get(url))
    export = client.get(url + "export.json").json()

    assert [s["market"] for s in export["subscriptions"]] == ["NZ"] and export["fan"]["country"] == ""
    assert "waiting for release day. Market: NZ." in page
    assert "Country none from Spotify; your pre-saves follow the release time of NZ" in page
    assert "Country —" not in page


def test_a_pre_save_with_no_country_known_follows_the_campaigns_default_on_the_privacy_page(client, sandbox):
    """Neither the profile nor the sign-up told a country: the pre-save holds no market (the export says so) and
    follows the campaign's default, as release day delivers it."""
    campaign = make_campaign(default_market="GB")
    presave(client, campaign)
    url = privacy_url(Fan.objects.get())

    page = text_of(client.get(url))
    export = client.get(url + "export.json").json()

    assert [s["market"] for s in export["subscriptions"]] == [""]
    assert "Market:" not in page
    assert "Country none from Spotify; your pre-saves follow the release time of GB" in page
    assert "Country —" not in page


def test_a_pre_save_whose_permission_was_withdrawn_in_the_service_is_not_called_cancelled(client, sandbox):
    """Release day (or Deliver now) finding the permission withdrawn in the fan's Spotify account ends the pre-save
    revoked, as the fan's cancel does, but the fan cancelled nothing: the consents stay as they were."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    presave(client, campaign)
    sandbox.control("POST", "users/alice/revoke")  # the fan removes our app's access in Spotify
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)
    subscription = Subscription.objects.get()
    assert subscription.status == "revoked" and ConsentRecord.objects.get().revoked_at is None
    url = privacy_url(subscription.fan)

    listed = text_of(client.get(url)).partition("What you agreed to")[0]
    asked = text_of(client.get(reverse("fans:privacy_revoke", args=[url.split("/")[2], subscription.pk])))

    assert (
        "First Light by Nova Lark, on Spotify: not done, the permission you gave us was withdrawn in your Spotify "
        "account." in listed
    )
    assert "Nothing left to cancel · First Light" in asked
    assert (
        "Your pre-save of First Light by Nova Lark on Spotify couldn't be done: the permission you gave us was "
        "withdrawn in your Spotify account, so there's nothing left to cancel." in asked
    )
    assert "cancelled" not in listed and "cancelled" not in asked


def test_a_pre_save_the_fan_cancelled_says_so_with_the_date(client, waiting):
    url = privacy_url(waiting.fan)
    cancel_url = reverse("fans:privacy_revoke", args=[url.split("/")[2], waiting.pk])
    client.post(cancel_url)

    listed = text_of(client.get(url)).partition("What you agreed to")[0]
    asked = text_of(client.get(cancel_url))

    assert "First Light by Nova Lark, on Spotify: cancelled." in listed
    assert "Already cancelled · First Light" in asked
    assert f"You cancelled your pre-save of First Light on {today()}. There's nothing more to do." in asked


def test_cancelling_a_pre_save_withdrawn_in_the_service_changes_nothing_and_says_why(client, sandbox):
    """A cancel page left open while release day found the permission withdrawn: its answer cancels nothing (the
    consents, and the email the fan asked for, stay as they were) and doesn't call it cancelled."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    presave(client, campaign, email_opt_in=True)
    subscription = Subscription.objects.get()
    url = privacy_url(subscription.fan)
    cancel_url = reverse("fans:privacy_revoke", args=[url.split("/")[2], subscription.pk])
    assert "Cancel your pre-save?" in text_of(client.get(cancel_url))
    sandbox.control("POST", "users/alice/revoke")  # the fan removes our app's access in Spotify
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)

    answered = text_of(client.post(cancel_url, follow=True))

    assert (
        "Your pre-save of First Light on Spotify couldn't be done: the permission you gave us was withdrawn in your "
        "Spotify account, so there was nothing to cancel." in answered
    )
    assert "cancelled" not in answered.partition("What you agreed to")[0]
    record = ConsentRecord.objects.get()
    assert record.revoked_at is None and record.email_opt_in
    assert Fan.objects.get().email == "alice@sandbox.test"


def withdrawn_with_email(client, sandbox) -> Subscription:
    """Alice pre-saved with the email box ticked, then removed the app's access in Spotify; Deliver now found it."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    presave(client, campaign, email_opt_in=True)
    sandbox.control("POST", "users/alice/revoke")
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)
    subscription = Subscription.objects.get()
    assert subscription.status == "revoked" and ConsentRecord.objects.sharing_email().exists()
    return subscription


def test_the_email_of_a_pre_save_withdrawn_in_the_service_still_goes_out_and_can_be_stopped(
    client, sandbox, mailoutbox
):
    """The permission withdrawn in the service is no answer to the email question: the release-day email still
    goes to the address the fan shared, so the privacy page and its cancel page say so and offer to stop it."""
    subscription = withdrawn_with_email(client, sandbox)
    url = privacy_url(subscription.fan)
    cancel_url = reverse("fans:privacy_revoke", args=[url.split("/")[2], subscription.pk])
    promise = "You asked us to email you when it's out, and we still will: “Stop the email” stops it."

    listed = text_of(client.get(url)).partition("What you agreed to")[0]
    asked = text_of(client.get(cancel_url))

    for page in (listed, asked):
        assert promise in page and "Stop the email" in page
    with time_machine.travel(timezone.now() + dt.timedelta(days=4)):
        assert release_email.send_release_emails(subscription.campaign_id).startswith(
            f"release email for campaign {subscription.campaign_id}: planned 1, sent 1"
        )
        after = text_of(client.get(url)).partition("What you agreed to")[0]
    assert mailoutbox[0].to == ["alice@sandbox.test"]
    assert "Stop the email" not in after and "email you" not in after


def test_a_stopped_email_of_a_pre_save_withdrawn_in_the_service_is_not_sent_nor_promised(client, sandbox, mailoutbox):
    subscription = withdrawn_with_email(client, sandbox)
    url = privacy_url(subscription.fan)
    page = client.get(url).content.decode()
    stop = re.search(r'<form method="post" action="(/privacy/[^"]+/stop-email/\d+/)">', page)

    stopped = text_of(client.post(stop[1], follow=True)).partition("What you agreed to")[0]

    assert "We won't email you about First Light: you'll get no email when it's out." in stopped
    assert "Stop the email" not in stopped and "email you when it's out" not in stopped
    with time_machine.travel(timezone.now() + dt.timedelta(days=4)):
        release_email.send_release_emails(subscription.campaign_id)
    assert mailoutbox == []


def listed_words(client, subscription) -> str:
    """What the privacy page says of `subscription`, as "First Light by Nova Lark, on Spotify: … ." goes on."""
    page = text_of(client.get(privacy_url(subscription.fan))).partition("What you agreed to")[0]
    return re.search(r"First Light by Nova Lark, on Spotify: ([^.]*)\.", page).group(1)


def test_a_pre_save_past_its_release_time_is_said_to_be_done_not_waiting_for_release_day(client, sandbox, settings):
    """Release day has come: the engine is doing it (its run is due at the release time), or trying again after a
    try that didn't go through (the service answered 5xx)."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    subscription = make_subscription(campaign, sandbox, "alice")
    assert listed_words(client, subscription) == "waiting for release day"

    with time_machine.travel(timezone.now() + dt.timedelta(days=3, minutes=1), tick=True):
        due = listed_words(client, subscription)
        sandbox.faults(error_rate=1.0)
        engine.deliver_campaign(campaign.pk, fan_out=False)
        retried = Subscription.objects.get()
        retrying = listed_words(client, subscription)
        assert retried.status == "pending" and retried.next_attempt_at > timezone.now() and retried.last_error
    assert due == "being done now"
    assert retrying == "being done: a try didn't go through, we'll try again"


def test_a_pre_save_waiting_for_the_release_in_the_fans_market_says_so(client, sandbox):
    """Out at its release time, but not yet on Spotify in the fan's market (or, with none known, the campaign's
    default one): the engine waits for it there."""
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1), default_market="US")
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    in_japan = make_subscription(campaign, sandbox, "bob")
    Subscription.objects.filter(pk=in_japan.pk).update(market="JP")
    unknown = make_subscription(campaign, sandbox, "chloe")
    engine.deliver_campaign(campaign.pk, fan_out=False)
    waiting = Subscription.objects.get(pk=in_japan.pk)
    assert waiting.status == "pending"
    assert waiting.last_error == "Waiting: the release is not available on Spotify in JP yet."

    in_japan_page = text_of(client.get(privacy_url(in_japan.fan)))
    unknown_page = text_of(client.get(privacy_url(unknown.fan)))

    assert "on Spotify: waiting for the release to come out on Spotify in your market. Market: JP." in in_japan_page
    assert "on Spotify: waiting for the release to come out on Spotify in US." in unknown_page
    assert "release day" not in in_japan_page + unknown_page


def cancel_question(client, subscription) -> str:
    """The privacy page's "Cancel this pre-save?" for `subscription`."""
    token = privacy.token_for_fan(subscription.fan)
    return text_of(client.get(reverse("fans:privacy_revoke", args=[token, subscription.pk])))


def test_past_its_release_time_the_cancel_question_says_what_is_being_done_not_release_day(client, sandbox, settings):
    """Release day has come: the question says what the engine is doing (doing it, or trying again after the
    service answered 5xx), in the privacy page's words, and what cancelling stops of it from then on."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    subscription = make_subscription(campaign, sandbox, "alice")
    before = cancel_question(client, subscription)

    with time_machine.travel(timezone.now() + dt.timedelta(days=3, minutes=1), tick=True):
        due = cancel_question(client, subscription)
        sandbox.faults(error_rate=1.0)
        engine.deliver_campaign(campaign.pk, fan_out=False)
        retrying = cancel_question(client, subscription)
        assert Subscription.objects.get().status == "pending"

    assert "We won't save First Light by Nova Lark to your Spotify library on release day" in before
    assert (
        "Your pre-save on Spotify is being done now. If you cancel before it's done, we won't save First Light by "
        "Nova Lark to your Spotify library, and we'll delete the permission you gave us." in due
    )
    assert (
        "Your pre-save on Spotify is being done: a try didn't go through, we'll try again. If you cancel before "
        "it's done, we won't save First Light by Nova Lark to your Spotify library" in retrying
    )
    assert "release day" not in due + retrying


def test_the_cancel_question_of_a_pre_save_waiting_for_the_release_in_the_fans_market_says_so(client, sandbox):
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1), default_market="US")
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    subscription = make_subscription(campaign, sandbox, "bob")
    Subscription.objects.filter(pk=subscription.pk).update(market="JP")
    engine.deliver_campaign(campaign.pk, fan_out=False)
    assert Subscription.objects.get().status == "pending"

    asked = cancel_question(client, Subscription.objects.get())

    assert (
        "Your pre-save on Spotify is waiting for the release to come out on Spotify in your market. If you cancel "
        "before it's done, we won't save First Light by Nova Lark to your Spotify library" in asked
    )
    assert "release day" not in asked


@pytest.mark.django_db(transaction=True)  # django-q2's scheduler closes the connection
def test_an_address_that_starts_sharing_after_the_last_email_run_is_promised_the_email_only_while_a_run_may_come(
    client, mailoutbox
):
    """Release day mailed the fan's address; the fan's service reports another one later (their pre-save of
    another release, with the box ticked, keeps it: fans/authorization.py `_update_fan`). That address has no
    email planned: the minute sweeper starts a run for it within a week of the release date (release_email
    .missed_runs), so the privacy page offers to stop that email then; after it, no run will come, and the page
    neither promises it nor offers to stop it."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    consent = pre_save(campaign, "opted", "opted@fan.test", opt_in=True)
    fired = campaign.release.release_at + dt.timedelta(minutes=1)
    with time_machine.travel(fired, tick=False):
        scheduler()  # django-q2's: the release-day email's schedule fires (the worker runs its task, below)
        summary = release_email.send_release_emails(campaign.pk)
        assert summary == f"release email for campaign {campaign.pk}: planned 1, sent 1"
    assert not Schedule.objects.filter(name__startswith=release_email.SCHEDULE_NAME_PREFIX).exclude(repeats=0)
    assert [m.to for m in mailoutbox] == [["opted@fan.test"]]
    Subscription.objects.filter(pk=consent.subscription_id).update(status="delivered", delivered_at=fired)
    Fan.objects.filter(pk=consent.subscription.fan_id).update(email="opted@new.test")
    fan = consent.subscription.fan

    with time_machine.travel(fired + dt.timedelta(days=4), tick=False):
        within_a_week = text_of(client.get(privacy_url(fan)))
        assert release_email.missed_runs(timezone.now()) == [campaign], "the sweeper starts a run for it"
    with time_machine.travel(fired + dt.timedelta(days=8), tick=False):
        after = text_of(client.get(privacy_url(fan)))
        assert release_email.missed_runs(timezone.now()) == [], "nothing starts one any more"

    assert "You asked us to email you when it's out: “Stop the email” stops only that." in within_a_week
    assert "First Light by Nova Lark, on Spotify: done on" in after
    assert "Stop the email" not in after and "email you when it's out" not in after
    assert len(mailoutbox) == 1


def test_cancelled_past_its_release_time_the_answer_says_it_wont_be_done_not_release_day(client, sandbox, settings):
    """Cancelled while the engine tries again (the service answered 5xx), past the fan's release time: the answer,
    on the privacy page and on the revoke link's, says it won't be done, not "nothing will be done on release
    day"."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    on_privacy_page = make_subscription(campaign, sandbox, "alice")
    _, revoke_token = presaved(campaign, sandbox, "bob")
    sandbox.faults(error_rate=1.0)
    engine.deliver_campaign(campaign.pk, fan_out=False)
    assert set(Subscription.objects.values_list("status", flat=True)) == {"pending"}
    token = privacy.token_for_fan(on_privacy_page.fan)

    answered = client.post(reverse("fans:privacy_revoke", args=[token, on_privacy_page.pk]), follow=True)
    by_link = text_of(client.post(reverse("fans:revoke", args=[revoke_token])))

    said = (
        "Your pre-save of First Light on Spotify is cancelled: it won't be done, and we've deleted the permission "
        "you gave us."
    )
    assert said in text_of(answered) and said in by_link
    assert "release day" not in text_of(answered).partition("What you agreed to")[0] + by_link


def test_a_pre_save_whose_save_went_through_while_its_follow_is_retried_is_told_only_what_cancelling_stops(
    client, sandbox, settings
):
    """The save went through, the follow is being tried again (the service answered 503 to it): the cancel
    questions, the privacy page's and the revoke link's, no longer say "we won't save …", but that we won't follow,
    that the save stays, and how to undo it; so does the answer."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = make_campaign(follow_artist=True, release_in=-dt.timedelta(minutes=1))
    subscription, revoke_token = presaved(campaign, sandbox)
    sandbox.faults(errors_matching="spotify:artist:")  # the follow is down, the save is up
    engine.deliver_campaign(campaign.pk, fan_out=False)
    subscription.refresh_from_db()
    assert (subscription.status, subscription.done_calls) == ("pending", "save")

    asked = cancel_question(client, subscription)
    by_link = text_of(client.get(reverse("fans:revoke", args=[revoke_token])))
    answered = text_of(client.post(reverse("fans:revoke", args=[revoke_token])))

    question = (
        "Your pre-save on Spotify is being done: a try didn't go through, we'll try again. If you cancel before it's "
        "done, we won't follow Nova Lark on Spotify, and we'll delete the permission you gave us. What was done "
        "stays: to undo it, remove First Light from your Spotify library."
    )
    assert question in asked and question in by_link
    assert "we won't save" not in asked + by_link
    assert (
        "Your pre-save of First Light on Spotify is cancelled: the rest of it won't be done, and we've deleted the "
        "permission you gave us. What was done stays: to undo it, remove First Light from your Spotify library."
    ) in answered
    assert [w["uri"] for w in sandbox.writes("alice")] == [f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"]


def test_cancelling_a_pre_save_that_couldnt_be_done_says_it_only_withdraws_the_permission(client, sandbox, settings):
    """Past the release time the engine gave up on the save (the service answered 503): the pre-save failed, its
    token kept for Retry failed. Its cancel questions no longer say "We won't save … on release day": cancelling it
    only withdraws the permission, and deletes it while it is kept; once retention dropped it, only the consent.
    The answers say what was done."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    alice = make_subscription(campaign, sandbox, "alice")
    _, revoke_token = presaved(campaign, sandbox, "bob")
    sandbox.faults(errors_matching="spotify:album:")  # the save is down: both are given up after one attempt
    engine.deliver_campaign(campaign.pk, fan_out=False)
    assert set(Subscription.objects.values_list("status", flat=True)) == {"failed"}
    assert Credential.objects.count() == 2, "kept for Retry failed"

    asked = cancel_question(client, alice)
    by_link = text_of(client.get(reverse("fans:revoke", args=[revoke_token])))
    with time_machine.travel(timezone.now() + dt.timedelta(days=settings.RETENTION_SETTLED_TOKEN_DAYS + 1)):
        retention.forget_expired()
        dropped = cancel_question(client, alice)
        token = privacy.token_for_fan(alice.fan)
        answered = text_of(client.post(reverse("fans:privacy_revoke", args=[token, alice.pk]), follow=True))
    by_link_answered = text_of(client.post(reverse("fans:revoke", args=[revoke_token])))

    kept = (
        "Your pre-save on Spotify couldn't be done. We keep the permission you gave us for a while, in case the "
        "label tries it again: cancelling it only withdraws that permission, and we'll delete it."
    )
    assert kept in asked and kept in by_link
    assert (
        "Your pre-save on Spotify couldn't be done, and the permission you gave us is already deleted: cancelling "
        "it only withdraws your consent." in dropped
    )
    said = (
        "Your pre-save of First Light on Spotify, which couldn't be done, is cancelled: we've withdrawn the "
        "permission you gave us, so it can't be tried again."
    )
    assert said in answered and said in by_link_answered
    for page in (asked, by_link, dropped, answered.partition("What you agreed to")[0], by_link_answered):
        assert "release day" not in page and "We won't save" not in page
    assert set(Subscription.objects.values_list("status", flat=True)) == {"revoked"}
    assert not Credential.objects.exists()


@pytest.mark.django_db(transaction=True)  # Retry failed commits on a connection of its own
def test_a_retry_failed_landing_before_the_cancel_takes_its_lock_is_answered_as_the_pre_save_it_cancelled(
    client, sandbox, settings
):
    """The fan's cancel reads the pre-save while staff's Retry failed holds it (re-queued, not yet committed):
    the cancel waits for the row, then cancels a pre-save that is pending again. Its answer says so ("it won't be
    done"), from the status it cancelled, not the "couldn't be done" read before."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    alice = make_subscription(campaign, sandbox, "alice")
    sandbox.faults(errors_matching="spotify:album:")  # the save is down: given up after one attempt
    engine.deliver_campaign(campaign.pk, fan_out=False)
    alice.refresh_from_db()
    assert alice.status == "failed" and alice.last_error.startswith(engine.GAVE_UP)

    with held_in_another_transaction(
        lambda: retry.retry_failed(campaign), holding="Retry failed to re-queue it", waiter="the cancel"
    ) as requeued:
        subscription, cancelled, failed = privacy.revoke_one(privacy.Subject(fan=alice.fan), alice.pk)

    assert requeued == 1
    assert (subscription.status, cancelled, failed) == ("revoked", True, False)
    said = pages.cancelled_words(subscription, cancelled=cancelled, failed=failed)
    assert said.startswith("Your pre-save of First Light on Spotify is cancelled: it won't be done")
    assert "couldn't be done" not in said


@pytest.mark.django_db(transaction=True)  # the erasure commits on a connection of its own
@pytest.mark.parametrize("link", ["the fan's", "the address's"])
def test_an_erasure_landing_before_the_cancel_takes_its_lock_leaves_a_pre_save_that_is_no_longer_theirs(
    client, waiting, link
):
    """The privacy page's cancel reads the pre-save while the fan's erasure (the same page's "erase everything",
    from another tab or link, or staff's) holds it, not yet committed: the cancel waits for the row, and then
    answers as the page does once erased, not with a 500 (the pre-save deleted with its fan) nor as a cancel of a
    pre-save the erasure revoked (erased by address: the pre-save stays, no longer the address's)."""
    subject, token = erasing_by(link, waiting)

    with held_in_another_transaction(
        lambda: privacy.erase(subject), holding="the erasure to hold the pre-save", waiter="the cancel"
    ) as erased:
        response = client.post(reverse("fans:privacy_revoke", args=[token, waiting.pk]))

    assert erased["subscriptions"] == 1
    assert response.status_code == 404 and "That pre-save isn't yours or no longer exists." in text_of(response)
    assert client.post(reverse("fans:privacy_revoke", args=[token, waiting.pk])).status_code in (404, 410)


@pytest.mark.django_db(transaction=True)  # the erasure commits on a connection of its own
@pytest.mark.parametrize("link", ["the fan's", "the address's"])
def test_an_erasure_landing_before_stop_the_email_takes_its_lock_leaves_no_email_to_the_erased_address(
    client, waiting, link
):
    """ "Stop the email" reads the pre-save while the fan's erasure holds it, not yet committed: it waits for the
    pre-save, and then answers as the page does once erased, without writing a release-day email row (made to
    record the unsubscribe when none was planned) that would hold the address the erasure took away."""
    subject, token = erasing_by(link, waiting)
    assert not ReleaseEmail.objects.exists()

    with held_in_another_transaction(
        lambda: privacy.erase(subject), holding="the erasure to hold the pre-save", waiter="stop the email"
    ) as erased:
        response = client.post(reverse("fans:privacy_stop_email", args=[token, waiting.pk]))

    assert erased["subscriptions"] == 1
    assert response.status_code == 404 and "That pre-save isn't yours or no longer exists." in text_of(response)
    assert not ReleaseEmail.objects.filter(email__iexact="keen@fan.test").exists()


@pytest.mark.parametrize("way", ["privacy page", "revoke link"])
@pytest.mark.parametrize("also", ["deezer", "sign-up"])
def test_cancelling_a_pre_save_whose_address_something_else_asks_the_email_for_does_not_say_no_email(
    client, mailoutbox, way, also
):
    """The release-day email goes once an address: the fan pre-saved on Spotify with the email box ticked, and the
    same address asks for the campaign's email another way (their pre-save on Deezer, or an email sign-up).
    Cancelling the Spotify one doesn't stop the email: the question and the answer say it still comes, and why,
    not "we won't email you about it"; release day's run does email that address."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    fan = Fan.objects.create(service="spotify", service_user_id="keen", display_name="Keen", email="keen@fan.test")
    subscription = Subscription.objects.create(fan=fan, campaign=campaign)
    record = ConsentRecord(
        subscription=subscription, campaign=campaign, service="spotify", service_user_id="keen",
        email="keen@fan.test", email_opt_in=True, wording_version="v1",
    )  # fmt: skip
    revoke_token = record.issue_revoke_token()
    record.save()
    if also == "deezer":
        on_deezer = Fan.objects.create(service="deezer", service_user_id="keen-dz", email="keen@fan.test")
        make_consent(
            Subscription.objects.create(fan=on_deezer, campaign=campaign), email="keen@fan.test", email_opt_in=True
        )
        why = "your pre-save on Deezer asks for it too"
    else:
        sign_up(campaign, "Keen@fan.test")
        why = "your email sign-up asks for it too"
    token = privacy.token_for_fan(fan)

    if way == "privacy page":
        asked = text_of(client.get(reverse("fans:privacy_revoke", args=[token, subscription.pk])))
        answered = text_of(client.post(reverse("fans:privacy_revoke", args=[token, subscription.pk]), follow=True))
    else:
        asked = text_of(client.get(reverse("fans:revoke", args=[revoke_token])))
        answered = text_of(client.post(reverse("fans:revoke", args=[revoke_token])))

    assert f"You'll still get the email you asked for when it's out: {why}." in asked
    assert "we won't email you when it's out" not in asked
    assert (
        "Your pre-save of First Light on Spotify is cancelled: it won't be done, and we've deleted the permission "
        f"you gave us. We'll still email you when it's out: {why}."
    ) in answered
    assert "we won't email you" not in answered.lower()
    with time_machine.travel(campaign.release.release_at + dt.timedelta(minutes=1)):
        release_email.send_release_emails(campaign.pk)
    assert [[address.lower() for address in mail.to] for mail in mailoutbox] == [["keen@fan.test"]]


def test_an_email_planned_for_a_cancelled_pre_save_still_goes_when_another_pre_save_of_the_address_asks(
    client, mailoutbox
):
    """The release-day run planned the address's one email for one of the fan's pre-saves (Spotify, Deezer), then
    the mail server failed; the fan cancels that pre-save, while the other one still asks for the email at the same
    address. The answer says it still comes, and the run that retries sends it."""
    campaign = make_campaign(release_in=-dt.timedelta(minutes=5), status="delivering", services=["spotify", "deezer"])
    pre_save(campaign, "keen", "keen@fan.test", opt_in=True)
    on_deezer = Fan.objects.create(service="deezer", service_user_id="keen-dz", email="keen@fan.test")
    make_consent(
        Subscription.objects.create(fan=on_deezer, campaign=campaign), email="keen@fan.test", email_opt_in=True
    )
    release_email.plan_recipients(campaign)  # the run's first step; its sending failed
    planned_for = ReleaseEmail.objects.get().consent.subscription
    other = "Deezer" if planned_for.fan.service == "spotify" else "Spotify"
    token = privacy.token_for_fan(planned_for.fan)

    answered = text_of(client.post(reverse("fans:privacy_revoke", args=[token, planned_for.pk]), follow=True))
    release_email.send_release_emails(campaign.pk)

    assert f"We'll still email you when it's out: your pre-save on {other} asks for it too." in answered
    assert [mail.to for mail in mailoutbox] == [["keen@fan.test"]]


@pytest.mark.parametrize("unsubscribed_since", [False, True])
@pytest.mark.parametrize("way", ["privacy page", "revoke link"])
def test_cancelled_after_its_release_day_email_was_sent_the_answer_says_it_was_sent_not_that_we_wont_email(
    client, sandbox, settings, mailoutbox, way, unsubscribed_since
):
    """The fan asked for the release-day email; past the release time their save is tried again (the service
    answered 5xx) and release day's run has emailed their address. Cancelling then, on the privacy page or by the
    revoke link, the answer says the email was sent and nothing more will come, not "we won't email you about
    it". Also once the fan used the email's own unsubscribe link (the pre-save shares the address no more, the
    fan's is forgotten), as "Stop the email" says then."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = make_campaign(release_in=-dt.timedelta(minutes=1))
    subscription = make_subscription(campaign, sandbox, "alice")
    Fan.objects.filter(pk=subscription.fan_id).update(email="alice@fan.test")
    record = ConsentRecord(
        subscription=subscription, campaign=campaign, service="spotify", service_user_id="alice",
        email="alice@fan.test", email_opt_in=True, wording_version="v1",
    )  # fmt: skip
    revoke_token = record.issue_revoke_token()
    record.save()
    sandbox.faults(error_rate=1.0)
    engine.deliver_campaign(campaign.pk, fan_out=False)
    release_email.send_release_emails(campaign.pk)
    subscription.refresh_from_db()
    assert subscription.status == "pending"
    assert [mail.to for mail in mailoutbox] == [["alice@fan.test"]]
    if unsubscribed_since:
        release_email.unsubscribe(ReleaseEmail.objects.get())
        assert Fan.objects.get().email == ""

    if way == "privacy page":
        token = privacy.token_for_fan(subscription.fan)
        answered = text_of(client.post(reverse("fans:privacy_revoke", args=[token, subscription.pk]), follow=True))
    else:
        answered = text_of(client.post(reverse("fans:revoke", args=[revoke_token])))

    assert (
        "Your pre-save of First Light on Spotify is cancelled: it won't be done, and we've deleted the permission "
        f"you gave us. The email you asked for was already sent on {today()}: nothing more will come."
    ) in answered
    assert "we won't email you" not in answered.lower()
    release_email.send_release_emails(campaign.pk)
    assert len(mailoutbox) == 1


@pytest.mark.parametrize("also", ["deezer", "sign-up", "both"])
def test_stop_the_email_says_it_stops_the_email_of_the_other_pre_save_or_sign_up_sharing_the_address(
    client, mailoutbox, also
):
    """The fan pre-saved on Spotify with the email box ticked, and the same address asks for the campaign's email
    another way (their pre-save on Deezer, an email sign-up, or both). One email goes to an address: the privacy
    page's "Stop the email" stops it for all of them, and its words and its confirmation say so, not "stops only
    that". Release day's run sends that address nothing."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    record = pre_save(campaign, "keen", "keen@fan.test", opt_in=True)
    elsewhere = []
    if also in ("deezer", "both"):
        on_deezer = Fan.objects.create(service="deezer", service_user_id="keen-dz", email="keen@fan.test")
        make_consent(
            Subscription.objects.create(fan=on_deezer, campaign=campaign), email="keen@fan.test", email_opt_in=True
        )
        elsewhere.append("your pre-save on Deezer")
    if also in ("sign-up", "both"):
        sign_up(campaign, "Keen@fan.test")
        elsewhere.append("your email sign-up")
    subscription = record.subscription
    url = privacy_url(subscription.fan)
    stops = "this pre-save, " + " and ".join(elsewhere) if len(elsewhere) > 1 else f"this pre-save and {elsewhere[0]}"
    asks = "asks" if len(elsewhere) == 1 else "ask"

    page = text_of(client.get(url))
    stopped = text_of(
        client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], subscription.pk]), follow=True)
    )

    assert (
        f"You asked us to email you when it's out, and {' and '.join(elsewhere)} {asks} for it too: it's one email "
        f"to your address, so “Stop the email” stops it for {stops}; cancelling this pre-save doesn't stop it."
    ) in page
    assert "stops only that" not in page
    assert (
        "We won't email you about First Light: you'll get no email when it's out. That stops it for "
        f"{stops}: it's one email to your address."
    ) in stopped
    with time_machine.travel(campaign.release.release_at + dt.timedelta(minutes=1)):
        release_email.send_release_emails(campaign.pk)
    assert mailoutbox == []


def test_a_playlist_made_whose_add_didnt_go_through_is_named_as_the_empty_playlist_to_delete(client, sandbox, settings):
    """Past the release time the save went through and the playlist was made in the fan's account, but the add of
    the release's tracks didn't (the service answered 503 to it): the empty playlist stays there. The cancel
    questions, the privacy page's and the revoke link's, and the answer name it among what to undo."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = playlist_campaign(release_in=-dt.timedelta(minutes=1))
    subscription = make_subscription(campaign, sandbox, "alice", scope=PLAYLIST_SCOPES)
    record = ConsentRecord(
        subscription=subscription, campaign=campaign, service="spotify", service_user_id="alice",
        scopes=PLAYLIST_SCOPES.split(), wording_version="v1",
    )  # fmt: skip
    revoke_token = record.issue_revoke_token()
    record.save()
    sandbox.faults(errors_matching="/items")  # the add is down: 503, the create and the save are up
    engine.deliver_campaign(campaign.pk, fan_out=False)
    subscription.refresh_from_db()
    playlist = only_playlist(sandbox, "alice")
    assert (subscription.status, playlist["items"]) == ("pending", [])
    assert subscription.done_calls == f"save playlist-made:{playlist['id']}"

    asked = cancel_question(client, subscription)
    by_link = text_of(client.get(reverse("fans:revoke", args=[revoke_token])))
    answered = text_of(client.post(reverse("fans:revoke", args=[revoke_token])))

    undo = (
        "What was done stays: to undo it, remove First Light from your Spotify library and delete the empty "
        f"playlist “{PLAYLIST_NAME}” in your Spotify account."
    )
    assert undo in asked and undo in by_link and undo in answered


def test_a_playlist_partly_filled_when_its_adds_stopped_is_named_as_the_playlist_to_delete(client, sandbox, settings):
    """An album of more than a hundred tracks: the first add went through, the next didn't, and the engine gave up.
    The playlist stays with part of the release in it: the cancel question names it among what to undo."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    campaign = playlist_campaign(release_in=-dt.timedelta(minutes=1))
    tracks = long_player(sandbox, campaign, 150)
    subscription = make_subscription(campaign, sandbox, "alice", scope=PLAYLIST_SCOPES)
    sandbox.faults(errors_matching="/items", errors_matching_after=1)  # one add goes through, the next fails
    engine.deliver_campaign(campaign.pk, fan_out=False)
    subscription.refresh_from_db()
    assert subscription.status == "failed" and only_playlist(sandbox, "alice")["items"] == tracks[:100]

    asked = cancel_question(client, subscription)

    assert (
        "What was done stays: to undo it, remove First Light from your Spotify library and delete the partly filled "
        f"playlist “{PLAYLIST_NAME}” in your Spotify account."
    ) in asked


def test_a_playlist_made_but_not_filled_is_the_playlist_cancelling_stops_adding_to(client, sandbox, settings):
    """The engine made the playlist but its add didn't go through, and it will try again: the playlist is in the
    fan's account already. The cancel question says cancelling stops adding the release to that playlist, the
    empty one (or the rest of it to the partly filled one), not to "a new private playlist"."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = playlist_campaign(release_in=-dt.timedelta(minutes=1))
    tracks = long_player(sandbox, campaign, 150)
    subscription = make_subscription(campaign, sandbox, "alice", scope=PLAYLIST_SCOPES)
    sandbox.faults(errors_matching="/items")  # every add is down: the playlist stays empty
    engine.deliver_campaign(campaign.pk, fan_out=False)
    subscription.refresh_from_db()
    assert (subscription.status, only_playlist(sandbox, "alice")["items"]) == ("pending", [])

    empty = cancel_question(client, subscription)

    assert (
        "If you cancel before it's done, we won't add First Light to the empty playlist "
        f"“{PLAYLIST_NAME}” in your Spotify account, and we'll delete the permission you gave us."
    ) in empty
    assert "new private playlist" not in empty

    sandbox.faults(errors_matching="")
    sandbox.faults(errors_matching="/items", errors_matching_after=1)  # one add goes through, the next fails
    Subscription.objects.filter(pk=subscription.pk).update(next_attempt_at=timezone.now())
    engine.deliver_campaign(campaign.pk, fan_out=False)
    subscription.refresh_from_db()
    assert (subscription.status, only_playlist(sandbox, "alice")["items"]) == ("pending", tracks[:100])

    partly = cancel_question(client, subscription)

    assert (
        "If you cancel before it's done, we won't add the rest of First Light to the partly filled playlist "
        f"“{PLAYLIST_NAME}” in your Spotify account, and we'll delete the permission you gave us."
    ) in partly


def test_cancelling_a_pre_save_that_never_asked_for_the_email_says_nothing_of_an_email(client, sandbox):
    """Neither fan ticked the email box: the answer, on the privacy page and on the revoke link's, says what
    cancelling did, not "we won't email you about it", which only a fan who asked for the email is told."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    on_privacy_page = make_subscription(campaign, sandbox, "alice")
    _, revoke_token = presaved(campaign, sandbox, "bob")
    asked, _ = presaved(campaign, sandbox, "chloe")
    ConsentRecord.objects.filter(subscription=asked).update(email="chloe@fan.test", email_opt_in=True)
    Fan.objects.filter(pk=asked.fan_id).update(email="chloe@fan.test")
    token = privacy.token_for_fan(on_privacy_page.fan)

    answered = text_of(client.post(reverse("fans:privacy_revoke", args=[token, on_privacy_page.pk]), follow=True))
    by_link = text_of(client.post(reverse("fans:revoke", args=[revoke_token])))
    chloe = text_of(
        client.post(reverse("fans:privacy_revoke", args=[privacy.token_for_fan(asked.fan), asked.pk]), follow=True)
    )

    said = (
        "Your pre-save of First Light on Spotify is cancelled: it won't be done, and we've deleted the permission "
        "you gave us."
    )
    assert said in answered and said in by_link
    assert "we won't email you" not in answered + by_link
    assert (
        "Your pre-save of First Light on Spotify is cancelled: it won't be done, we've deleted the permission you "
        "gave us, and we won't email you about it."
    ) in chloe


@pytest.mark.django_db(transaction=True)  # the run commits on a connection of its own
@pytest.mark.parametrize("consented_with", ["Keen@Fan.test", "keen@old.test"])
def test_stop_the_email_takes_the_row_a_run_planned_meanwhile_in_another_case(client, mailoutbox, consented_with):
    """A run of the release-day email plans the address from its sign-up (stored in lower case, keen@fan.test),
    not yet committed, when the fan, who pre-saved since with the address as the service reports it
    (Keen@Fan.test), stops the email on the privacy page: its row for the address waits for the run's, then is
    skipped, and the run's row records the unsubscribe. One row, unsubscribed; the pre-save shares the address no
    more, the sign-up ends with it, as the page says; nobody is mailed. Also when the pre-save's consent holds
    the address the service reported then (keen@old.test), before another pre-save brought the fan's new one: the
    run's row, the sign-up's, does not name that consent, as the row Stop the email makes does."""
    campaign = make_campaign(release_in=dt.timedelta(minutes=-5), status="done")
    sign_up(campaign, "keen@fan.test")

    with held_in_another_transaction(
        lambda: release_email.plan_recipients(campaign), holding="the run to plan", waiter="stop the email"
    ):
        record = pre_save(campaign, "keen", "Keen@Fan.test", opt_in=True)
        ConsentRecord.objects.filter(pk=record.pk).update(email=consented_with)
        url = privacy_url(record.subscription.fan)
        response = client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], record.subscription_id]))

    assert response.status_code == 302
    stopped = text_of(client.get(response.url))
    assert (
        "We won't email you about First Light: you got no email about it, and you'll get none. That stops it for "
        "this pre-save and your email sign-up: it's one email to your address."
    ) in stopped
    email = ReleaseEmail.objects.get()
    assert (email.email, email.unsubscribed_at is not None) == ("keen@fan.test", True)
    assert not ConsentRecord.objects.sharing_email().exists()
    summary = release_email.send_release_emails(campaign.pk)
    assert summary.startswith(f"release email for campaign {campaign.pk}: planned 0, sent 0")
    assert mailoutbox == []


@pytest.mark.parametrize("reported_since", ["", "opted@new.test"])
def test_stop_the_email_from_a_page_read_before_the_email_went_says_it_was_sent_and_records_the_stop(
    client, delivered, mailoutbox, reported_since
):
    """The privacy page offered "Stop the email" (read while the email was to come); the release-day run sent it
    before the fan pressed the button. The answer says so, as the cancel's does, and the stop is recorded as the
    email's own unsubscribe link records it: the fan asked us to stop emailing them, so the pre-save shares the
    address no more (the fan's is forgotten) and the page says they stopped the email. Also when the email went
    to the address the fan's service reported since (`reported_since`), not the one the consent was given with."""
    url = privacy_url(delivered.fan)
    assert "Stop the email" in text_of(client.get(url))
    if reported_since:
        Fan.objects.update(email=reported_since)
    assert release_email.send_release_emails(delivered.campaign_id).startswith(
        f"release email for campaign {delivered.campaign_id}: planned 1, sent 1"
    )

    response = client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], delivered.pk]), follow=True)

    answered = text_of(response)
    assert f"The email you asked for about First Light was already sent on {today()}: nothing more will come." in (
        answered
    )
    assert "we won't email you" not in answered.lower()
    assert f"not used any more: you stopped the email on {today()}" in answered
    email = ReleaseEmail.objects.get()
    assert (email.email, email.sent_at is not None, email.unsubscribed_at is not None) == (
        reported_since or "opted@fan.test",
        True,
        True,
    )
    assert not ConsentRecord.objects.sharing_email().exists()
    assert Fan.objects.get().email == ""
    assert [mail.to for mail in mailoutbox] == [[reported_since or "opted@fan.test"]]


@pytest.mark.django_db(transaction=True)  # the run commits on a connection of its own
@pytest.mark.parametrize("planned_before", [False, True])
def test_stop_the_email_while_a_run_sends_it_says_it_was_sent(client, mailoutbox, planned_before):
    """A run of the release-day email plans the fan's address and sends it, not yet committed, when the fan stops
    the email: the pre-save still finds the email to come, and its row for the address waits for the run's, then
    is taken once the run commits. The email went: the answer says so, as the cancel's does, and the stop is
    recorded as the email's own unsubscribe link records it (the consent shares the address no more). Also when an
    earlier run planned the row, and this one sends it."""
    campaign = make_campaign(release_in=dt.timedelta(minutes=-5), status="done")
    record = pre_save(campaign, "keen", "keen@fan.test", opt_in=True)
    url = privacy_url(record.subscription.fan)
    if planned_before:
        release_email.plan_recipients(campaign)

    with held_in_another_transaction(
        lambda: release_email.send_release_emails(campaign.pk), holding="the run to send", waiter="stop the email"
    ):
        response = client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], record.subscription_id]))

    assert response.status_code == 302
    answered = text_of(client.get(response.url))
    assert f"The email you asked for about First Light was already sent on {today()}: nothing more will come." in (
        answered
    )
    assert "we won't email you" not in answered.lower()
    email = ReleaseEmail.objects.get()
    assert (email.email, email.sent_at is not None, email.unsubscribed_at is not None) == ("keen@fan.test", True, True)
    assert not ConsentRecord.objects.sharing_email().exists()
    assert [mail.to for mail in mailoutbox] == [["keen@fan.test"]]


def test_stop_the_email_from_a_page_read_before_the_email_went_and_its_link_unsubscribed_says_it_was_sent(
    client, delivered, mailoutbox
):
    """As above, and the fan used the email's own unsubscribe link since (its pre-save shares the address no
    more, the fan's is forgotten): the answer still says when the email went, not that none will come when it's
    out; the unsubscribe the link recorded stays as it was."""
    url = privacy_url(delivered.fan)
    release_email.send_release_emails(delivered.campaign_id)
    release_email.unsubscribe(ReleaseEmail.objects.get())
    unsubscribed_at = ReleaseEmail.objects.get().unsubscribed_at

    response = client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], delivered.pk]), follow=True)

    answered = text_of(response)
    assert f"The email you asked for about First Light was already sent on {today()}: nothing more will come." in (
        answered
    )
    assert "we won't email you" not in answered.lower()
    assert ReleaseEmail.objects.get().unsubscribed_at == unsubscribed_at
    assert len(mailoutbox) == 1


def mailed_before_another_address() -> tuple[ConsentRecord, dt.datetime]:
    """Opted pre-saved with the email box ticked; release day mailed opted@fan.test, when it fired. The fan's
    service reported another address since (opted@new.test): no email is planned for it. Needs a transactional
    test: django-q2's scheduler closes the connection."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    consent = pre_save(campaign, "opted", "opted@fan.test", opt_in=True)
    fired = campaign.release.release_at + dt.timedelta(minutes=1)
    with time_machine.travel(fired, tick=False):
        scheduler()  # django-q2's: the release-day email's schedule fires (the worker runs its task, below)
        assert (
            release_email.send_release_emails(campaign.pk)
            == f"release email for campaign {campaign.pk}: planned 1, sent 1"
        )
    Subscription.objects.filter(pk=consent.subscription_id).update(status="delivered", delivered_at=fired)
    Fan.objects.filter(pk=consent.subscription.fan_id).update(email="opted@new.test")
    return consent, fired


@pytest.mark.django_db(transaction=True)  # django-q2's scheduler closes the connection
def test_stop_the_email_to_an_address_reported_after_the_email_went_says_when_it_went(client, mailoutbox):
    """Release day mailed the fan's address; their service reported another one since, which the minute sweeper
    mails within a week of the release date: the fan stops that email. The answer says when the email they asked
    for went (to the address they had then), not that none will come when it's out: the email planned for the
    pre-save's consent is its own, also once the stop made the consent share the address no more."""
    consent, fired = mailed_before_another_address()

    with time_machine.travel(fired + dt.timedelta(days=4), tick=False):
        token = privacy_url(consent.subscription.fan).split("/")[2]
        answered = text_of(
            client.post(reverse("fans:privacy_stop_email", args=[token, consent.subscription_id]), follow=True)
        )

    sent_on = f"{timezone.localtime(fired):%-d %B %Y}"
    assert f"The email you asked for about First Light was already sent on {sent_on}: nothing more will come." in (
        answered
    )
    assert "we won't email you" not in answered.lower()
    unsubscribed = ReleaseEmail.objects.filter(unsubscribed_at__isnull=False)
    assert list(unsubscribed.values_list("email", "sent_at")) == [("opted@new.test", None)]
    assert [m.to for m in mailoutbox] == [["opted@fan.test"]]


@pytest.mark.django_db(transaction=True)  # django-q2's scheduler closes the connection
def test_stop_the_email_from_a_page_read_before_the_last_email_run_went_records_the_stop(client, mailoutbox):
    """As above, and the fan pressed "Stop the email" once the week was over: no run comes any more to mail the
    new address, but the fan asked us to stop emailing them. The stop is recorded as before sending (the new
    address's email made and marked unsubscribed), the pre-save shares the address no more, the fan's is
    forgotten, and the page says they stopped the email and when the one they asked for went."""
    consent, fired = mailed_before_another_address()
    with time_machine.travel(fired + dt.timedelta(days=4), tick=False):
        assert "Stop the email" in text_of(client.get(privacy_url(consent.subscription.fan)))

    with time_machine.travel(fired + dt.timedelta(days=8), tick=False):
        assert not release_email.runs_to_come(consent.campaign)
        token = privacy_url(consent.subscription.fan).split("/")[2]  # a fresh link: the page's has expired
        answered = text_of(
            client.post(reverse("fans:privacy_stop_email", args=[token, consent.subscription_id]), follow=True)
        )
        stopped_on = today()

    sent_on = f"{timezone.localtime(fired):%-d %B %Y}"
    assert f"The email you asked for about First Light was already sent on {sent_on}: nothing more will come." in (
        answered
    )
    assert f"Email not used any more: you stopped the email on {stopped_on}" in answered
    unsubscribed = ReleaseEmail.objects.filter(unsubscribed_at__isnull=False)
    assert list(unsubscribed.values_list("email", "sent_at")) == [("opted@new.test", None)]
    assert not ConsentRecord.objects.sharing_email().exists()
    assert Fan.objects.get().email == ""
    assert [m.to for m in mailoutbox] == [["opted@fan.test"]]


def test_stop_the_email_from_a_page_read_before_the_mail_server_refused_it_records_the_stop(
    client,
    delivered,
    smtp_server,  # noqa: F811
):
    """The privacy page offered "Stop the email" (read while the email was to come); the mail server refused the
    address for good before the fan pressed the button. No email will come, but the fan asked us to stop emailing
    them: the stop is recorded as before sending (the email marked unsubscribed, the refusal kept), the pre-save
    shares the address no more, the fan's is forgotten and the page says they stopped the email. The answer says
    what is true once the release is out: no email came, and none will (not "you'll get no email when it's out")."""
    url = privacy_url(delivered.fan)
    assert "Stop the email" in text_of(client.get(url))
    smtp_server.refuse["opted@fan.test"] = 550
    assert "sent 0, refused 1, not retried" in release_email.send_release_emails(delivered.campaign_id)

    answered = text_of(
        client.post(reverse("fans:privacy_stop_email", args=[url.split("/")[2], delivered.pk]), follow=True)
    )

    assert "We won't email you about First Light: you got no email about it, and you'll get none." in answered
    assert f"Email not used any more: you stopped the email on {today()}" in answered
    email = ReleaseEmail.objects.get()
    assert (email.refusal, email.sent_at, email.unsubscribed_at is not None) == ("550 No such mailbox", None, True)
    assert not ConsentRecord.objects.sharing_email().exists()
    assert Fan.objects.get().email == ""
    assert smtp_server.received == []
