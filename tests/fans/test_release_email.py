"""The release-day email: who gets it, its links (signed, tracked, only to the campaign's own links),
unsubscribe, its schedule at the release time, and a real worker sending it."""

import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from delivery.sandbox import demo_catalog
from fans import release_email
from fans.models import ConsentRecord, EmailSignup, Fan, ReleaseEmail, Subscription
from fans.reserved import RESERVED_SLUGS
from releases.models import Campaign, ReleaseLink
from tests.conftest import make_campaign, make_consent, wait_for

SPOTIFY_LINK = f"https://open.spotify.com/album/{demo_catalog.NOVA_LARK_ALBUM_ID}"
DEEZER_LINK = "https://www.deezer.com/album/123456"


def pre_save(campaign, user_id: str, email: str, *, opt_in: bool, revoked: bool = False) -> ConsentRecord:
    fan = Fan.objects.create(service="spotify", service_user_id=user_id, display_name=user_id, email=email)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign)
    revoked_at = timezone.now() if revoked else None
    return make_consent(subscription, email=email, email_opt_in=opt_in, revoked_at=revoked_at)


def sign_up(campaign, email: str, *, unsubscribed: bool = False, confirmed: bool = True) -> EmailSignup:
    return EmailSignup.objects.create(
        campaign=campaign,
        email=email,
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
    assert "sent 2" in summary
    message = mailoutbox[0]
    assert message.subject == "It's out: First Light by Nova Lark — listen now"
    assert "Deezer:" in message.body and "Spotify:" in message.body
    html = message.alternatives[0][0]
    assert re.search(r'<img src="http://[^"]+/e/o/[^"]+\.gif"', html), "an open pixel"
    assert message.extra_headers["List-Unsubscribe"].startswith(f"<{settings.PUBLIC_BASE_URL}/e/u/")

    assert release_email.send_release_emails(out_campaign.pk) == f"release email for campaign {out_campaign.pk}: sent 0"
    assert len(mailoutbox) == 2, "a second run (django-q2 may run a task twice) sends nothing again"


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
    assert client.get("/e/u/forged:token/").status_code == 404


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
    retry = Schedule.objects.get(name=f"{release_email.schedule_name(out_campaign.pk)}-retry")
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
