"""The release-day email: who gets it, its links (signed, tracked, only to the campaign's own links),
unsubscribe, its schedule at the release time, and a real worker sending it."""

import datetime as dt
import re
import socketserver
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from delivery.sandbox import demo_catalog
from fans import release_email, revocation
from fans.models import ConsentRecord, EmailSignup, Fan, ReleaseEmail, Subscription
from fans.reserved import RESERVED_SLUGS
from releases import analytics, markets
from releases.models import Campaign, ReleaseLink
from tests.conftest import held_in_another_transaction, make_campaign, make_consent, wait_for, waiting_for_a_lock

SPOTIFY_LINK = f"https://open.spotify.com/album/{demo_catalog.NOVA_LARK_ALBUM_ID}"
DEEZER_LINK = "https://www.deezer.com/album/123456"


def pre_save(
    campaign, user_id: str, email: str, *, opt_in: bool, revoked: bool = False, market: str = ""
) -> ConsentRecord:
    fan = Fan.objects.create(service="spotify", service_user_id=user_id, display_name=user_id, email=email)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign, market=market)
    revoked_at = timezone.now() if revoked else None
    return make_consent(subscription, email=email, email_opt_in=opt_in, revoked_at=revoked_at)


def sign_up(
    campaign, email: str, *, unsubscribed: bool = False, confirmed: bool = True, country: str = ""
) -> EmailSignup:
    return EmailSignup.objects.create(
        campaign=campaign,
        email=email,
        country=country,
        wording_version="v1",
        confirmed_at=timezone.now() if confirmed else None,
        unsubscribed_at=timezone.now() if unsubscribed else None,
    )


@pytest.fixture
def out_campaign(db):
    campaign = make_campaign(release_in=dt.timedelta(minutes=-5), status="done")
    ReleaseLink.objects.create(release=campaign.release, platform="deezer", url=DEEZER_LINK)
    pre_save(campaign, "opted", "opted@fan.test", opt_in=True)
    pre_save(campaign, "declined", "declined@fan.test", opt_in=False)
    pre_save(campaign, "revoked", "revoked@fan.test", opt_in=True, revoked=True)
    pre_save(campaign, "no-address", "", opt_in=True)
    sign_up(campaign, "inbox@fan.test")
    sign_up(campaign, "OPTED@fan.test")  # the same person twice: one email
    sign_up(campaign, "gone@fan.test", unsubscribed=True)
    sign_up(campaign, "typed@fan.test", confirmed=False)  # never confirmed: anyone may have typed it
    return campaign


def links_in(message) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+", message.body)


def path_of(url: str) -> str:
    assert url.startswith(settings.PUBLIC_BASE_URL)
    return urlsplit(url).path


@pytest.mark.django_db
def test_opted_in_fans_and_sign_ups_get_one_email_each(out_campaign, mailoutbox):
    summary = release_email.send_release_emails(out_campaign.pk)

    assert sorted(m.to[0] for m in mailoutbox) == ["inbox@fan.test", "opted@fan.test"]
    assert summary == f"release email for campaign {out_campaign.pk}: planned 2, sent 2"
    message = mailoutbox[0]
    assert message.subject == "It's out: First Light by Nova Lark — listen now"
    assert "Deezer:" in message.body and "Spotify:" in message.body
    html = message.alternatives[0][0]
    assert re.search(r'<img src="http://[^"]+/e/o/[^"]+\.gif"', html), "an open pixel"
    assert message.extra_headers["List-Unsubscribe"].startswith(f"<{settings.PUBLIC_BASE_URL}/e/u/")

    again = release_email.send_release_emails(out_campaign.pk)
    assert again == f"release email for campaign {out_campaign.pk}: planned 0, sent 0"
    assert len(mailoutbox) == 2, "a second run (django-q2 may run a task twice) sends nothing again"


@pytest.mark.django_db
def test_the_email_lists_the_places_to_listen_in_the_smart_link_s_order_for_the_fan_s_market(mailoutbox):
    campaign = make_campaign(release_in=dt.timedelta(minutes=-5), status="done")
    for platform, url in {
        "amazon_music": "https://music.amazon.com/albums/B0TEST",
        "apple_music": "https://music.apple.com/fr/album/first-light/1234567890",
        "deezer": DEEZER_LINK,
        "tidal": "https://tidal.com/browse/album/123456",
        "youtube_music": "https://music.youtube.com/playlist?list=OLAK5uy_test",
    }.items():
        ReleaseLink.objects.create(release=campaign.release, platform=platform, url=url)
    pre_save(campaign, "french", "french@fan.test", opt_in=True, market="FR")
    pre_save(campaign, "yankee", "yankee@fan.test", opt_in=True, market="US")

    release_email.send_release_emails(campaign.pk)

    assert len(mailoutbox) == 2
    expected = {
        "french@fan.test": ["Deezer", "Spotify", "Apple Music", "YouTube Music", "Amazon Music", "Tidal"],
        "yankee@fan.test": ["Spotify", "Apple Music", "Amazon Music", "YouTube Music", "Deezer", "Tidal"],
    }
    for message in mailoutbox:
        text = re.findall(r"^(.+): http\S+/e/c/", message.body, flags=re.MULTILINE)
        buttons = re.findall(r'<a href="http[^"]+/e/c/[^>]+>([^<]+)</a>', message.alternatives[0][0])
        assert text == buttons == expected[message.to[0]], message.to[0]


@pytest.mark.django_db
def test_click_links_redirect_only_to_the_campaigns_own_links_and_are_counted(out_campaign, client, mailoutbox):
    release_email.send_release_emails(out_campaign.pk)
    message = next(m for m in mailoutbox if m.to == ["opted@fan.test"])
    clicks = [url for url in links_in(message) if "/e/c/" in url]
    assert len(clicks) == 2

    targets = {client.get(path_of(url))["Location"] for url in clicks}

    assert targets == {SPOTIFY_LINK, DEEZER_LINK}
    sent = ReleaseEmail.objects.get(email="opted@fan.test")
    assert sent.clicks == 2 and sent.clicked_at is not None and sent.opened_at is not None

    token = path_of(clicks[0]).split("/")[3]
    forged = token.replace(".spotify", ".evil") if ".spotify" in token else token[:-2] + "xx"
    assert client.get(reverse("fans:email_click", args=[forged])).status_code == 404
    other = release_email.sign("click", f"{sent.pk}.tidal")  # validly signed, but not one of this release's links
    assert client.get(reverse("fans:email_click", args=[other])).status_code == 404


@pytest.mark.django_db
def test_the_same_click_again_is_counted_once_and_hammering_the_email_links_gets_a_429(
    out_campaign, client, mailoutbox, settings
):
    """150 requests to one click link made 150 clicks: the email's links are rate limited per IP as the smart
    link is, and the same email's same link is counted once per CLICK_REPEAT_SECONDS."""
    settings.FANS_CLICK_RATE = "3/m"
    settings.FANS_WRITE_RATE = "2/m"
    release_email.send_release_emails(out_campaign.pk)
    message = next(m for m in mailoutbox if m.to == ["opted@fan.test"])
    click = path_of(next(url for url in links_in(message) if "/e/c/" in url))
    pixel = path_of(re.search(r'<img src="([^"]+)"', message.alternatives[0][0]).group(1))
    unsubscribe = path_of(next(url for url in links_in(message) if "/e/u/" in url))

    with time_machine.travel(timezone.now(), tick=False) as traveller:  # every request in one rate window
        clicks = [client.get(click).status_code for _ in range(4)]
        opens = [client.get(pixel).status_code for _ in range(4)]
        posts = [client.post(unsubscribe).status_code for _ in range(3)]

        assert clicks == [302, 302, 302, 429]
        assert opens == [200, 200, 200, 429]
        assert posts == [200, 200, 429]
        assert ReleaseEmail.objects.get(email="opted@fan.test").clicks == 1

        traveller.shift(dt.timedelta(seconds=release_email.CLICK_REPEAT_SECONDS + 60))
        assert client.get(click).status_code == 302
        assert ReleaseEmail.objects.get(email="opted@fan.test").clicks == 2, "a click later is counted again"


@pytest.mark.django_db
def test_the_open_pixel_records_an_open_and_ignores_junk(out_campaign, client, mailoutbox):
    release_email.send_release_emails(out_campaign.pk)
    html = mailoutbox[0].alternatives[0][0]
    pixel = re.search(r'<img src="([^"]+)"', html).group(1)

    response = client.get(path_of(pixel))

    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert ReleaseEmail.objects.filter(opened_at__isnull=False).count() == 1
    assert client.get("/e/o/not-a-token.gif").status_code == 200


@pytest.mark.django_db
def test_unsubscribe_asks_on_get_and_unsubscribes_on_post(out_campaign, client, mailoutbox):
    release_email.send_release_emails(out_campaign.pk)
    by_address = {m.to[0]: m for m in mailoutbox}
    for address in ("inbox@fan.test", "opted@fan.test"):
        url = next(url for url in links_in(by_address[address]) if "/e/u/" in url)
        page = client.get(path_of(url))
        assert page.status_code == 200 and "Unsubscribe?" in page.content.decode()
        assert not ReleaseEmail.objects.filter(unsubscribed_at__isnull=False, email=address).exists()

        done = client.post(path_of(url))  # no CSRF token: mailboxes' one-click unsubscribe posts like this

        assert done.status_code == 200 and "unsubscribed" in done.content.decode()
    assert EmailSignup.objects.get(email="inbox@fan.test").unsubscribed_at is not None
    assert not ConsentRecord.objects.get(service_user_id="opted").email_opt_in, "the email consent is withdrawn"
    assert Fan.objects.get(service_user_id="opted").email == "", "and the address with it: no consent shares it"
    assert client.get("/e/u/forged:token/").status_code == 404


@pytest.mark.django_db
def test_the_unsubscribe_link_opened_again_says_it_is_done_and_when(out_campaign, client, mailoutbox):
    release_email.send_release_emails(out_campaign.pk)
    message = next(m for m in mailoutbox if m.to == ["opted@fan.test"])
    url = path_of(next(url for url in links_in(message) if "/e/u/" in url))
    with time_machine.travel(dt.datetime(2026, 3, 4, 12, tzinfo=dt.UTC)):
        client.post(url)

    with time_machine.travel(dt.datetime(2026, 3, 9, 12, tzinfo=dt.UTC)):
        again = client.get(url).content.decode()
        posted_again = client.post(url).content.decode()

    assert "Unsubscribe?" not in again and 'id="confirm-unsubscribe"' not in again
    assert "You're unsubscribed" in again and "you unsubscribed on 4 March 2026" in again
    assert "you unsubscribed on 4 March 2026" in posted_again, "a second POST keeps the first date"


@pytest.mark.django_db
def test_unsubscribing_withdraws_every_consent_of_the_campaign_that_carries_the_address(client, mailoutbox):
    """A fan who pre-saved on two services gets one email; its unsubscribe ends both consents' email."""
    campaign = make_campaign(release_in=dt.timedelta(minutes=-5), status="done")
    spotify = pre_save(campaign, "alice-spotify", "alice@fan.test", opt_in=True)
    deezer = pre_save(campaign, "alice-deezer", "Alice@Fan.test", opt_in=True)
    release_email.send_release_emails(campaign.pk)
    (message,) = mailoutbox

    client.post(path_of(next(url for url in links_in(message) if "/e/u/" in url)))

    assert not ConsentRecord.objects.filter(pk__in=[spotify.pk, deezer.pk], email_opt_in=True).exists()
    assert set(Fan.objects.values_list("email", flat=True)) == {""}


@pytest.mark.django_db
def test_campaign_page_shows_opens_and_clicks(out_campaign, staff_client, client, mailoutbox):
    release_email.send_release_emails(out_campaign.pk)
    message = next(m for m in mailoutbox if m.to == ["opted@fan.test"])
    client.get(path_of(next(url for url in links_in(message) if "/e/c/" in url)))

    page = staff_client.get(reverse("admin:releases_campaign_change", args=[out_campaign.pk])).content.decode()

    assert '<span class="email-sent">2</span> sent' in page
    assert '<span class="email-opened">1</span> opened (50%)' in page
    assert '<span class="email-clicked">1</span> clicked' in page


@pytest.mark.django_db
def test_a_mail_server_that_refuses_schedules_a_retry_and_loses_nobody(out_campaign, settings, mailoutbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there

    summary = release_email.send_release_emails(out_campaign.pk)

    assert "mail server failed" in summary
    retry = Schedule.objects.get(name=release_email.next_run_schedule_name(out_campaign.pk))
    assert retry.func == release_email.SEND_TASK and retry.next_run > timezone.now()
    assert ReleaseEmail.objects.filter(sent_at__isnull=True).count() == 2, "nothing marked sent"

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert "sent 2" in release_email.send_release_emails(out_campaign.pk)  # what the retry runs


def test_the_email_prefix_is_reserved():
    assert "e" in RESERVED_SLUGS


@pytest.mark.django_db(transaction=True)
def test_going_live_schedules_the_email_at_the_release_time_beside_delivery():
    campaign = make_campaign(status="draft")
    name = release_email.schedule_name(campaign.pk)
    assert not Schedule.objects.filter(name=name).exists()

    campaign.status = Campaign.Status.LIVE
    campaign.save()
    schedule = Schedule.objects.get(name=name)
    assert (schedule.func, schedule.schedule_type, schedule.next_run) == (
        "fans.release_email.send_release_emails",
        Schedule.ONCE,
        campaign.release.release_at,
    )
    release = campaign.release
    release.release_date += dt.timedelta(days=2)
    release.save()
    assert Schedule.objects.get(name=name).next_run == release.release_at

    campaign.status = Campaign.Status.DRAFT
    campaign.save()
    assert not Schedule.objects.filter(name=name).exists()


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_email_at_the_release_time(start_worker, tmp_path: Path):
    """The release email and delivery fire on the same tick, in either order: the pre-save has no stored token,
    so delivery ends it revoked, and its fan is mailed all the same (only the fan withdraws the email consent)."""
    campaign = make_campaign(release_in=dt.timedelta(seconds=3))
    pre_save(campaign, "opted", "opted@fan.test", opt_in=True)
    sign_up(campaign, "inbox@fan.test")
    start_worker(EMAIL_URL=f"filemail://{tmp_path}")

    wait_for(
        lambda: ReleaseEmail.objects.filter(sent_at__isnull=False).count() == 2,
        timeout=90,
        message="the scheduled release-day email (django-q2 checks schedules every 30 s)",
    )

    written = "".join(path.read_text() for path in tmp_path.iterdir())
    assert "To: opted@fan.test" in written and "To: inbox@fan.test" in written
    assert all(e.sent_at >= campaign.release.release_at for e in ReleaseEmail.objects.all())


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend: the server's `refuse` (address → code) and `fail_after` (messages
    taken before it answers 451 to the next) set what it refuses; `received` lists who it took mail for, and
    `asked` every recipient it was asked to take."""

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        server, recipients = self.server, []
        self.reply("220 test ESMTP")
        while line := self.rfile.readline():
            verb, _, argument = line.decode().strip().partition(" ")
            verb = verb.upper()
            if verb == "MAIL" and server.fail_after is not None and len(server.received) >= server.fail_after:
                self.reply("451 4.3.0 Try again later")
            elif verb == "MAIL":
                recipients = []
                self.reply("250 OK")
            elif verb == "RCPT":
                address = argument.split(":", 1)[1].strip().strip("<>")
                server.asked.append(address)
                if address in server.refuse:
                    self.reply(f"{server.refuse[address]} No such mailbox")
                else:
                    recipients.append(address)
                    self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 Go ahead")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                server.received.extend(recipients)
                self.reply("250 Queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:  # EHLO, RSET, NOOP
                self.reply("250 OK")


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a local port, and the SMTP backend pointed at it."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler)
    server.daemon_threads = True
    server.refuse, server.fail_after, server.received, server.asked = {}, None, [], []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.server_address[1], 5
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "", ""
    settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL = False, False
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.django_db
def test_the_mail_server_failing_mid_batch_sends_nobody_twice(out_campaign, smtp_server):
    smtp_server.fail_after = 1

    assert "mail server failed" in release_email.send_release_emails(out_campaign.pk)

    assert smtp_server.received == ["opted@fan.test"]
    assert list(ReleaseEmail.objects.filter(sent_at__isnull=False).values_list("email", flat=True)) == [
        "opted@fan.test"
    ], "what the server took is marked sent"
    smtp_server.fail_after = None
    assert "sent 1" in release_email.send_release_emails(out_campaign.pk)  # what the retry runs
    assert sorted(smtp_server.received) == ["inbox@fan.test", "opted@fan.test"]


@pytest.mark.django_db
@pytest.mark.parametrize("code, retried", [(550, False), (450, True)])
def test_an_address_the_mail_server_refuses_holds_up_nobody(out_campaign, smtp_server, code, retried):
    smtp_server.refuse["opted@fan.test"] = code

    summary = release_email.send_release_emails(out_campaign.pk)

    assert smtp_server.received == ["inbox@fan.test"], "the others are sent, once"
    assert "sent 1, refused 1" in summary
    refused = ReleaseEmail.objects.get(email="opted@fan.test")
    assert refused.sent_at is None and refused.refusal == ("" if retried else f"{code} No such mailbox")
    retry = Schedule.objects.filter(name=release_email.next_run_schedule_name(out_campaign.pk))
    assert retry.exists() == retried, "a mailbox that does not exist (5xx) is not tried every few minutes"
    release_email.send_release_emails(out_campaign.pk)
    assert smtp_server.received == ["inbox@fan.test"]
    assert smtp_server.asked.count("opted@fan.test") == (2 if retried else 1), "a 5xx is final: never asked again"
    stats = analytics.email_stats(out_campaign)
    assert (stats.refused, stats.unsent) == ((0, 1) if retried else (1, 0))


@pytest.mark.django_db
def test_a_fan_who_revokes_before_the_retry_is_mailed_only_if_their_sign_up_still_asks(
    out_campaign, settings, mailoutbox
):
    quits = pre_save(out_campaign, "quits", "quits@fan.test", opt_in=True)
    both = pre_save(out_campaign, "both", "Both@Fan.test", opt_in=True)
    sign_up(out_campaign, "both@fan.test")  # sign-ups are stored in lower case
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there
    assert "mail server failed" in release_email.send_release_emails(out_campaign.pk)

    for consent in (quits, both):  # the privacy page's per-campaign button, before the retry
        revocation.revoke_subscription(consent.subscription_id)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    release_email.send_release_emails(out_campaign.pk)

    assert sorted(m.to[0] for m in mailoutbox) == ["Both@Fan.test", "inbox@fan.test", "opted@fan.test"]


@pytest.mark.django_db
def test_a_fan_who_revokes_before_the_retry_is_mailed_if_a_sign_up_stored_in_mixed_case_still_asks(
    out_campaign, settings, mailoutbox
):
    """The email was planned for the fan's pre-save; the address's sign-up, stored as typed in mixed case (not
    every row ever written was lower-cased), still asks for it after the fan revoked, whatever the case of either."""
    both = pre_save(out_campaign, "both", "Both@Fan.test", opt_in=True)
    sign_up(out_campaign, "BOTH@fan.TEST")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there
    assert "mail server failed" in release_email.send_release_emails(out_campaign.pk)
    assert ReleaseEmail.objects.get(email="Both@Fan.test").consent_id == both.pk, "planned for the pre-save"

    revocation.revoke_subscription(both.subscription_id)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    release_email.send_release_emails(out_campaign.pk)

    assert sorted(m.to[0] for m in mailoutbox) == ["Both@Fan.test", "inbox@fan.test", "opted@fan.test"]


@pytest.mark.django_db
def test_a_pre_save_release_day_found_revoked_is_still_mailed(out_campaign, settings, mailoutbox):
    """Release day finding the fan's authorization gone (the token expired, the app was disconnected in the
    service) marks the pre-save revoked and leaves its consent row as it was: the fan withdrew nothing, and the
    email is now their only way to hear it's out; before the run or between its planning and a retry."""
    before = pre_save(out_campaign, "gone-before", "before@fan.test", opt_in=True)
    Subscription.objects.filter(pk=before.subscription_id).update(status=Subscription.Status.REVOKED)
    between = pre_save(out_campaign, "gone-between", "between@fan.test", opt_in=True)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there
    assert "mail server failed" in release_email.send_release_emails(out_campaign.pk)

    Subscription.objects.filter(pk=between.subscription_id).update(status=Subscription.Status.REVOKED)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    release_email.send_release_emails(out_campaign.pk)

    assert sorted(m.to[0] for m in mailoutbox) == [
        "before@fan.test", "between@fan.test", "inbox@fan.test", "opted@fan.test"
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_fan_with_a_pre_save_and_a_sign_up_gets_one_email_however_often_it_runs(out_campaign, mailoutbox):
    both = pre_save(out_campaign, "both", "Both@Fan.test", opt_in=True)
    sign_up(out_campaign, "both@fan.test")
    release_email.send_release_emails(out_campaign.pk)
    assert [m.to for m in mailoutbox].count(["Both@Fan.test"]) == 1

    revocation.revoke_subscription(both.subscription_id)  # the sign-up still asks, and has had its email
    release_email.send_release_emails(out_campaign.pk)  # django-q2 runs it again

    assert [m.to[0].lower() for m in mailoutbox].count("both@fan.test") == 1


@pytest.mark.django_db
def test_unsubscribing_ends_the_sign_up_of_a_fan_who_also_pre_saved(out_campaign, client, mailoutbox):
    pre_save(out_campaign, "both", "both@fan.test", opt_in=True)
    sign_up(out_campaign, "both@fan.test")
    release_email.send_release_emails(out_campaign.pk)
    message = next(m for m in mailoutbox if m.to == ["both@fan.test"])

    client.post(path_of(next(url for url in links_in(message) if "/e/u/" in url)))

    assert EmailSignup.objects.get(email="both@fan.test").unsubscribed_at is not None
    assert not EmailSignup.objects.receiving().filter(email="both@fan.test").exists(), "in no export any more"


@pytest.mark.django_db
def test_unsubscribing_ends_a_sign_up_stored_in_mixed_case(out_campaign, client, mailoutbox):
    """The sign-up's address was stored as typed, in mixed case (sign_up lower-cases it now, not every row ever
    written did), and the email went out for the fan's pre-save of the same address: its unsubscribe ends the
    sign-up too, whatever the case of either."""
    pre_save(out_campaign, "both", "Both@Fan.test", opt_in=True)
    sign_up(out_campaign, "Both@Fan.test")
    release_email.send_release_emails(out_campaign.pk)
    message = next(m for m in mailoutbox if m.to == ["Both@Fan.test"])
    assert ReleaseEmail.objects.get(email="Both@Fan.test").consent_id is not None, "planned for the pre-save"

    client.post(path_of(next(url for url in links_in(message) if "/e/u/" in url)))

    assert EmailSignup.objects.get(email="Both@Fan.test").unsubscribed_at is not None


@pytest.mark.django_db
def test_a_run_left_from_before_the_release_was_moved_later_sends_nothing(out_campaign, mailoutbox):
    release = out_campaign.release
    release.release_date += dt.timedelta(days=7)  # postponed after the scheduler had queued the task
    release.save()

    assert release_email.send_release_emails(out_campaign.pk).endswith("not out yet")

    assert mailoutbox == [] and not ReleaseEmail.objects.exists()


@pytest.mark.django_db
def test_a_per_market_campaign_mails_each_fan_when_the_release_is_out_where_they_are(mailoutbox, staff_client):
    """Out in Auckland an hour ago; London (13 hours later, the campaign's default market) and New York (18
    hours later) are still waiting: only the fan in New Zealand is told it's out, and a follow-up run is left
    for the next market's midnight (an address may arrive from there meanwhile), London's at the latest."""
    nz_release = timezone.now().astimezone(markets.zone_for("NZ")) - dt.timedelta(hours=1)
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", status="delivering")
    release = campaign.release
    release.release_date, release.release_time = nz_release.date(), nz_release.time().replace(microsecond=0)
    release.save()
    pre_save(campaign, "kiwi", "kiwi@fan.test", opt_in=True, market="NZ")
    pre_save(campaign, "yankee", "yankee@fan.test", opt_in=True, market="US")
    sign_up(campaign, "inbox-nz@fan.test", country="nz")  # the country seen at sign-up
    sign_up(campaign, "unknown@fan.test")  # no country: the campaign's default market, GB

    with time_machine.travel(timezone.now(), tick=False):
        now = timezone.now()
        summary = release_email.send_release_emails(campaign.pk)

    assert sorted(m.to[0] for m in mailoutbox) == ["inbox-nz@fan.test", "kiwi@fan.test"]
    follow_up = Schedule.objects.get(name=release_email.next_run_schedule_name(campaign.pk))
    assert timezone.now() < follow_up.next_run <= campaign.firing_time("GB"), "by London's time at the latest"
    assert follow_up.next_run == markets.next_release_instant(release.release_date, release.release_time, now)
    assert "the next market's at" in summary
    assert dict(ReleaseEmail.objects.values_list("email", "market"))["unknown@fan.test"] == ""
    page = staff_client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()
    assert '<span class="email-sent">2</span> sent' in page
    assert '<span class="email-unsent">2</span> not sent yet (waiting for the release time in their market' in page

    release.release_date -= dt.timedelta(days=1)  # a day on: out everywhere
    release.save()
    release_email.send_release_emails(campaign.pk)

    assert sorted(m.to[0] for m in mailoutbox) == [
        "inbox-nz@fan.test",
        "kiwi@fan.test",
        "unknown@fan.test",
        "yankee@fan.test",
    ], "each address once"


@pytest.mark.django_db
def test_a_pre_save_without_a_market_is_mailed_when_the_release_is_out_in_the_fans_country(mailoutbox):
    """A pre-save whose market is blank (an older row, an admin's edit) waits for its fan's country, as release
    day delivers it (`Campaign.market_for`): out in Auckland, the fan there is told; one with no country either
    waits for the campaign's default market, London."""
    nz_release = timezone.now().astimezone(markets.zone_for("NZ")) - dt.timedelta(hours=1)
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", status="delivering")
    release = campaign.release
    release.release_date, release.release_time = nz_release.date(), nz_release.time().replace(microsecond=0)
    release.save()
    kiwi = pre_save(campaign, "kiwi", "kiwi@fan.test", opt_in=True)
    Fan.objects.filter(pk=kiwi.subscription.fan_id).update(country="NZ")
    pre_save(campaign, "unknown", "unknown@fan.test", opt_in=True)

    with time_machine.travel(timezone.now(), tick=False):
        summary = release_email.send_release_emails(campaign.pk)

    assert [m.to for m in mailoutbox] == [["kiwi@fan.test"]]
    assert summary.startswith(f"release email for campaign {campaign.pk}: planned 2, sent 1")
    assert dict(ReleaseEmail.objects.values_list("email", "market")) == {"kiwi@fan.test": "NZ", "unknown@fan.test": ""}


@pytest.mark.django_db
def test_a_per_market_campaigns_email_is_scheduled_for_the_first_market_to_go_live():
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET)

    schedule = release_email.sync_schedule(campaign)

    assert schedule.next_run == campaign.first_firing_time() < campaign.release.release_at
    assert release_email.send_release_emails(campaign.pk).endswith("not out yet")


@pytest.mark.django_db
def test_a_later_run_plans_only_the_addresses_that_arrived_since_in_any_case(out_campaign, mailoutbox):
    release_email.send_release_emails(out_campaign.pk)
    first = set(ReleaseEmail.objects.values_list("pk", "email"))

    pre_save(out_campaign, "later", "Later@Fan.test", opt_in=True)
    sign_up(out_campaign, "later@fan.test")  # the same address: one email
    pre_save(out_campaign, "inbox", "Inbox@Fan.test", opt_in=True)  # mailed by the first run, in another case
    release_email.send_release_emails(out_campaign.pk)

    rows = set(ReleaseEmail.objects.values_list("pk", "email"))
    assert first < rows and {email for _, email in rows - first} == {"Later@Fan.test"}
    assert sorted(m.to[0] for m in mailoutbox) == ["Later@Fan.test", "inbox@fan.test", "opted@fan.test"]


@pytest.mark.django_db
def test_a_per_market_campaign_made_live_after_its_first_markets_time_mails_every_market(
    mailoutbox, django_capture_on_commit_callbacks
):
    """Out in Auckland an hour ago when it goes live: its schedule fires at once and mails the fans whose market
    is out already (late, but as promised), then each other market's fans at their own release time."""
    nz_release = timezone.now().astimezone(markets.zone_for("NZ")) - dt.timedelta(hours=1)
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB", status="draft")
    release = campaign.release
    release.release_date, release.release_time = nz_release.date(), nz_release.time().replace(microsecond=0)
    release.save()
    sign_up(campaign, "inbox-nz@fan.test", country="nz")
    pre_save(campaign, "brit", "brit@fan.test", opt_in=True, market="GB")
    pre_save(campaign, "yankee", "yankee@fan.test", opt_in=True, market="US")

    with django_capture_on_commit_callbacks(execute=True):
        campaign.status = Campaign.Status.LIVE
        campaign.save()

    schedule = Schedule.objects.get(name=release_email.schedule_name(campaign.pk))
    assert schedule.repeats == 1 and schedule.next_run <= timezone.now(), "fires at once"
    sent_at = {}
    for market, at in (("", timezone.now()), ("GB", campaign.firing_time("GB")), ("US", campaign.firing_time("US"))):
        with time_machine.travel(at, tick=False):
            assert not release_email.missed_runs(at), "its run is armed"
            release_email.send_release_emails(campaign.pk)
        sent_at[market] = sorted(m.to[0] for m in mailoutbox)
        if market:
            follow_up = Schedule.objects.get(name=release_email.next_run_schedule_name(campaign.pk))
            assert follow_up.next_run > at or market == "US"
    assert sent_at == {
        "": ["inbox-nz@fan.test"],
        "GB": ["brit@fan.test", "inbox-nz@fan.test"],
        "US": ["brit@fan.test", "inbox-nz@fan.test", "yankee@fan.test"],
    }


@pytest.mark.django_db
def test_the_sweeper_starts_a_per_market_campaign_made_live_after_its_first_markets_time_without_a_schedule():
    """One made live before `sync_schedule` made a schedule for such a campaign: the sweeper starts its run."""
    nz_release = timezone.now().astimezone(markets.zone_for("NZ")) - dt.timedelta(hours=1)
    campaign = make_campaign(firing=Campaign.Firing.PER_MARKET, default_market="GB")
    release = campaign.release
    release.release_date, release.release_time = nz_release.date(), nz_release.time().replace(microsecond=0)
    release.save()
    sign_up(campaign, "inbox-nz@fan.test", country="nz")
    assert not Schedule.objects.filter(name__startswith=release_email.SCHEDULE_NAME_PREFIX).exists()

    assert release_email.missed_runs(timezone.now()) == [campaign]


@pytest.mark.django_db
def test_an_address_that_is_not_one_is_skipped_not_the_whole_send(out_campaign, mailoutbox):
    """One stored before addresses were checked: building its message raised, and nobody was mailed."""
    pre_save(out_campaign, "mallory", "m@x.test\nBcc: all@x.test", opt_in=True)

    summary = release_email.send_release_emails(out_campaign.pk)

    assert sorted(m.to[0] for m in mailoutbox) == ["inbox@fan.test", "opted@fan.test"]
    assert "sent 2, refused 1, not retried" in summary
    skipped = ReleaseEmail.objects.get(email__startswith="m@x.test")
    assert skipped.sent_at is None and skipped.refusal == "553 not a valid email address"


@pytest.mark.django_db(transaction=True)  # the first run commits on a connection of its own
def test_two_runs_planning_at_once_mail_an_address_once_whatever_the_case_each_found_it_in(mailoutbox):
    """Two runs of a campaign's release-day email (its schedule's and the sweeper's, say) plan at once. The first
    finds the address in the fan's pre-save, as the service reports it (Keen@Fan.test); the fan cancels that
    pre-save before the second reads, which finds the address's sign-up, stored in lower case, still asking. One
    email row an address whatever its case: the second run's row is the first's (waited for, then skipped), and one
    email goes, not one to each case. Each run counts the rows it wrote: the second none, its row skipped."""
    campaign = make_campaign(release_in=dt.timedelta(minutes=-5), status="done")
    keen = pre_save(campaign, "keen", "Keen@Fan.test", opt_in=True)
    sign_up(campaign, "keen@fan.test")

    second = []
    with held_in_another_transaction(
        lambda: release_email.plan_recipients(campaign),
        holding="the first run to plan",
        until=lambda: second or waiting_for_a_lock(),
        waiter="the second run",
    ) as first:
        revocation.revoke_subscription(keen.subscription_id)  # the privacy page's cancel
        second.append(release_email.plan_recipients(campaign))
    release_email.send_release_emails(campaign.pk)

    assert (first, second) == (1, [0])

    assert [m.to for m in mailoutbox] == [["Keen@Fan.test"]]
    assert list(ReleaseEmail.objects.values_list("email", flat=True)) == ["Keen@Fan.test"]
