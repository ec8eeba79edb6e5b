"""Double opt-in for email-only sign-ups: a sign-up counts only once its address is confirmed by the link mailed
to it. The mail goes out from a real django-q2 worker; the link opens a page whose button confirms."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import signing
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from fans import release_email, signups
from fans.models import EmailSignup
from releases.exports import row_count
from tests.conftest import make_campaign, wait_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def sign_up(client, django_capture_on_commit_callbacks):
    """Sign up through the page; the confirmation task is queued when the sign-up commits (on_commit)."""

    def post(campaign, email: str = "fan@example.test"):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("fans:email_signup", args=[campaign.slug]), {"email": email, "consent": "1"})

    return post


def confirmation_path(message) -> str:
    return urlsplit(re.search(r"https?://\S+/e/confirm/\S+/", message.body).group(0)).path


def test_a_sign_up_waits_for_its_address_to_be_confirmed(sign_up, campaign):
    response = sign_up(campaign)

    assert response.status_code == 200
    assert "<strong>fan@example.test</strong> is on the list already, we've sent it a link" in html.unescape(
        response.content.decode()
    )
    signup = EmailSignup.objects.get()
    assert signup.confirmed_at is None
    assert [task.task["func"] for task in OrmQ.objects.all()] == [signups.CONFIRM_TASK]
    assert not EmailSignup.objects.receiving().exists()
    assert row_count(Q(campaign=campaign)) == 0, "an unconfirmed address is in no export"


def test_the_link_asks_and_the_button_confirms(client, sign_up, campaign, mailoutbox):
    sign_up(campaign)
    signup = EmailSignup.objects.get()

    assert signups.send_confirmation(signup.pk).startswith("confirmation sent")
    (message,) = mailoutbox
    assert message.to == ["fan@example.test"]
    assert message.subject == f"Confirm your email for {campaign.release.title} by {campaign.release.artist}"
    assert "/privacy/" in message.body, "every email links to what we hold"
    path = confirmation_path(message)
    ((page_html, kind),) = message.alternatives  # the same words and link for mail apps that show HTML
    assert kind == "text/html"
    link = re.search(r"https?://\S+/e/confirm/\S+/", message.body).group(0)
    assert f'href="{link}"' in page_html
    assert "/privacy/" in page_html and "Open the page to confirm" in page_html

    page = client.get(path)  # a mailbox's link scanner does this much: nothing changes
    assert page.status_code == 200 and 'id="confirm-email"' in page.content.decode()
    signup.refresh_from_db()
    assert signup.confirmed_at is None

    assert "<title>Confirm your email" in page.content.decode()
    done = client.post(path)
    assert done.status_code == 200 and "You're on the list." in done.content.decode()
    assert "<title>Email confirmed · First Light" in done.content.decode(), "the page's title says it's done"
    signup.refresh_from_db()
    assert signup.confirmed_at is not None
    assert client.post(path).status_code == 200, "confirming twice is harmless"
    assert signups.send_confirmation(signup.pk) == "nothing to send"


def test_a_link_opened_once_the_release_is_out_confirms_nothing_and_says_so(client, sign_up, mailoutbox):
    """The release-day email has gone: confirming would promise one that never comes (and count as receiving it)."""
    campaign = make_campaign(slug="soon", release_in=dt.timedelta(days=2))
    sign_up(campaign)
    signup = EmailSignup.objects.get()
    signups.send_confirmation(signup.pk)
    path = confirmation_path(mailoutbox[0])

    with time_machine.travel(campaign.release.release_at + dt.timedelta(hours=1)):
        asked = html.unescape(client.get(path).content.decode())
        done = html.unescape(client.post(path).content.decode())

    assert "It's out already" in asked and 'id="confirm-email"' not in asked
    assert "It's out already" in done and "You're on the list." not in done
    signup.refresh_from_db()
    assert signup.confirmed_at is None


def test_only_confirmed_sign_ups_get_the_release_email(client, sign_up, mailoutbox):
    campaign = make_campaign()
    sign_up(campaign, "confirmed@fan.test")
    sign_up(campaign, "typed@fan.test")
    confirmed = EmailSignup.objects.get(email="confirmed@fan.test")
    signups.send_confirmation(confirmed.pk)
    client.post(confirmation_path(mailoutbox[0]))
    mailoutbox.clear()

    with time_machine.travel(campaign.release.release_at + dt.timedelta(minutes=1)):  # the release is out
        release_email.send_release_emails(campaign.pk)

    assert [m.to for m in mailoutbox] == [["confirmed@fan.test"]]


def test_the_html_part_escapes_what_staff_typed(sign_up, campaign, mailoutbox):
    campaign.release.title = '<img src=x onerror="alert(1)">'
    campaign.release.save()
    sign_up(campaign)

    signups.send_confirmation(EmailSignup.objects.get().pk)

    ((page_html, _),) = mailoutbox[0].alternatives
    assert "<img src=x" not in page_html and "&lt;img src=x" in page_html


def test_an_address_that_unsubscribed_must_confirm_again(sign_up, campaign):
    sign_up(campaign)
    EmailSignup.objects.update(confirmed_at=timezone.now(), unsubscribed_at=timezone.now())
    cache.clear()  # as RESEND_SECONDS later

    sign_up(campaign)

    signup = EmailSignup.objects.get()
    assert (signup.confirmed_at, signup.unsubscribed_at) == (None, None)
    assert OrmQ.objects.count() == 2


def test_an_inbox_gets_one_confirmation_however_often_its_address_is_typed(sign_up, campaign):
    for _ in range(5):
        sign_up(campaign)
    assert OrmQ.objects.count() == 1

    cache.clear()  # as RESEND_SECONDS later
    sign_up(campaign)
    assert OrmQ.objects.count() == 2, "a later sign-up gets a new link"


def test_a_confirmed_address_signing_up_again_stays_confirmed_and_the_page_tells_nothing(sign_up, campaign):
    unconfirmed = article(sign_up(campaign))
    agreed = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    EmailSignup.objects.update(confirmed_at=timezone.now(), wording_version="v-agreed", created_at=agreed)

    confirmed = article(sign_up(campaign))

    # The same words either way: the page must not tell whoever typed an address whether its owner signed up.
    assert confirmed == unconfirmed
    signup = EmailSignup.objects.get()
    assert signup.confirmed_at is not None
    assert (signup.wording_version, signup.created_at) == ("v-agreed", agreed), "the record of what was agreed"
    assert OrmQ.objects.count() == 1, "no second confirmation email"


def test_one_sign_up_per_address_whatever_its_case(campaign):
    EmailSignup.objects.create(campaign=campaign, email="Fan@Example.test", wording_version="v1")

    with pytest.raises(IntegrityError), transaction.atomic():
        EmailSignup.objects.create(campaign=campaign, email="fan@example.TEST", wording_version="v1")
    EmailSignup.objects.create(campaign=make_campaign(slug="other"), email="fan@example.test", wording_version="v1")


@pytest.mark.parametrize("unsubscribed", [False, True], ids=["confirmed", "unsubscribed"])
def test_an_address_stored_in_mixed_case_typed_again_in_another_case_is_its_sign_up(sign_up, campaign, unsubscribed):
    """A sign-up stored as typed, in mixed case (not through sign_up, which lower-cases the address): the same
    address typed in lower case is that sign-up, kept when confirmed, to confirm again when unsubscribed; and
    the page names the address as typed, so it tells nothing about what is on the list."""
    agreed = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    EmailSignup.objects.create(
        campaign=campaign,
        email="Fan@Example.test",
        wording_version="v-agreed",
        created_at=agreed,
        confirmed_at=agreed,
        unsubscribed_at=agreed if unsubscribed else None,
    )

    response = sign_up(campaign, "fan@example.test")

    assert response.status_code == 200
    assert "<strong>fan@example.test</strong> is on the list already" in html.unescape(response.content.decode())
    signup = EmailSignup.objects.get()
    if unsubscribed:
        assert (signup.confirmed_at, signup.unsubscribed_at) == (None, None)
        assert OrmQ.objects.count() == 1, "a confirmation email"
    else:
        assert (signup.confirmed_at, signup.wording_version) == (agreed, "v-agreed"), "the record of what was agreed"
        assert OrmQ.objects.count() == 0


def article(response) -> str:
    return re.search(r"<article.*?</article>", response.content.decode(), re.DOTALL).group(0)


@pytest.mark.parametrize(
    ("token", "status"),
    [
        ("nonsense", 400),
        (signing.dumps({"signup": 1}, salt="another-purpose"), 400),
        (signing.dumps({"signup": 999999}, salt=signups.CONFIRM_SALT), 400),
        (signing.dumps(["not", "a", "dict"], salt=signups.CONFIRM_SALT), 400),
        ("A" * 5000, 400),
    ],
    ids=["garbage", "other-salt", "no-such-sign-up", "wrong-shape", "huge"],
)
def test_bad_confirmation_links_are_clear_4xx(client, token, status):
    for method in (client.get, client.post):
        response = method(reverse("fans:confirm_email", args=[token]))
        assert response.status_code == status
        assert "This link isn't valid" in html.unescape(response.content.decode())


def test_the_link_carries_no_address(sign_up, campaign, mailoutbox):
    sign_up(campaign)
    signup = EmailSignup.objects.get()
    signups.send_confirmation(signup.pk)

    token = confirmation_path(mailoutbox[0]).split("/")[3]
    assert signing.loads(token, salt=signups.CONFIRM_SALT) == {"signup": signup.pk}, "URLs get logged"


def test_an_expired_link_is_a_410(client, sign_up, campaign, settings, mailoutbox):
    sign_up(campaign)
    signups.send_confirmation(EmailSignup.objects.get().pk)
    settings.EMAIL_CONFIRM_LINK_MAX_AGE = -1

    response = client.post(confirmation_path(mailoutbox[0]))

    assert response.status_code == 410
    assert EmailSignup.objects.get().confirmed_at is None


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_mails_the_confirmation(client, sign_up, start_worker, tmp_path):
    campaign = make_campaign()
    start_worker(EMAIL_URL=f"filemail://{tmp_path}")

    sign_up(campaign)

    def mail_written() -> str:
        body = "".join(path.read_text() for path in tmp_path.glob("*.log"))
        return body if "/e/confirm/" in body else ""  # the file exists a moment before the message is in it

    body = wait_for(mail_written, message="the worker to mail the confirmation")
    assert "To: fan@example.test" in body
    path = urlsplit(re.search(r"https?://\S+/e/confirm/\S+/", body).group(0)).path
    assert client.post(path).status_code == 200
    assert EmailSignup.objects.get().confirmed_at is not None


def test_a_mail_server_that_refuses_schedules_another_try(sign_up, campaign, settings, mailoutbox):
    sign_up(campaign)
    signup = EmailSignup.objects.get()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there

    assert "mail server failed" in signups.send_confirmation(signup.pk)

    retry = Schedule.objects.get(name=f"confirm-email-{signup.pk}")
    assert (retry.func, retry.args) == (signups.CONFIRM_TASK, repr((signup.pk,)))
    assert retry.next_run > timezone.now()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert signups.send_confirmation(signup.pk).startswith("confirmation sent")  # what the retry runs
    assert mailoutbox[0].to == ["fan@example.test"]


def test_sign_ups_left_unconfirmed_are_forgotten_once_their_link_expired(campaign, settings):
    settings.EMAIL_CONFIRM_LINK_MAX_AGE = 14 * 86_400
    long_ago = timezone.now() - dt.timedelta(days=15)
    EmailSignup.objects.create(campaign=campaign, email="never@fan.test", wording_version="v", created_at=long_ago)
    EmailSignup.objects.create(campaign=campaign, email="recent@fan.test", wording_version="v")
    EmailSignup.objects.create(
        campaign=campaign, email="kept@fan.test", wording_version="v", created_at=long_ago, confirmed_at=long_ago
    )

    assert signups.forget_unconfirmed() == "forgot 1 unconfirmed email sign-up(s)"

    assert sorted(EmailSignup.objects.values_list("email", flat=True)) == ["kept@fan.test", "recent@fan.test"]


def test_a_link_opened_after_unsubscribing_confirms_nothing(client, sign_up, campaign, mailoutbox):
    sign_up(campaign)
    signups.send_confirmation(EmailSignup.objects.get().pk)
    EmailSignup.objects.update(unsubscribed_at=timezone.now())

    response = client.post(confirmation_path(mailoutbox[0]))

    assert response.status_code == 200 and "You're unsubscribed" in html.unescape(response.content.decode())
    assert EmailSignup.objects.get().confirmed_at is None
