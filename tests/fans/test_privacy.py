"""Fan privacy self-service: see, download, revoke one campaign, erase everything, by a signed or sealed link."""

import base64
import binascii
import contextlib
import datetime as dt
import html
import json
import re
import zlib
from urllib.parse import urlsplit

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ, Task

from delivery.models import DeliveryAttempt
from fans import privacy, privacy_email, release_email, vault
from fans.models import ConsentRecord, Credential, EmailSignup, Fan, FunnelEvent, ReleaseEmail, Subscription
from tests.conftest import make_campaign, wait_for
from tests.fans.test_oauth_callback import presave
from tests.fans.test_release_email import links_in, path_of, pre_save, sign_up
from tests.fans.test_tracking import IPHONE_SAFARI

pytestmark = pytest.mark.django_db


def privacy_link_from_thanks(client, campaign) -> str:
    html = client.get(reverse("fans:thanks", args=[campaign.slug])).content.decode()
    return re.search(r'class="privacy-link" href="([^"]+)"', html).group(1)


@pytest.fixture
def alice(client, sandbox):
    """Alice pre-saved two campaigns (with email), and signed up by email for a third."""
    first = make_campaign()
    second = make_campaign(slug="second-light")
    client.get(first.get_absolute_url())
    presave(client, first, email_opt_in=True)
    presave(client, second, email_opt_in=True)
    third = make_campaign(slug="third-light")
    EmailSignup.objects.create(campaign=third, email="alice@sandbox.test", wording_version="2026-11-v2")
    return Fan.objects.get(display_name="Alice")


def test_the_thank_you_page_links_to_what_we_hold(client, alice):
    link = privacy_link_from_thanks(client, Subscription.objects.first().campaign)

    html = client.get(link).content.decode()

    assert "What we hold about you" in html
    assert "alice@sandbox.test" in html and "Alice" in html
    assert html.count("Cancel this pre-save") == 2
    assert "Download my data (JSON)" in html


def test_each_pre_save_says_how_release_day_went_in_words_true_of_a_follow_too(client, alice):
    delivered, waiting = Subscription.objects.filter(fan=alice).order_by("pk")
    delivered_at = delivered.campaign.release.release_at + dt.timedelta(minutes=2)
    Subscription.objects.filter(pk=delivered.pk).update(status=Subscription.Status.DELIVERED, delivered_at=delivered_at)

    html = " ".join(client.get(privacy_link_from_thanks(client, waiting.campaign)).content.decode().split())

    assert f"First Light</strong> by Nova Lark, on Spotify: done on {delivered_at.day} {delivered_at:%B %Y}." in html
    assert "First Light</strong> by Nova Lark, on Spotify: waiting for release day." in html  # the second campaign
    assert "saved to your library" not in html, "a pre-save may only follow the artist"


def test_the_export_is_everything_we_hold_as_json_without_tokens(client, alice):
    token = privacy.sign({"fan": alice.pk})

    response = client.get(reverse("fans:privacy_export", args=[token]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    data = json.loads(response.content)
    assert data["fan"]["service_user_id"] == alice.service_user_id and data["fan"]["email"] == "alice@sandbox.test"
    assert {s["campaign"] for s in data["subscriptions"]} == {"first-light", "second-light"}
    assert all(s["stored_permission"] for s in data["subscriptions"])
    assert len(data["consents"]) == 2 and data["consents"][0]["scopes"]
    assert data["email_signups"] == [], "filed under her address, which her streaming service does not verify"
    assert [(e["kind"], e["linked_by"]) for e in data["funnel_events"]] == [
        ("view", "the same browser that day"),
        ("click", "the same browser that day"),
        ("authorize", "your pre-save"),
        ("click", "the same browser that day"),
        ("authorize", "your pre-save"),
    ]
    for credential in Credential.objects.all():
        assert bytes(credential.ciphertext).hex() not in response.content.decode()


def test_the_export_tells_how_release_day_went_and_where_the_fan_came_from(client, sandbox):
    """GDPR art. 15: the delivery attempts and their errors, when the stored permission was given, the release-day
    email's market and refusal, and the funnel events with what they recorded; no hash, no token."""
    campaign = make_campaign()
    client.get(
        campaign.get_absolute_url() + "?utm_source=newsletter&utm_campaign=drop",
        HTTP_REFERER="https://www.instagram.com/novalark",
        HTTP_USER_AGENT=IPHONE_SAFARI,
    )
    presave(client, campaign, email_opt_in=True)
    subscription = Subscription.objects.get()
    done = "save follow playlist-made:qhRx7Pl4yl1st playlist:1 playlist"  # the playlist made, filled in two adds
    Subscription.objects.filter(pk=subscription.pk).update(attempts=2, last_error="Spotify: 503", done_calls=done)
    DeliveryAttempt.objects.create(
        subscription=subscription, at=timezone.now(), call="follow", outcome="retry", http_status=503, message="Busy"
    )
    consent = ConsentRecord.objects.get()
    ReleaseEmail.objects.create(
        campaign=campaign, email="alice@sandbox.test", consent=consent, market="NZ", refusal="550 no such mailbox"
    )

    response = client.get(reverse("fans:privacy_export", args=[privacy.sign({"fan": subscription.fan_id})]))

    data = json.loads(response.content)
    (presaved,) = data["subscriptions"]
    assert (presaved["delivery_tries"], presaved["last_error"], presaved["library_actions_done"]) == (
        2,
        "Spotify: 503",
        ["save", "follow", "playlist"],
    ), "the actions done by name, not the engine's marks along the way"
    assert presaved["permission_given_at"] == Credential.objects.get().authorized_at.isoformat()
    assert [(a["call"], a["outcome"], a["http_status"], a["message"]) for a in presaved["delivery_attempts"]] == [
        ("follow", "retry", 503, "Busy")
    ]
    (mailed,) = data["release_emails"]
    assert (mailed["market"], mailed["refused_by_mail_server"]) == ("NZ", "550 no such mailbox")
    view, click, authorize = data["funnel_events"]
    assert (view["kind"], view["utm_source"], view["utm_campaign"]) == ("view", "newsletter", "drop")
    assert (view["referrer_domain"], view["device"], view["in_app_browser"]) == ("instagram.com", "mobile", "")
    assert (click["kind"], click["service"], authorize["kind"]) == ("click", "spotify", "authorize")
    assert authorize["at"] == FunnelEvent.objects.get(kind="authorize").created_at.isoformat()
    body = response.content.decode()
    assert "qhRx7Pl4yl1st" not in body and "playlist-made" not in body and "playlist:1" not in body
    assert consent.revoke_token_hash not in body and FunnelEvent.objects.first().visitor not in body
    assert bytes(Credential.objects.get().ciphertext).hex() not in body


def test_revoking_one_campaign_leaves_the_other(client, alice):
    token = privacy.sign({"fan": alice.pk})
    first, second = Subscription.objects.order_by("created_at")

    response = client.post(reverse("fans:privacy_revoke", args=[token, first.pk]))

    assert response.status_code == 302
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("revoked", "pending")
    assert not Credential.objects.filter(subscription=first).exists()
    assert Credential.objects.filter(subscription=second).exists()
    assert ConsentRecord.objects.get(subscription=first).revoked_at is not None


def test_someone_elses_subscription_cannot_be_revoked(client, alice, sandbox):
    bob_campaign = make_campaign(slug="bobs")
    other = type(client)()
    presave(other, bob_campaign, user="bob")
    bobs = Subscription.objects.get(fan__display_name="Bob")

    response = client.post(reverse("fans:privacy_revoke", args=[privacy.sign({"fan": alice.pk}), bobs.pk]))

    assert response.status_code == 404
    bobs.refresh_from_db()
    assert bobs.status == "pending"


def test_erasing_keeps_only_anonymous_counts(client, alice):
    token = privacy.sign({"fan": alice.pk})
    events_before = FunnelEvent.objects.count()
    assert client.get(reverse("fans:privacy_erase", args=[token])).status_code == 200  # asks first
    assert Fan.objects.filter(pk=alice.pk).exists()

    response = client.post(reverse("fans:privacy_erase", args=[token]))

    assert response.status_code == 200
    page = " ".join(response.content.decode().split())
    assert "Your account's data is erased" in page
    assert "that sign-up is kept under your email address" in page, "what a fan's link can't reach"
    assert f'<a href="{reverse("fans:privacy_notice")}#privacy-link">ask for a link by email</a>' in page
    assert not Fan.objects.exists() and not Subscription.objects.exists() and not Credential.objects.exists()
    assert EmailSignup.objects.filter(email__iexact="alice@sandbox.test").exists(), "the address's, not the fan's"
    for record in ConsentRecord.objects.all():
        assert (record.service_user_id, record.display_name, record.email, record.user_agent) == ("", "", "", "")
        assert record.ip_address is None and record.subscription is None and record.revoked_at is not None
        assert record.wording_version  # that a consent was given, in which words, stays
    assert FunnelEvent.objects.count() == events_before  # anonymous counts kept
    assert not FunnelEvent.objects.filter(subscription__isnull=False).exists()
    assert client.get(reverse("fans:privacy", args=[token])).status_code == 404  # nothing held any more


@pytest.mark.parametrize("by", ["the fan's link", "a link mailed to the address"])
def test_after_erasing_nothing_left_leads_back_to_the_fan(client, alice, by):
    """What a reviewer searched the tables for after an erasure: the old revoke link, the consent's time to the
    microsecond (the authorization's funnel event's, give or take milliseconds), and the visitor hash that ties
    that event to the day's page views, clicks and UTM values."""
    thanks = client.get(reverse("fans:thanks", args=["second-light"])).content.decode()
    revoke_url = re.search(r'href="(/revoke/[^"]+)"', thanks).group(1)
    hers = set(FunnelEvent.objects.values_list("visitor", flat=True))
    assert "" not in hers and len(hers) == 1
    type(client)().get(make_campaign(slug="bobs").get_absolute_url())  # someone else's visit
    events = FunnelEvent.objects.count()
    if by == "the fan's link":
        erase = reverse("fans:privacy_erase", args=[privacy.sign({"fan": alice.pk})])
    else:
        erase = privacy.link_for_email("alice@sandbox.test") + "erase/"

    assert client.post(erase).status_code == 200

    never_valid = client.get(reverse("fans:revoke", args=["x" * 43]))
    for old in (client.get(revoke_url), client.post(revoke_url)):
        assert (old.status_code, old.content) == (404, never_valid.content)
    assert not FunnelEvent.objects.filter(visitor__in=hers).exists()
    assert FunnelEvent.objects.filter(campaign__slug="bobs").exclude(visitor="").exists(), "not Bob's"
    assert FunnelEvent.objects.count() == events and not FunnelEvent.objects.filter(subscription__isnull=False)
    for record in ConsentRecord.objects.all():
        for at in (record.created_at, record.revoked_at):
            assert at == at.replace(hour=0, minute=0, second=0, microsecond=0), "the day only"


def test_an_account_named_after_someone_else_s_address_reaches_none_of_that_address_s_data(client, sandbox):
    """Streaming services don't verify the email they report: an account opened in someone else's name must not
    read or erase what is filed under that address (their own email sign-ups, and the emails sent to them)."""
    victims = make_campaign(slug="victims-pick")
    signup = EmailSignup.objects.create(
        campaign=victims, email="alice@sandbox.test", wording_version="v", confirmed_at=timezone.now()
    )
    ReleaseEmail.objects.create(campaign=victims, email="alice@sandbox.test", signup=signup)
    presave(client, make_campaign(), email_opt_in=True)  # an account reporting alice@sandbox.test
    link = privacy_link_from_thanks(client, Subscription.objects.get().campaign)
    token = link.split("/")[2]

    page = client.get(link).content.decode()
    data = json.loads(client.get(reverse("fans:privacy_export", args=[token])).content)
    client.post(reverse("fans:privacy_erase", args=[token]))

    assert "victims-pick" not in json.dumps(data) and "Victims" not in page
    assert data["email_signups"] == [] and data["release_emails"] == []
    assert "ask for one" in page, "the way to what is filed under the address: a link mailed to it"
    assert EmailSignup.objects.filter(pk=signup.pk).exists() and ReleaseEmail.objects.filter(signup=signup).exists()


def test_an_erased_fan_s_old_links_are_a_clean_404_saying_the_link_is_no_longer_valid(client, alice, settings):
    settings.DEBUG = False
    token = privacy.sign({"fan": alice.pk})
    subscription = alice.subscriptions.first().pk
    assert client.post(reverse("fans:privacy_erase", args=[token])).status_code == 200

    pages = [
        reverse("fans:privacy", args=[token]),
        reverse("fans:privacy_export", args=[token]),
        reverse("fans:privacy_revoke", args=[token, subscription]),
        reverse("fans:privacy_stop_email", args=[token, subscription]),
        reverse("fans:privacy_erase", args=[token]),
    ]
    checked = 0
    for url in pages:
        for response in (client.get(url), client.post(url)):
            if response.status_code == 405:  # a page that only answers GET, say
                continue
            checked += 1
            page = html.unescape(response.content.decode())
            assert response.status_code == 404, (url, response.status_code)
            assert "<h1>This link is no longer valid</h1>" in page, url
            assert "has been erased" in page and "Traceback" not in page
            assert response["Content-Type"].startswith("text/html")
    assert checked >= len(pages) and not Fan.objects.exists()


def test_a_forged_link_is_a_clear_400(client, alice):
    token = privacy.sign({"fan": alice.pk})
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")

    for url in (
        reverse("fans:privacy", args=[forged]),
        reverse("fans:privacy_export", args=[forged]),
        reverse("fans:privacy_erase", args=[forged]),
        reverse("fans:privacy", args=["not-signed-at-all"]),
    ):
        response = client.get(url)
        assert response.status_code == 400, url
        assert "This link isn&#x27;t valid" in response.content.decode()
    assert client.post(reverse("fans:privacy_erase", args=[forged])).status_code == 400
    assert Fan.objects.filter(pk=alice.pk).exists()


def test_a_link_signed_for_something_else_is_refused(client, alice):
    from django.core import signing

    other_salt = signing.dumps({"fan": alice.pk}, salt="something.else", compress=True)

    assert client.get(reverse("fans:privacy", args=[other_salt])).status_code == 400


def test_an_expired_link_is_a_clear_410(client, alice, settings):
    with time_machine.travel(timezone.now() - dt.timedelta(seconds=settings.PRIVACY_LINK_MAX_AGE + 60)):
        token = privacy.sign({"fan": alice.pk})

    response = client.post(reverse("fans:privacy_erase", args=[token]))

    assert response.status_code == 410
    assert "This link has expired" in response.content.decode()
    assert Fan.objects.filter(pk=alice.pk).exists()


def queued_privacy_links() -> list[str]:
    queued = [task.task["args"][0] for task in OrmQ.objects.all() if task.func() == privacy_email.SEND_TASK]
    return [vault.unseal_text(sealed, aad=privacy_email.TASK_AAD) for sealed in queued]


def readings(text: str):
    """Every way `text` and its parts (between "/", ":" and ".") read: as they are, base64-decoded in either
    alphabet, and decompressed (django.core.signing's compressed payloads)."""
    yield text.encode()
    for part in re.split(r"[/:.]", text):
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            with contextlib.suppress(binascii.Error, ValueError):
                raw = decode(part + "=" * (-len(part) % 4))
                yield raw
                with contextlib.suppress(zlib.error):
                    yield zlib.decompress(raw)


def shows(text: str, address: str) -> bool:
    return any(address.encode() in reading.lower() for reading in readings(text))


def test_a_privacy_link_shows_the_address_in_no_form(client, settings):
    """URLs get logged (proxies, browser history, mail scanners): the address is sealed, and the link stays
    short enough for any email client. Links mailed before they were sealed work until they expire."""
    settings.PUBLIC_BASE_URL = "https://presave.nova-lark-records.example"
    address = "carol.whitfield-fan@mail.example.test"
    sign_up(make_campaign(), address)
    mailed_before = reverse("fans:privacy", args=[privacy.sign({"email": address})])

    url = release_email.absolute(privacy.link_for_email(address.title()))

    assert not shows(url, address) and not shows(url, "carol") and len(url) < 250, url
    assert shows(mailed_before, address), "the old form: readable"
    for link in (urlsplit(url).path, mailed_before):
        page = client.get(link)
        assert page.status_code == 200 and address in page.content.decode()
    with time_machine.travel(timezone.now() + dt.timedelta(seconds=settings.PRIVACY_LINK_MAX_AGE + 60)):
        assert client.get(urlsplit(url).path).status_code == 410
        assert client.get(mailed_before).status_code == 410


def test_a_sealed_address_opens_only_for_what_it_was_sealed_for(client, settings):
    sign_up(make_campaign(), "carol@example.test")
    link = privacy.link_for_email("carol@example.test")
    token = link.split("/")[2]
    for_the_task = vault.seal_text("carol@example.test", aad=privacy_email.TASK_AAD)

    assert client.get(reverse("fans:privacy", args=[for_the_task])).status_code == 400
    assert privacy_email.send_link(token) == "privacy link: the address did not open"
    assert client.get(link[:-12] + "/").status_code == 400  # cut short
    settings.TOKEN_ENCRYPTION_KEYS = settings.TOKEN_ENCRYPTION_KEYS.split(",", 1)[1]  # its key retired since
    assert client.get(link).status_code == 410


def test_the_queued_privacy_link_task_keeps_no_readable_address(client):
    sign_up(make_campaign(), "inbox@fan.test")

    client.post(reverse("fans:privacy_link"), {"email": "inbox@fan.test"})

    (queued,) = OrmQ.objects.all()
    assert not shows(queued.payload, "inbox") and "inbox" not in repr(queued.task)


@pytest.mark.django_db(transaction=True)
def test_a_worker_mails_the_privacy_link_and_keeps_no_address_in_its_results(client, start_worker, tmp_path):
    """django-q2 keeps what a task was given and returned (succeeded or failed) long after the mail went."""
    sign_up(make_campaign(), "inbox@fan.test")
    client.post(reverse("fans:privacy_link"), {"email": "inbox@fan.test"})

    start_worker(EMAIL_URL=f"filemail://{tmp_path}")

    done = wait_for(lambda: Task.objects.filter(func=privacy_email.SEND_TASK).first(), message="the mailed link")
    assert done.success and done.result == "privacy link sent"
    assert "inbox" not in repr((done.name, done.args, done.kwargs, done.result))
    (mail,) = [path.read_text() for path in tmp_path.iterdir()]
    assert "To: inbox@fan.test" in mail
    link = re.search(r"https?://\S+/privacy/\S+", mail).group(0)
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200 and "inbox@fan.test" in page.content.decode()


def test_a_fan_whose_link_expired_gets_a_fresh_one_by_email(client, mailoutbox):
    """An old release-day email's link has expired: the 410 page points to the privacy page, where typing the
    address mails a fresh link to it, and that link works."""
    campaign = make_campaign()
    sign_up(campaign, "Inbox@Fan.test")
    with time_machine.travel(timezone.now() - dt.timedelta(days=400)):
        old = privacy.link_for_email("inbox@fan.test")
    expired = client.get(old)
    assert expired.status_code == 410 and "privacy page" in expired.content.decode()

    form = client.get(reverse("fans:privacy_notice")).content.decode()
    assert f'action="{reverse("fans:privacy_link")}"' in form and 'name="csrfmiddlewaretoken"' in form
    response = client.post(reverse("fans:privacy_link"), {"email": " INBOX@fan.test "})

    assert response.status_code == 200 and "Check your inbox." in response.content.decode()
    assert queued_privacy_links() == ["inbox@fan.test"]
    (queued,) = OrmQ.objects.all()
    assert privacy_email.send_link(*queued.task["args"]) == "privacy link sent"  # what the worker runs
    (mail,) = mailoutbox
    assert mail.to == ["inbox@fan.test"]
    fresh = path_of(links_in(mail)[0])
    page = client.get(fresh)
    assert page.status_code == 200 and "Inbox@Fan.test" in page.content.decode()


def test_asking_again_and_again_mails_one_inbox_once_in_five_minutes(client):
    sign_up(make_campaign(), "inbox@fan.test")
    pages = [client.post(reverse("fans:privacy_link"), {"email": "inbox@fan.test"}) for _ in range(5)]

    assert {page.status_code for page in pages} == {200}
    assert all("Check your inbox." in page.content.decode() for page in pages), "the page says the same each time"
    assert queued_privacy_links() == ["inbox@fan.test"]


def test_an_address_we_hold_nothing_about_gets_the_same_page_and_no_mail(client):
    known = client.post(reverse("fans:privacy_link"), {"email": "nobody@fan.test"})

    assert known.status_code == 200 and "If we hold anything about" in known.content.decode()
    assert queued_privacy_links() == [], "nobody is mailed about what we don't hold"


def test_the_link_sent_page_never_says_we_hold_nothing(client):
    """Nothing may come though we hold something (a mail server down, a link mailed minutes before), and what
    we hold about a streaming account is not reached by its address: the page can't say we hold nothing."""
    page = client.post(reverse("fans:privacy_link"), {"email": "bob@fan.test"}).content.decode()

    assert "hold nothing" not in page


@pytest.mark.parametrize("email", ["not an address", "", "a@" + "b" * 300 + ".test", "x@y.test\x00"])
def test_a_bad_address_for_a_fresh_link_is_a_clear_400(client, email):
    response = client.post(reverse("fans:privacy_link"), {"email": email})

    assert response.status_code == 400
    assert 'id="privacy-email-error"' in response.content.decode()
    assert queued_privacy_links() == []


def test_the_revoke_page_links_to_what_we_hold(client, sandbox):
    campaign = make_campaign()
    presave(client, campaign)
    revoke_url = re.search(
        r'href="(/revoke/[^"]+)"', client.get(reverse("fans:thanks", args=[campaign.slug])).content.decode()
    ).group(1)

    html = client.get(revoke_url).content.decode()

    link = re.search(r'class="privacy-link" href="([^"]+)"', html).group(1)
    assert client.get(link).status_code == 200


def test_an_email_link_covers_that_addresss_sign_ups(client, db):
    campaign = make_campaign()
    EmailSignup.objects.create(campaign=campaign, email="carol@example.test", wording_version="v")

    other = make_campaign(slug="second-light")
    EmailSignup.objects.create(
        campaign=other, email="carol@example.test", wording_version="v", unsubscribed_at=timezone.now()
    )

    link = privacy.link_for_email("Carol@Example.test")
    page = html.unescape(client.get(link).content.decode())
    assert "carol@example.test" in page
    assert page.count("(unsubscribed: we won't email it)") == 1 and page.count("(not confirmed") == 1
    erased = client.post(link + "erase/")

    assert not EmailSignup.objects.exists()
    assert "Everything under your address is erased" in erased.content.decode()


@pytest.fixture
def out_campaign(db):
    """Out now: Opted pre-saved with emails, Declined without, and an email-only sign-up."""
    campaign = make_campaign(release_in=dt.timedelta(minutes=-5), status="done")
    pre_save(campaign, "opted", "opted@fan.test", opt_in=True)
    pre_save(campaign, "declined", "declined@fan.test", opt_in=False)
    sign_up(campaign, "inbox@fan.test")
    return campaign


def test_the_release_day_email_links_to_what_we_hold_for_its_address(out_campaign, client, mailoutbox):
    release_email.send_release_emails(out_campaign.pk)
    by_address = {message.to[0]: message for message in mailoutbox}

    for address, shown in (("opted@fan.test", "First Light"), ("inbox@fan.test", "inbox@fan.test")):
        message = by_address[address]
        link = link_in(message)
        assert link in message.alternatives[0][0]  # the HTML part carries it too
        page = client.get(path_of(link))
        assert page.status_code == 200 and shown in page.content.decode()
    assert 'data-subscription="' in client.get(path_of(link_in(by_address["opted@fan.test"]))).content.decode()


def test_an_email_link_erases_the_consents_that_carry_its_address(out_campaign, client, mailoutbox):
    opted = ConsentRecord.objects.get(service_user_id="opted")
    credential = Credential(subscription=opted.subscription, authorized_at=timezone.now())
    credential.store("a-refresh-token")
    credential.save()
    others = {c.pk: c.email for c in ConsentRecord.objects.exclude(pk=opted.pk)}
    release_email.send_release_emails(out_campaign.pk)
    link = path_of(link_in(next(m for m in mailoutbox if m.to == ["opted@fan.test"])))

    export = json.loads(client.get(link + "export.json").content)
    assert [c["email"] for c in export["consents"]] == ["opted@fan.test"]
    assert [s["campaign"] for s in export["subscriptions"]] == [out_campaign.slug]
    response = client.post(link + "erase/")

    assert response.status_code == 200
    opted.refresh_from_db()
    assert (opted.service_user_id, opted.display_name, opted.email, opted.user_agent) == ("", "", "", "")
    assert opted.ip_address is None and opted.subscription is None and opted.revoked_at is not None
    subscription = Subscription.objects.get(fan__service_user_id="opted")
    assert subscription.status == "revoked" and not Credential.objects.filter(subscription=subscription).exists()
    assert not Fan.objects.filter(email__iexact="opted@fan.test").exists()
    assert not EmailSignup.objects.filter(email__iexact="opted@fan.test").exists()
    assert {c.pk: c.email for c in ConsentRecord.objects.exclude(pk=opted.pk)} == others  # nobody else's


def erase_question(client, link: str) -> str:
    page = client.get(link).content.decode()
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.split("<h1>")[1].split("<form")[0])).split())


def test_the_erase_question_of_an_email_link_says_what_erasing_by_an_address_does(out_campaign, client):
    question = erase_question(client, privacy.link_for_email("opted@fan.test") + "erase/")

    assert "your account details" not in question, "an address link keeps the streaming account's own data"
    assert "cancel every pre-save made with opted@fan.test that hasn't happened yet" in question
    assert "delete the email sign-ups of opted@fan.test and the emails we sent to it" in question
    assert "remove opted@fan.test from the streaming accounts that shared it" in question
    assert "The streaming accounts themselves (their name and account id) stay" in question

    client.post(privacy.link_for_email("opted@fan.test") + "erase/")
    fan = Fan.objects.get(service_user_id="opted")
    assert (fan.display_name, fan.email) == ("opted", ""), "as the question said"


def test_the_erase_question_of_a_fans_link_promises_the_account_details(client, alice):
    question = erase_question(client, reverse("fans:privacy_erase", args=[privacy.sign({"fan": alice.pk})]))

    assert "delete the permissions you gave us and your account details" in question
    assert "streaming accounts themselves" not in question and "alice@sandbox.test" not in question


def link_in(message) -> str:
    return next(url for url in links_in(message) if "/privacy/" in url)


def test_erasing_deletes_the_release_day_emails_to_the_address(out_campaign, client):
    sign_up(out_campaign, "other@fan.test")
    release_email.send_release_emails(out_campaign.pk)
    opted = Fan.objects.get(service_user_id="opted")
    assert set(ReleaseEmail.objects.values_list("email", flat=True)) == {
        "opted@fan.test",
        "inbox@fan.test",
        "other@fan.test",
    }

    client.post(reverse("fans:privacy_erase", args=[privacy.sign({"fan": opted.pk})]))
    client.post(privacy.link_for_email("Inbox@fan.test") + "erase/")

    assert list(ReleaseEmail.objects.values_list("email", flat=True)) == ["other@fan.test"]  # nobody else's


def test_the_export_includes_the_release_day_emails_to_the_address(out_campaign, client):
    release_email.send_release_emails(out_campaign.pk)
    ReleaseEmail.objects.filter(email="inbox@fan.test").update(opened_at=timezone.now(), clicks=2)

    export = json.loads(client.get(privacy.link_for_email("inbox@fan.test") + "export.json").content)

    assert [(e["campaign"], e["email"], e["clicks"]) for e in export["release_emails"]] == [
        (out_campaign.slug, "inbox@fan.test", 2)
    ]
    assert export["release_emails"][0]["opened_at"] is not None


def test_the_privacy_notice_names_what_a_presave_and_the_release_email_keep(client, db):
    html = client.get(reverse("fans:privacy_notice")).content.decode()

    kept = html.split("When you pre-save", 1)[1].split("When you visit", 1)[0]
    assert "your country" in kept and "IP address" in kept
    assert "opened" in html and "clicked" in html  # the release-day email's pixel and tracked links
    assert "until you cancel or erase" not in html, "a cancelled pre-save's fan and consent record stay until erased"


def test_the_privacy_notice_names_who_answers_for_the_data_and_where_to_write(client, db, settings):
    settings.PRIVACY_CONTROLLER = "Harbour Records Ltd, 1 Quay Street, Bristol BS1 4DJ"
    settings.PRIVACY_CONTACT_EMAIL = "privacy@harbour.example"

    html = client.get(reverse("fans:privacy_notice")).content.decode()

    who = html.split("Who we are", 1)[1].split("When you pre-save", 1)[0]
    assert "Harbour Records Ltd, 1 Quay Street, Bristol BS1 4DJ runs this site" in who
    assert '<a href="mailto:privacy@harbour.example">privacy@harbour.example</a>' in who
    assert "complain to the data protection authority" in html


def test_a_privacy_notice_without_its_controller_set_claims_no_one(client, db, settings):
    """The demo's: no made-up name. `check --deploy` warns a deployment (fans.W007)."""
    settings.PRIVACY_CONTROLLER = settings.PRIVACY_CONTACT_EMAIL = ""

    html = client.get(reverse("fans:privacy_notice")).content.decode()

    assert "Who we are" not in html and "mailto:" not in html
    assert "complain to the data protection authority" in html


def test_after_erasing_everything_the_thank_you_page_no_longer_says_you_are_in(client, alice):
    campaign = Subscription.objects.first().campaign
    thanks = reverse("fans:thanks", args=[campaign.slug])
    assert client.get(thanks).status_code == 200

    client.post(reverse("fans:privacy_erase", args=[privacy.sign({"fan": alice.pk})]))

    response = client.get(thanks)
    assert response.status_code == 302 and response["Location"] == campaign.get_absolute_url()


def test_erasing_blanks_the_admin_history_naming_the_fan(client, alice, superuser):
    """The admin's history keeps each object's name as it was (LogEntry.object_repr): "Alice", her address."""
    from django.contrib.admin.models import CHANGE, LogEntry

    LogEntry.objects.log_actions(superuser.pk, Fan.objects.filter(pk=alice.pk), CHANGE, single_object=True)
    LogEntry.objects.log_actions(superuser.pk, Subscription.objects.filter(fan=alice), CHANGE)
    LogEntry.objects.log_actions(superuser.pk, EmailSignup.objects.all(), CHANGE)
    campaign = Subscription.objects.first().campaign
    LogEntry.objects.log_actions(superuser.pk, [campaign], CHANGE, single_object=True)
    assert LogEntry.objects.filter(object_repr__contains="Alice").count() == 3
    assert LogEntry.objects.filter(object_repr__contains="alice@sandbox.test").count() == 1

    client.post(reverse("fans:privacy_erase", args=[privacy.sign({"fan": alice.pk})]))
    client.post(privacy.link_for_email("alice@sandbox.test").rstrip("/") + "/erase/")  # her address's sign-up

    names = set(LogEntry.objects.values_list("object_repr", flat=True))
    assert names == {"(erased)", str(campaign)}, "the campaign's own entry is nobody's"


def test_erasing_reduces_the_admin_history_messages_to_what_names_nobody(client, alice, superuser):
    """A history entry's message may name objects (Django's inline changes keep each one's str(), a message an
    admin writes in words may hold anything): after erasure only the kinds of change and the field names stay."""
    from django.contrib.admin.models import CHANGE, LogEntry

    subscription = Subscription.objects.filter(fan=alice).first()
    inline_change = [
        {"changed": {"fields": ["Email"]}},
        {"changed": {"name": "subscription", "object": str(subscription), "fields": ["Status"]}},
        {"deleted": {"name": "consent record", "object": str(subscription.consents.first())}},
    ]
    fan_entry = LogEntry.objects.log_actions(
        superuser.pk, [alice], CHANGE, change_message=inline_change, single_object=True
    )
    words = "Re-sent the release email to Alice <alice@sandbox.test>."
    LogEntry.objects.log_actions(superuser.pk, [subscription], CHANGE, change_message=words, single_object=True)
    campaign = subscription.campaign
    LogEntry.objects.log_actions(
        superuser.pk, [campaign], CHANGE, change_message="Started delivery now.", single_object=True
    )
    assert LogEntry.objects.filter(change_message__contains="Alice").count() == 2

    client.post(reverse("fans:privacy_erase", args=[privacy.sign({"fan": alice.pk})]))

    messages = list(LogEntry.objects.values_list("change_message", flat=True))
    assert not [m for m in messages if "Alice" in m or "alice@" in m], messages
    fan_entry.refresh_from_db()
    assert fan_entry.get_change_message() == (
        "Changed Email. Changed Status for subscription “(erased)”. Deleted consent record “(erased)”."
    )
    assert LogEntry.objects.get(object_id=str(subscription.pk)).change_message == ""
    assert LogEntry.objects.get(object_id=str(campaign.pk)).change_message == "Started delivery now."


def test_the_mark_that_a_link_was_mailed_is_an_hmac_of_the_address_not_a_plain_hash(client, settings):
    """Whoever reads the cache could hash a list of addresses and match a plain sha256 of one."""
    import hashlib

    from django.core.cache import cache

    sign_up(make_campaign(), "inbox@fan.test")
    client.post(reverse("fans:privacy_link"), {"email": "inbox@fan.test"})

    plain = hashlib.sha256(b"inbox@fan.test").hexdigest()
    assert cache.get("fans:privacy-link-sent:" + plain[:32]) is None
    key = privacy_email.sent_key("inbox@fan.test")
    assert cache.get(key) is True and plain[:32] not in key
    settings.SECRET_KEY = "another-" + settings.SECRET_KEY
    assert privacy_email.sent_key("inbox@fan.test") != key, "keyed by SECRET_KEY"
