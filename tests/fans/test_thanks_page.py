"""The thank-you page follows the fan's pre-save: its title, badge and headline say whether it is still to come,
done (staff's Deliver now may do it before the release time) or could not be done (failed, or the permission
withdrawn in the service), before the release and after it."""

import datetime as dt
import html
import re

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from delivery import engine
from delivery.sandbox import demo_catalog
from fans import privacy, release_email, retention
from fans.models import Credential, Fan, FunnelEvent, Subscription
from releases.models import ReleaseLink
from tests.conftest import make_campaign
from tests.delivery.test_deezer import presave_with_deezer
from tests.fans.test_oauth_callback import presave

pytestmark = pytest.mark.django_db


def read(client, url: str) -> str:
    return " ".join(html.unescape(client.get(url).content.decode()).split())


def headline(page: str) -> tuple[str, str, str]:
    """The page's title, badge and heading."""
    title = re.search(r"<title>(.*?)</title>", page).group(1)
    badge = re.search(r'<p class="badge [^"]*">(.*?)</p>', page).group(1)
    heading = re.search(r"<h1>(.*?)</h1>", page).group(1)
    return title, badge, heading


def presaved_then_delivered_now(client, sandbox) -> str:
    """A pre-save three days before the release, and staff's Deliver now run at once: the thank-you page's URL."""
    campaign = make_campaign(release_in=dt.timedelta(days=3), follow_artist=True)
    _, done = presave(client, campaign)
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)
    return done["Location"]


def test_a_presave_still_to_come_says_you_are_in_and_what_release_day_will_do(client, sandbox):
    _, done = presave(client, make_campaign(release_in=dt.timedelta(days=3)))

    page = read(client, done["Location"])

    assert headline(page) == ("You're in · First Light", "Pre-saved", "You're in.")
    assert "On Spotify, as you allowed, we'll:" in page and 'class="revoke-link"' in page


def test_a_presave_delivered_before_the_release_time_says_it_was_saved_not_what_we_will_do(client, sandbox):
    url = presaved_then_delivered_now(client, sandbox)
    assert Subscription.objects.get().status == Subscription.Status.DELIVERED

    page = read(client, url)

    assert headline(page) == ("Pre-save done · First Light", "Done", "Your pre-save is done.")
    assert (
        "your pre-save on Spotify is already done: we've saved First Light to your Spotify library and followed "
        "Nova Lark on Spotify." in page
    )
    assert "we'll" not in page.lower() and "You're in" not in page and "will still" not in page
    assert 'class="revoke-link"' not in page, "nothing is left to cancel"
    assert (
        "There's no pre-save left to cancel: what you allowed is done, and you can undo it in Spotify: remove "
        "First Light from your Spotify library and unfollow Nova Lark on Spotify." in page
    )

    with time_machine.travel(timezone.now() + dt.timedelta(days=4)):
        after = read(client, url)
    assert headline(after) == ("Pre-save done · First Light", "Done", "Your pre-save is done.")
    assert "is out now, and your pre-save on Spotify has done what you allowed" in after


def test_a_presave_withdrawn_in_the_service_before_the_release_says_it_could_not_be_done(client, sandbox):
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    _, done = presave(client, campaign)
    sandbox.control("POST", "users/alice/revoke")
    engine.deliver_campaign(campaign.pk, fan_out=False, reopen=True)
    assert Subscription.objects.get().status == Subscription.Status.REVOKED

    page = read(client, done["Location"])

    assert headline(page) == ("Pre-save not done · First Light", "Not done", "Your pre-save couldn't be done.")
    assert (
        "but we couldn't do what you allowed on Spotify: the permission you gave us was withdrawn in your Spotify "
        "account." in page
    )
    assert "we'll:" not in page and "You're in" not in page and "Pre-saved" not in page
    assert "There's no pre-save left to cancel: it couldn't be done." in page
    assert "you can undo" not in page, "nothing was done to undo"


@pytest.mark.parametrize("out", [False, True], ids=["before release", "after release"])
def test_a_failed_presave_says_it_could_not_be_done(client, sandbox, out):
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    _, done = presave(client, campaign)
    Subscription.objects.update(status=Subscription.Status.FAILED, last_error="Gave up after 5 attempts: 503")

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2 if out else 0)):
        page = read(client, done["Location"])

    assert headline(page) == ("Pre-save not done · First Light", "Not done", "Your pre-save couldn't be done.")
    assert "couldn't do what you allowed on Spotify." in page and "503" not in page
    assert "You're in" not in page and "Pre-saved" not in page and "we'll:" not in page


def test_after_release_a_presave_still_being_delivered_is_still_in(client, sandbox):
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    _, done = presave(client, campaign)

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        page = read(client, done["Location"])

    assert headline(page) == ("You're in · First Light", "Pre-saved", "You're in.")
    assert (
        "Your pre-save is being done now. Once it's done, you can undo it in Spotify: remove First "
        "Light from your Spotify library." in page
    )


def test_presaves_on_two_services_one_done_one_not_say_part_was_done(client, sandbox):
    campaign = make_campaign(release_in=dt.timedelta(days=3), services=["spotify", "deezer"])
    presave_with_deezer(client, campaign, "bob")
    _, done = presave(client, campaign)
    Subscription.objects.filter(fan__service="deezer").update(status=Subscription.Status.FAILED)
    Subscription.objects.filter(fan__service="spotify").update(
        status=Subscription.Status.DELIVERED, done_calls="save", delivered_at=timezone.now()
    )

    page = read(client, done["Location"])

    assert headline(page) == ("Partly done · First Light", "Partly done", "Not all of your pre-saves could be done.")
    assert "There's no pre-save left to cancel on Spotify: what you allowed is done" in page
    assert (
        "Your pre-save on Deezer couldn't be done. We keep the permission you gave us for a while, in case the label "
        "tries it again: this link withdraws that permission, and we'll delete it." in page
    )
    assert "Withdraw the permission you gave us on Deezer</a>" in page


def test_the_email_the_fan_asked_for_is_promised_only_while_it_is_to_come(client, sandbox, mailoutbox):
    """Before the release: "we'll email you"; once it's out, no promise of an email to come: the page says the
    email was sent once it was, and nothing about it before (it goes out in the minutes after the release time)
    or if the fan stopped it."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    _, done = presave(client, campaign, email_opt_in=True)
    assert "We'll also email you when it drops." in read(client, done["Location"])

    with time_machine.travel(timezone.now() + dt.timedelta(days=4)):
        out = read(client, done["Location"])
        assert "email you" not in out and "emailed you" not in out
        summary = release_email.send_release_emails(campaign.pk)
        assert summary == f"release email for campaign {campaign.pk}: planned 1, sent 1"
        sent = read(client, done["Location"])

    assert "We've emailed you that it's out." in sent and "email you when it drops" not in sent
    assert mailoutbox[0].to == ["alice@sandbox.test"]


def test_the_email_sent_to_the_address_the_fans_service_reports_now_is_said_to_be_sent(client, sandbox, mailoutbox):
    """The fan's service reported another address since the pre-save (a later pre-save of another campaign keeps
    the fan's new one): release day's email goes there, and the page says it was sent, as the privacy page does."""
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    _, done = presave(client, campaign, email_opt_in=True)
    Fan.objects.update(email="alice@new.test")

    with time_machine.travel(timezone.now() + dt.timedelta(days=4)):
        assert (
            release_email.send_release_emails(campaign.pk)
            == f"release email for campaign {campaign.pk}: planned 1, sent 1"
        )
        sent = read(client, done["Location"])

    assert [mail.to for mail in mailoutbox] == [["alice@new.test"]]
    assert "We've emailed you that it's out." in sent


def presave_with_apple_music(client, sandbox, campaign, user: str) -> None:
    """The MusicKit round trip with the email box ticked (Apple Music shares no address)."""
    start = client.post(reverse("fans:presave", args=[campaign.slug, "apple_music"]), {"email_opt_in": "1"})
    state = client.get(start["Location"]).context["state"]
    client.post(
        reverse("fans:musickit_token"), {"state": state, "music_user_token": sandbox.authorize_apple_music(user)}
    )


def test_apple_music_s_no_address_does_not_deny_the_email_another_service_s_address_gets(client, sandbox, mailoutbox):
    """One email an address: the fan's Spotify pre-save gave one, so the fan gets the email though Apple Music
    gave none. The Apple Music line says where it goes, not that none can be sent."""
    campaign = make_campaign(release_in=dt.timedelta(days=3), services=["spotify", "apple_music"])
    presave_with_apple_music(client, sandbox, campaign, "alice")
    _, done = presave(client, campaign, email_opt_in=True)

    before = read(client, done["Location"])
    with time_machine.travel(timezone.now() + dt.timedelta(days=4)):
        release_email.send_release_emails(campaign.pk)
        sent = read(client, done["Location"])

    assert [mail.to for mail in mailoutbox] == [["alice@sandbox.test"]]
    for page in (before, sent):
        assert "can't send one" not in page
    assert "Apple Music didn't share your email address with us, but Spotify did: we'll email you there." in before
    assert "Apple Music didn't share your email address with us, but Spotify did: we've emailed you there." in sent


def test_an_email_the_fan_stopped_is_not_promised(client, sandbox):
    campaign = make_campaign(release_in=dt.timedelta(days=3))
    _, done = presave(client, campaign, email_opt_in=True)
    privacy.stop_email(privacy.Subject(fan=Fan.objects.get()), Subscription.objects.get().pk)

    page = read(client, done["Location"])

    assert "email you" not in page


def test_past_the_release_time_a_presave_being_done_says_so_and_then_that_it_will_be_tried_again(
    client, sandbox, settings
):
    """Past the fan's release time the page tells a pending pre-save as the privacy page does: being done (its run
    is due), then, after an engine run against the sandbox answering 5xx, being tried again later."""
    settings.DELIVERY_RETRY_BASE_SECONDS = 600  # the next try is for a later run, not this one
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    _, done = presave(client, campaign)

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=True):
        due = read(client, done["Location"])
        sandbox.faults(error_rate=1.0)
        engine.deliver_campaign(campaign.pk, fan_out=False)
        retried = Subscription.objects.get()
        assert retried.status == "pending" and retried.next_attempt_at > timezone.now() and retried.last_error
        retrying = read(client, done["Location"])

    assert headline(due) == headline(retrying) == ("You're in · First Light", "Pre-saved", "You're in.")
    assert "First Light</strong> by Nova Lark is out now, and your pre-save on Spotify is being done now." in due
    assert (
        "Your pre-save is being done now. Once it's done, you can undo it in Spotify: remove First "
        "Light from your Spotify library." in due
    )
    assert (
        "is out now, and your pre-save on Spotify is being done: a try didn't go through, we'll try again." in retrying
    )
    assert "Your pre-save is being done: a try didn't go through, we'll try again." in retrying
    assert "release day" not in due + retrying


def presaved_in_jp_while_out_only_in_gb(client, sandbox):
    """A pre-save an hour before the release, by a fan in JP, of an album the sandbox has out only in GB:
    the campaign and the answer that leads to the thank-you page."""
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    _, done = presave(client, campaign)
    Subscription.objects.update(market="JP")
    sandbox.control("POST", f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets", {"available_markets": ["GB"]})
    return campaign, done


def test_past_the_release_time_a_presave_waiting_for_the_release_in_the_fans_market_says_so(client, sandbox):
    """An engine run with the album out on Spotify only in GB leaves a fan in JP waiting: the page says so, and
    doesn't tell them it is out now, nor to listen now."""
    campaign, done = presaved_in_jp_while_out_only_in_gb(client, sandbox)

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)
        waiting = Subscription.objects.get()
        page = read(client, done["Location"])

    assert waiting.status == "pending"
    assert waiting.last_error == "Waiting: the release is not available on Spotify in JP yet."
    assert (
        "First Light</strong> by Nova Lark has reached its release time, and your pre-save on Spotify is waiting for "
        "the release to come out on Spotify in your market." in page
    )
    assert "is out now" not in page and "Listen now" not in page and "It's out" not in page
    assert f'<a class="listen-now" href="{campaign.get_absolute_url()}">Open its page</a>' in page
    assert "Your pre-save is waiting for the release to come out on Spotify in your market." in page
    assert "release day" not in page


def test_a_failed_presave_whose_permission_we_keep_offers_to_withdraw_it_as_its_revoke_link_does(
    client, sandbox, settings
):
    """An engine run past the release time gives up on the save (the service answered 503): the pre-save failed,
    its permission kept for Retry failed. The revoke link still withdraws it, so the thank-you page offers that
    link, in the cancel question's words, instead of "There's no pre-save left to cancel"; once retention has
    deleted the permission, it says there is nothing left, as before."""
    settings.DELIVERY_MAX_ATTEMPTS = 1
    settings.SESSION_COOKIE_AGE = (settings.RETENTION_SETTLED_TOKEN_DAYS + 30) * 86_400  # the page outlives the token
    campaign = make_campaign(release_in=dt.timedelta(hours=1))
    _, done = presave(client, campaign)
    sandbox.faults(errors_matching="spotify:album:")
    with time_machine.travel(timezone.now() + dt.timedelta(hours=2), tick=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)
        failed = Subscription.objects.get()
        page = read(client, done["Location"])
        link = re.search(r'<a class="revoke-link" href="([^"]+)">Withdraw the permission you gave us</a>', page)
        asked = read(client, link.group(1)) if link else ""

    assert failed.status == "failed" and Credential.objects.filter(subscription=failed).exists()
    assert (
        "Your pre-save couldn't be done. We keep the permission you gave us for a while, in case the label tries it "
        "again: this link withdraws that permission, and we'll delete it." in page
    )
    assert "There's no pre-save left to cancel" not in page and "Until it's done" not in page
    assert link, "the page offers the revoke link"
    assert "We keep the permission you gave us for a while, in case the label tries it again: cancelling it only" in (
        asked
    )

    with time_machine.travel(timezone.now() + dt.timedelta(days=settings.RETENTION_SETTLED_TOKEN_DAYS + 1)):
        retention.forget_expired()
        later = read(client, done["Location"])
    assert 'class="revoke-link"' not in later and "We keep the permission" not in later
    assert "It's out, so there's no pre-save left to cancel: it couldn't be done." in later


def test_a_presave_that_gave_up_waiting_for_the_release_in_the_fans_market_says_so_not_out_now(
    client, sandbox, settings
):
    """The album is out on Spotify only in GB; release day's engine waits for it in JP, Alice's market, then gives
    up after DELIVERY_AVAILABILITY_WAIT_HOURS. Her thank-you page says that, as waiting did, not that it "is out now,
    but release day couldn't do what you allowed"."""
    settings.DELIVERY_AVAILABILITY_WAIT_HOURS = 1
    campaign, done = presaved_in_jp_while_out_only_in_gb(client, sandbox)

    with time_machine.travel(timezone.now() + dt.timedelta(hours=3), tick=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)
        gave_up = Subscription.objects.get()
        page = read(client, done["Location"])

    assert gave_up.status == "failed"
    assert gave_up.last_error.startswith("Gave up waiting: the release was still not available on Spotify in JP")
    assert headline(page) == ("Pre-save not done · First Light", "Not done", "Your pre-save couldn't be done.")
    assert (
        "First Light</strong> by Nova Lark has reached its release time, but it didn't come out on Spotify in your "
        "market while we waited, so we couldn't do what you allowed on Spotify. "
        f'<a class="listen-now" href="{campaign.get_absolute_url()}">Open its page</a> to listen, and save it there '
        "yourself once it's out in your market." in page
    )
    assert "is out now" not in page and "It's out" not in page and "release day couldn't" not in page


def listen_now(page: str) -> dict[str, str]:
    """Where each done pre-save's "Listen now" goes, by service."""
    found = re.findall(
        r'your pre-save on ([\w ]+?) has done what you allowed\. <a class="listen-now" href="([^"]*)">Listen now</a>',
        page,
    )
    return dict(found)


def test_after_release_listen_now_goes_to_the_release_on_each_presaves_service_through_the_tracked_click(
    client, sandbox
):
    campaign = make_campaign(release_in=dt.timedelta(hours=1), services=["spotify", "deezer"])
    presave_with_deezer(client, campaign, "bob")
    _, done = presave(client, campaign)
    Subscription.objects.update(status=Subscription.Status.DELIVERED, done_calls="save", delivered_at=timezone.now())

    with time_machine.travel(timezone.now() + dt.timedelta(hours=2)):
        page = read(client, done["Location"])
        # Spotify's link is the engine's URI; Deezer has none, so its "Listen now" stays the campaign page.
        assert listen_now(page) == {
            "Spotify": reverse("fans:listen", args=[campaign.slug, "spotify"]),
            "Deezer": campaign.get_absolute_url(),
        }
        click = client.get(listen_now(page)["Spotify"])
        assert click["Location"] == f"https://open.spotify.com/album/{demo_catalog.NOVA_LARK_ALBUM_ID}"
        assert FunnelEvent.objects.get(kind=FunnelEvent.Kind.LISTEN_CLICK).service == "spotify"

        # Once the label enters a Deezer link, Deezer's goes there too.
        ReleaseLink.objects.create(release=campaign.release, platform="deezer", url="https://www.deezer.com/album/1")
        page = read(client, done["Location"])
        assert listen_now(page)["Deezer"] == reverse("fans:listen", args=[campaign.slug, "deezer"])
        assert client.get(listen_now(page)["Deezer"])["Location"] == "https://www.deezer.com/album/1"
