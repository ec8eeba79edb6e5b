"""Fan privacy self-service: see what we hold, download it (GDPR access), cancel a pre-save release day has not
done yet or stop its email, erase everything (GDPR erasure).

A fan reaches these pages through a link that works PRIVACY_LINK_MAX_AGE: the thank-you page makes one for
the fan who just authorized, the revoke pages for the fan whose one-click token was used, and every email
carries one for its address (`link_for_fan`, `link_for_email`; the release-day email: fans/release_email.py).
The link names the subject (a Fan or an email address) and proves nothing else: it is only shown to whoever
proved they are that subject (signed in to the account, or received mail at the address). A fan's link is
signed (django.core.signing, salted); an address's is sealed by the vault, so that the address can't be read
from the URL (URLs get logged: proxies, browser history, mail scanners).

What a subject covers: a fan, its subscriptions, the consent records of its account and the release-day
emails sent for those consents; an email address, its email sign-ups, the consent records that carry that
address, the pre-saves those consents were given for and the release-day emails sent to it. A fan's link does
not cover what is filed under the address its streaming service reports (the fan's `email`): services do not
verify that address, so signing in to an account proves nothing about it, and anyone could open an account in
someone else's name to read or erase that person's sign-ups. What is filed under an address is reached by a
link mailed to it (the privacy page's form, fans/privacy_email.py).

Erasure deletes the Fan (and with it subscriptions and sealed tokens), blanks the personal fields of the
consent records (keeping that a consent of this wording was given and when, without who), deletes the
release-day emails (address, opens, clicks) the subject covers and an address's email sign-ups, and unlinks
funnel events from subscriptions: anonymous counts remain. Nothing left may lead back to the subject: the
consent records keep only the day (their time to the millisecond matched the authorization's funnel event),
their revoke links answer as links that never worked, and the funnel events of the same browser that day lose
the visitor hash that tied them together. Erasing by an email address cancels the pre-saves its consents were
given for (their stored tokens destroyed) and removes the address from fan records, instead of deleting the
streaming account's Fan, which the address does not prove control of.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Min, Q
from django.db.models.functions import TruncDay
from django.urls import reverse
from django.utils import timezone

from delivery.services import SERVICES
from fans import admin_history, links, release_email, revocation, vault
from fans import consent as consent_text
from fans.addresses import lowered
from fans.errors import BadLink, LinkExpired, NotFound
from fans.models import ConsentRecord, Credential, EmailSignup, Fan, FunnelEvent, ReleaseEmail, Subscription
from releases import markets

SALT = "fans.privacy"
EMAIL_LINK_AAD = b"fans.privacy:email-link"  # the vault's associated data: opens as an address link only
EXPIRED = (
    "For your safety these links work for a limited time. Use the link in your latest email, the cancel link "
    "from your thank-you page, or ask for a fresh link by email on our privacy page."
)

ERASED = (
    "Everything we held about the account this link was for has been erased, so there's nothing left to show, "
    "download or cancel. If you pre-save again, you'll get a new link."
)


@dataclass(frozen=True)
class Subject:
    """Whom a privacy link is about: a fan (one streaming account) or an email address."""

    fan: Fan | None = None
    email: str = ""  # an address subject's (a link mailed to it); never a fan's own, unverified address


def sign(payload: dict) -> str:
    return signing.dumps(payload, salt=SALT, compress=True)


def token_for_fan(fan: Fan) -> str:
    """The token of `fan`'s privacy link: its pages' addresses (the page, "Stop the email", …) all carry it."""
    return sign({"fan": fan.pk})


def link_for_fan(fan: Fan) -> str:
    return reverse("fans:privacy", args=[token_for_fan(fan)])


def link_for_email(email: str) -> str:
    """For emails sent to `email`: only its owner receives it. The address and the time the link was made are
    sealed (vault.seal_text: the URL-safe characters of a path, no ":"), not only signed."""
    sealed = vault.seal_text(f"{int(time.time())} {email.lower()}", aad=EMAIL_LINK_AAD)
    return reverse("fans:privacy", args=[sealed])


def subject_from(token: str) -> Subject:
    """The subject a link names; an expired link is a 410, a forged or damaged one a 400, a gone one a 404."""
    if ":" not in token:  # a sealed address link: a signed one always has ":" (django.core.signing)
        return Subject(email=_address_in(token))
    payload = links.load(token, salt=SALT, max_age=settings.PRIVACY_LINK_MAX_AGE, expired=EXPIRED)
    if isinstance(payload.get("fan"), int):
        fan = Fan.objects.filter(pk=payload["fan"]).first()
        if fan is None:
            raise NotFound(ERASED, title="This link is no longer valid")
        return Subject(fan=fan)
    if isinstance(payload.get("email"), str) and payload["email"]:  # mailed before address links were sealed
        return Subject(email=payload["email"])
    raise BadLink(links.DAMAGED)


def _address_in(token: str) -> str:
    try:
        made, _, email = vault.unseal_text(token[:2000], aad=EMAIL_LINK_AAD).partition(" ")
    except vault.MissingKey:  # made with a key-encryption key retired since: older than the key's removal
        raise LinkExpired(EXPIRED) from None
    except vault.VaultError:
        raise BadLink(links.DAMAGED) from None
    if time.time() - int(made) > settings.PRIVACY_LINK_MAX_AGE:
        raise LinkExpired(EXPIRED)
    return email


def subscriptions(subject: Subject):
    if subject.fan is not None:
        found = subject.fan.subscriptions.all()
    elif subject.email:
        found = Subscription.objects.filter(
            pk__in=ConsentRecord.objects.filter(email__lower=lowered(subject.email)).values("subscription_id")
        )
    else:
        return Subscription.objects.none()
    return found.select_related("campaign__release__artist").order_by("created_at")


def consents(subject: Subject):
    if subject.fan is not None:
        found = ConsentRecord.objects.filter(service=subject.fan.service, service_user_id=subject.fan.service_user_id)
    elif subject.email:
        found = ConsentRecord.objects.filter(email__lower=lowered(subject.email))
    else:
        return ConsentRecord.objects.none()
    return found.select_related("campaign__release__artist")


def consent_words(consent: ConsentRecord) -> list[str]:
    """What the fan agreed to, in the words the campaign page showed beside the button: what release day does
    and what else the permission allows (the email box's words among them when it was ticked). Told from the
    campaign and the scopes the consent recorded; its version label is ours, not the fan's."""
    service_class = SERVICES.get(consent.service)
    if service_class is None:
        return []
    service = service_class()
    identity = [service.identity_words] if service.identity_words else []
    return identity + service.action_descriptions(consent.campaign) + service.scope_descriptions(consent.scopes)


@dataclass(frozen=True)
class StoppedEmail:
    """The words of `consent_words` that let us email the fan (what ticking the email box added), once the
    consent shares the fan's address no more though it was not withdrawn (which says so itself): `at` when, if
    known. `again` is the fan's later pre-save of the campaign when its answer to the email box replaced this one
    (before any unsubscribe): `asked_again` whether it ticked the box (the email is asked for there now)."""

    words: list[str]
    at: dt.datetime | None = None
    again: ConsentRecord | None = None
    asked_again: bool = False


def stopped_email(consent: ConsentRecord) -> StoppedEmail:
    """How `consent`'s email stopped: the email's unsubscribe link or "Stop the email", or the fan pre-saving the
    campaign again (the latest answer to the email box counts, fans/authorization.py), whichever came first.
    No words while the consent shares the address, or never did, or was withdrawn."""
    service_class = SERVICES.get(consent.service)
    if consent.email_opt_in or not consent.email or consent.revoked_at is not None or service_class is None:
        return StoppedEmail([])
    service = service_class()
    box = consent_text.email_scopes(service, consent.campaign)
    words = service.scope_descriptions([scope for scope in consent.scopes if scope in box])
    if not words:
        return StoppedEmail([])
    stopped = ReleaseEmail.objects.filter(mailed_to(consent), unsubscribed_at__isnull=False)
    unsubscribed_at = stopped.aggregate(at=Min("unsubscribed_at"))["at"]
    again = (
        ConsentRecord.objects.filter(subscription_id=consent.subscription_id, created_at__gt=consent.created_at)
        .order_by("created_at")
        .first()
        if consent.subscription_id
        else None
    )
    if again is None or (unsubscribed_at is not None and unsubscribed_at <= again.created_at):
        return StoppedEmail(words, unsubscribed_at)
    asked_again = any(scope in box for scope in again.scopes)
    return StoppedEmail(words, again.created_at, again=again, asked_again=asked_again)


def mailed_to(consent: ConsentRecord) -> Q:
    """The campaign's release-day email that stands for `consent`: the one planned for it, or the one to its address
    (whatever the case), planned for a sign-up or another pre-save of the address (one email an address)."""
    mailed = Q(consent=consent)
    if consent.email:
        mailed |= Q(campaign_id=consent.campaign_id, email__lower=lowered(consent.email))
    return mailed


def got_no_address(consent: ConsentRecord) -> bool:
    """Whether `consent` holds no address because its service gave none: it was asked (its scopes hold all that
    ticking the email box asks for) and none came, or the service shares none at all (Apple Music: the box asks
    it for nothing)."""
    service_class = SERVICES.get(consent.service)
    if service_class is None or consent.email:
        return False
    box = consent_text.email_scopes(service_class(), consent.campaign)
    return all(scope in consent.scopes for scope in box)


def email_signups(subject: Subject):
    """An address subject's email sign-ups (a fan subject has none: see the module's docstring)."""
    if not subject.email:
        return EmailSignup.objects.none()
    signups = EmailSignup.objects.filter(email__lower=lowered(subject.email))
    return signups.select_related("campaign__release__artist")


def release_emails(subject: Subject):
    """The release-day emails sent for the subject's consents, and to an address subject's address (with their
    opens and clicks)."""
    if subject.fan is None and not subject.email:
        return ReleaseEmail.objects.none()
    found = Q(consent__in=consents(subject).values("pk"))
    if subject.email:
        found |= Q(email__lower=lowered(subject.email))
    return ReleaseEmail.objects.filter(found).select_related("campaign")


def funnel_events(subscription_ids: list[int]):
    """The funnel events of these pre-saves (their authorizations) and of the same browser that day: the events
    that carry the visitor hash of one of them (the page views, clicks, opt-ins and listening clicks around it),
    but not another pre-save's."""
    visitors = FunnelEvent.objects.filter(subscription__in=subscription_ids).exclude(visitor="").values("visitor")
    return FunnelEvent.objects.filter(Q(subscription__in=subscription_ids) | Q(visitor__in=visitors, subscription=None))


def export(subject: Subject) -> dict:
    """Everything we hold about `subject`, as JSON-ready data. Tokens are named, never revealed; neither are
    hashes (of revoke tokens, of visitors)."""
    fan = subject.fan
    subs = list(subscriptions(subject).prefetch_related("attempts_log"))
    authorized = dict(Credential.objects.filter(subscription__in=subs).values_list("subscription", "authorized_at"))
    events = funnel_events([s.pk for s in subs]).select_related("campaign").order_by("created_at", "pk")
    return {
        "exported_at": timezone.now().isoformat(),
        "fan": {
            "service": fan.service,
            "service_user_id": fan.service_user_id,
            "display_name": fan.display_name,
            "email": fan.email,
            "country": fan.country,
            "created_at": fan.created_at.isoformat(),
        }
        if fan
        else None,
        "subscriptions": [
            {
                "campaign": s.campaign.slug,
                "release": f"{s.campaign.release.artist.name} — {s.campaign.release.title}",
                "status": s.status,
                "market": s.market,
                "created_at": s.created_at.isoformat(),
                "delivered_at": _time(s.delivered_at),
                "stored_permission": "an encrypted token we cannot show" if s.pk in authorized else None,
                "permission_given_at": _time(authorized.get(s.pk)),
                "delivery_tries": s.attempts,
                "library_actions_done": s.library_actions_done(),
                "last_error": s.last_error,
                "delivery_attempts": [
                    {
                        "at": a.at.isoformat(),
                        "call": a.call,
                        "outcome": a.outcome,
                        "http_status": a.http_status,
                        "message": a.message,
                    }
                    for a in s.attempts_log.all()
                ],
            }
            for s in subs
        ],
        "consents": [
            {
                "campaign": c.campaign.slug,
                "service": c.service,
                "scopes": c.scopes,
                "words_agreed_to": consent_words(c),
                "version_of_those_words": c.wording_version,
                "email_opt_in": c.email_opt_in,
                "email": c.email,
                "ip_address": c.ip_address,
                "user_agent": c.user_agent,
                "created_at": c.created_at.isoformat(),
                "revoked_at": _time(c.revoked_at),
            }
            for c in consents(subject)
        ],
        "email_signups": [
            {
                "campaign": e.campaign.slug,
                "email": e.email,
                "country": e.country,
                "words_agreed_to": consent_text.email_signup_words(e.campaign.release),
                "version_of_those_words": e.wording_version,
                "created_at": e.created_at.isoformat(),
                "confirmed_at": _time(e.confirmed_at),
                "unsubscribed_at": _time(e.unsubscribed_at),
            }
            for e in email_signups(subject)
        ],
        "release_emails": [
            {
                "campaign": e.campaign.slug,
                "email": e.email,
                "market": e.market,
                "sent_at": _time(e.sent_at),
                "refused_by_mail_server": e.refusal,
                "opened_at": _time(e.opened_at),
                "clicked_at": _time(e.clicked_at),
                "clicks": e.clicks,
                "unsubscribed_at": _time(e.unsubscribed_at),
            }
            for e in release_emails(subject)
        ],
        "funnel_events": [
            {
                "campaign": e.campaign.slug,
                "kind": e.kind,
                "at": e.created_at.isoformat(),
                "linked_by": "your pre-save" if e.subscription_id else "the same browser that day",
                "service": e.service,
                "utm_source": e.utm_source,
                "utm_medium": e.utm_medium,
                "utm_campaign": e.utm_campaign,
                "referrer_domain": e.referrer_domain,
                "country": e.country,
                "device": e.device,
                "in_app_browser": e.in_app_browser,
            }
            for e in events
        ],
    }


def _time(value) -> str | None:
    return value.isoformat() if value else None


NOT_THEIRS = "That pre-save isn't yours or no longer exists."


def revoke_one(subject: Subject, subscription_id: int) -> tuple[Subscription, bool, bool]:
    """Cancel the subject's own subscription `subscription_id` (someone else's is a 404); returns it, whether
    this cancelled it, and whether it had failed (cancelling withdrew only its permission and consents). One done
    on release day has nothing left to cancel and is left as it is: its consents stay (the fan's email among
    them; `stop_email` stops that alone). Both are read under the lock the cancel takes: release day, or staff's
    Retry failed, may have changed it since the fan was asked. One erased meanwhile is not the subject's any more,
    as the page says once erased."""
    subscription = own_subscription(subject, subscription_id)
    with transaction.atomic():
        status = lock_own(subject, subscription.pk)
        cancelled = status != Subscription.Status.DELIVERED and revocation.revoke_subscription(subscription.pk)
    subscription.refresh_from_db()
    return subscription, cancelled, cancelled and status == Subscription.Status.FAILED


def lock_own(subject: Subject, subscription_id: int) -> str:
    """Lock the subject's subscription `subscription_id` (in the caller's transaction) and return its status. Still
    the subject's, read after the lock, or a 404 as the page answers once erased: an erasure (which locks the
    subject's pre-saves first) committed while we waited deleted the pre-save with its fan, or left it (erased by
    address) no longer the address's."""
    locked = Subscription.objects.select_for_update().filter(pk=subscription_id)
    status = locked.values_list("status", flat=True).first()
    if status is None or not subscriptions(subject).filter(pk=subscription_id).exists():
        raise NotFound(NOT_THEIRS)
    return status


def own_subscription(subject: Subject, subscription_id: int) -> Subscription:
    subscription = subscriptions(subject).select_related("fan").filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound(NOT_THEIRS)
    return subscription


def email_to_come(subscription: Subscription) -> bool:
    """Whether the release-day email this pre-save asked for is still to be sent: a consent of it shares the
    fan's address, no email to that address for the campaign was sent, refused or unsubscribed, and a run of the
    email may still come to send it (release_email.runs_to_come: after the last, nothing is sent)."""
    address = subscription.fan.email
    if not address or not subscription.consents.sharing_email().exists():
        return False
    if email_settled(subscription.campaign_id, address):
        return False
    return release_email.runs_to_come(subscription.campaign)


def email_settled(campaign_id: int, address: str) -> bool:
    """Whether the campaign's one release-day email to `address` is settled: planned, and sent, refused or
    unsubscribed (nothing more will go to it)."""
    planned = ReleaseEmail.objects.filter(campaign_id=campaign_id, email__lower=lowered(address))
    return planned.exists() and not planned.unsent().exists()


def email_asked_at(subscription: Subscription) -> set[str]:
    """The addresses (lower-cased) this pre-save asked the release-day email for: its consents' with the email box
    ticked, and the fan's own while one of them did. Read from the consents too: once cancelled, the fan's own may
    be forgotten."""
    opted_in = subscription.consents.filter(email_opt_in=True)
    addresses = {address.lower() for address in opted_in.values_list("email", flat=True) if address}
    if subscription.fan.email and opted_in.exists():
        addresses.add(subscription.fan.email.lower())
    return addresses


def email_sent_at(subscription: Subscription) -> dt.datetime | None:
    """When the campaign's release-day email this pre-save asked for went (one email an address, whichever
    pre-save or sign-up asked), None while none went: no more will come to it. The email planned for one of its
    consents (to the address the fan's service reported then), to an address it asks the email for
    (`email_asked_at`), or one unsubscribed from since that went to one of its consents' addresses: the unsubscribe
    (the email's own link, or "Stop the email", also of the email to an address the service reported since) leaves
    the consents asking for it no more and the fan's address forgotten, yet the email the fan asked for went. The
    one answer for every page that tells it."""
    consents = subscription.consents.all()
    went_to = Q(consent__in=consents)
    for address in set(consents.exclude(email="").values_list("email", flat=True)):
        went_to |= Q(email__lower=lowered(address), unsubscribed_at__isnull=False)
    for address in email_asked_at(subscription):
        went_to |= Q(email__lower=lowered(address))
    sent = ReleaseEmail.objects.filter(went_to, campaign_id=subscription.campaign_id, sent_at__isnull=False)
    return sent.aggregate(at=Min("sent_at"))["at"]


def email_asked_elsewhere(subscription: Subscription) -> list[str]:
    """What else asks for the campaign's release-day email at an address this pre-save asked it for (one email an
    address: fans/release_email.py), while that email is still to come (not sent, refused or unsubscribed, and a
    run may come): the same address's pre-saves of it on another account ("your pre-save on Deezer") and its
    email sign-up ("your email sign-up"). Cancelling this pre-save doesn't stop that email."""
    addresses = email_asked_at(subscription)
    campaign = subscription.campaign
    if not addresses or not release_email.runs_to_come(campaign):
        return []
    services, signed_up = set(), False
    for address in addresses:
        if email_settled(campaign.pk, address):
            continue
        others = ConsentRecord.objects.sharing_email().filter(
            campaign=campaign, subscription__fan__email__lower=lowered(address)
        )
        services |= set(others.exclude(subscription=subscription).values_list("service", flat=True))
        signed_up |= EmailSignup.objects.receiving().filter(campaign=campaign, email__lower=lowered(address)).exists()
    labels = sorted(SERVICES[service].label for service in services if service in SERVICES)
    return [f"your pre-save on {label}" for label in labels] + (["your email sign-up"] if signed_up else [])


def stop_email(subject: Subject, subscription_id: int) -> tuple[Subscription, list[str]]:
    """No release-day email for this pre-save: recorded as the email's own unsubscribe link records it (the
    campaign's email to the address is marked unsubscribed, made for that if not planned yet, and the consents
    share the address no more). Nothing else of the pre-save changes. Again is harmless. One asked (from a page read
    before) once no email will come to the address (sent, also by a run meanwhile, refused, or no run comes any
    more) is recorded the same way: the fan asked us to stop emailing them, and the address is kept only while a
    consent shares it (`email_sent_at` says when an email went). One asked once nothing shares the address records
    nothing. Returns the pre-save and what else asked for that one email of the address, stopped with it
    (`email_asked_elsewhere`; nothing once none was to come). Read under the pre-save's lock, as the cancel's: one
    erased meanwhile is not the subject's any more, and no email row may be made that holds the address the
    erasure took away."""
    own_subscription(subject, subscription_id)
    with transaction.atomic():
        lock_own(subject, subscription_id)
        subscription = own_subscription(subject, subscription_id)
        address = subscription.fan.email
        sharing = subscription.consents.sharing_email()
        if not address or not sharing.exists():
            return subscription, []
        elsewhere = email_asked_elsewhere(subscription) if email_to_come(subscription) else []
        # Made if not planned yet, also when no run will send it (it records the stop, which the page reads); one
        # planned in any case, also by a run meanwhile, is the address's.
        unplanned = ReleaseEmail(
            campaign_id=subscription.campaign_id,
            email=address,
            consent=sharing.first(),
            market=markets.of_fan(subscription.market, subscription.fan.country),  # as plan_recipients writes it
        )
        ReleaseEmail.objects.bulk_create([unplanned], ignore_conflicts=True)
        # Locked, after a run sending it meanwhile commits (and before one takes it). One sent has nothing left to
        # stop, for this pre-save or anything else asking: its unsubscribe is recorded all the same, as the link
        # used after it came records it (the page says when it went: pages.stopped_email_words).
        planned = ReleaseEmail.objects.select_for_update().get(
            campaign_id=subscription.campaign_id, email__lower=lowered(address)
        )
        if planned.sent_at is not None:
            elsewhere = []
        release_email.unsubscribe(planned)
        # A row planned from a sign-up or another pre-save names none of this pre-save's consents, and unsubscribe
        # finds them by the address: one given with the address the service reported then shares it no more too.
        revocation.stop_sharing_email(sharing)
    return subscription, elsewhere


def erase(subject: Subject) -> dict[str, int]:
    """Erase everything about `subject`; returns what was erased, by kind. Anonymous counts stay."""
    with transaction.atomic():
        # Locked first: a delivery run recording one of them (it locks them too) is waited for, so that what is
        # deleted below includes the delivery attempts it writes, instead of the erasure failing on them.
        subs = list(subscriptions(subject).select_for_update(of=("self",)).values_list("pk", flat=True))
        linked = FunnelEvent.objects.filter(subscription__in=subs)
        visitors = set(linked.exclude(visitor="").values_list("visitor", flat=True))
        untied = FunnelEvent.objects.filter(visitor__in=visitors).update(visitor="")  # everything of that browser
        unlinked = linked.update(subscription=None)
        admin_history.forget(ReleaseEmail, release_emails(subject).values_list("pk", flat=True))
        mailed, _ = release_emails(subject).delete()  # before the consents that find them are blanked
        if subject.fan is None and subject.email:
            for pk in subs:  # the save stops, the stored token goes; the Fan row is the account's, not the address's
                revocation.revoke_subscription(pk)
            Fan.objects.filter(email__lower=lowered(subject.email)).update(email="")
        consents(subject).filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        consent_ids = list(consents(subject).values_list("pk", flat=True))
        blanked = ConsentRecord.objects.filter(pk__in=consent_ids).update(
            subscription=None,
            service_user_id="",
            display_name="",
            email="",
            ip_address=None,
            user_agent="",
            created_at=TruncDay("created_at"),  # the day is enough: the console counts per day, from subscriptions
            revoked_at=TruncDay("revoked_at"),
        )
        # The old revoke link then answers as one that never worked: no hash of a token (64 hex digits) is this.
        unusable = [ConsentRecord(pk=pk, revoke_token_hash=f"erased:{secrets.token_hex(28)}") for pk in consent_ids]
        ConsentRecord.objects.bulk_update(unusable, ["revoke_token_hash"])
        admin_history.forget(EmailSignup, email_signups(subject).values_list("pk", flat=True))
        signups, _ = email_signups(subject).delete()
        admin_history.forget(ConsentRecord, consent_ids)
        admin_history.forget(Subscription, subs)
        fans = 0
        if subject.fan is not None:
            admin_history.forget(Fan, [subject.fan.pk])
            fans, _ = Fan.objects.filter(pk=subject.fan.pk).delete()  # cascades: subscriptions, credentials
    return {
        "subscriptions": len(subs),
        "consents": blanked,
        "email_signups": signups,
        "release_emails": mailed,
        "funnel_events_unlinked": unlinked,
        "funnel_events_untied": untied,
        "fans": fans,
    }
