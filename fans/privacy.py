"""Fan privacy self-service: see what we hold, download it (GDPR access), revoke one campaign, erase
everything (GDPR erasure).

A fan reaches these pages through a signed link (django.core.signing, salted, with a maximum age): the
thank-you page makes one for the fan who just authorized, the revoke pages for the fan whose one-click token
was used, and every email carries one for its address (`link_for_fan`, `link_for_email`; the release-day
email: fans/release_email.py). The link names the subject (a Fan or an email address) and proves nothing
else: it is only shown to whoever proved they are that subject (signed in to the account, or received mail at
the address).

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
funnel events from subscriptions: anonymous counts remain. Erasing by an email address cancels the pre-saves
its consents were given for (their stored tokens destroyed) and removes the address from fan records, instead
of deleting the streaming account's Fan, which the address does not prove control of.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from fans import links, revocation
from fans.errors import BadLink, NotFound
from fans.models import ConsentRecord, EmailSignup, Fan, FunnelEvent, ReleaseEmail, Subscription

SALT = "fans.privacy"


@dataclass(frozen=True)
class Subject:
    """Whom a privacy link is about: a fan (one streaming account) or an email address."""

    fan: Fan | None = None
    email: str = ""  # an address subject's (a link mailed to it); never a fan's own, unverified address


def sign(payload: dict) -> str:
    return signing.dumps(payload, salt=SALT, compress=True)


def link_for_fan(fan: Fan) -> str:
    return reverse("fans:privacy", args=[sign({"fan": fan.pk})])


def link_for_email(email: str) -> str:
    """For emails sent to `email`: only its owner receives it."""
    return reverse("fans:privacy", args=[sign({"email": email.lower()})])


def subject_from(token: str) -> Subject:
    """The subject a link names; an expired link is a 410, a forged or damaged one a 400, a gone one a 404."""
    payload = links.load(
        token,
        salt=SALT,
        max_age=settings.PRIVACY_LINK_MAX_AGE,
        expired="For your safety these links work for a limited time. Use the link in your latest email, "
        "the cancel link from your thank-you page, or ask for a fresh link by email on our privacy page.",
    )
    if isinstance(payload.get("fan"), int):
        fan = Fan.objects.filter(pk=payload["fan"]).first()
        if fan is None:
            raise NotFound("We hold nothing about you any more: your data was erased.", title="Nothing held")
        return Subject(fan=fan)
    if isinstance(payload.get("email"), str) and payload["email"]:
        return Subject(email=payload["email"])
    raise BadLink(links.DAMAGED)


def subscriptions(subject: Subject):
    if subject.fan is not None:
        found = subject.fan.subscriptions.all()
    elif subject.email:
        found = Subscription.objects.filter(
            pk__in=ConsentRecord.objects.filter(email__iexact=subject.email).values("subscription_id")
        )
    else:
        return Subscription.objects.none()
    return found.select_related("campaign__release__artist").order_by("created_at")


def consents(subject: Subject):
    if subject.fan is not None:
        found = ConsentRecord.objects.filter(service=subject.fan.service, service_user_id=subject.fan.service_user_id)
    elif subject.email:
        found = ConsentRecord.objects.filter(email__iexact=subject.email)
    else:
        return ConsentRecord.objects.none()
    return found.select_related("campaign__release")


def email_signups(subject: Subject):
    """An address subject's email sign-ups (a fan subject has none: see the module's docstring)."""
    if not subject.email:
        return EmailSignup.objects.none()
    return EmailSignup.objects.filter(email__iexact=subject.email).select_related("campaign__release")


def release_emails(subject: Subject):
    """The release-day emails sent for the subject's consents, and to an address subject's address (with their
    opens and clicks)."""
    if subject.fan is None and not subject.email:
        return ReleaseEmail.objects.none()
    found = Q(consent__in=consents(subject).values("pk"))
    if subject.email:
        found |= Q(email__iexact=subject.email)
    return ReleaseEmail.objects.filter(found).select_related("campaign")


def export(subject: Subject) -> dict:
    """Everything we hold about `subject`, as JSON-ready data. Tokens are named, never revealed."""
    fan = subject.fan
    subs = list(subscriptions(subject))
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
                "delivered_at": s.delivered_at.isoformat() if s.delivered_at else None,
                "stored_permission": "an encrypted token we cannot show" if _has_credential(s) else None,
            }
            for s in subs
        ],
        "consents": [
            {
                "campaign": c.campaign.slug,
                "service": c.service,
                "scopes": c.scopes,
                "wording_version": c.wording_version,
                "email_opt_in": c.email_opt_in,
                "email": c.email,
                "ip_address": c.ip_address,
                "user_agent": c.user_agent,
                "created_at": c.created_at.isoformat(),
                "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
            }
            for c in consents(subject)
        ],
        "email_signups": [
            {
                "campaign": e.campaign.slug,
                "email": e.email,
                "country": e.country,
                "wording_version": e.wording_version,
                "created_at": e.created_at.isoformat(),
                "confirmed_at": e.confirmed_at.isoformat() if e.confirmed_at else None,
                "unsubscribed_at": e.unsubscribed_at.isoformat() if e.unsubscribed_at else None,
            }
            for e in email_signups(subject)
        ],
        "release_emails": [
            {
                "campaign": e.campaign.slug,
                "email": e.email,
                "sent_at": e.sent_at.isoformat() if e.sent_at else None,
                "opened_at": e.opened_at.isoformat() if e.opened_at else None,
                "clicked_at": e.clicked_at.isoformat() if e.clicked_at else None,
                "clicks": e.clicks,
                "unsubscribed_at": e.unsubscribed_at.isoformat() if e.unsubscribed_at else None,
            }
            for e in release_emails(subject)
        ],
        "funnel_events_linked": FunnelEvent.objects.filter(subscription__in=[s.pk for s in subs]).count(),
    }


def _has_credential(subscription: Subscription) -> bool:
    try:
        return subscription.credential is not None
    except Subscription.credential.RelatedObjectDoesNotExist:
        return False


def revoke_one(subject: Subject, subscription_id: int) -> Subscription:
    """Revoke the subject's own subscription `subscription_id` (someone else's is a 404)."""
    subscription = subscriptions(subject).filter(pk=subscription_id).first()
    if subscription is None:
        raise NotFound("That pre-save isn't yours or no longer exists.")
    revocation.revoke_subscription(subscription.pk)
    subscription.refresh_from_db()
    return subscription


def erase(subject: Subject) -> dict[str, int]:
    """Erase everything about `subject`; returns what was erased, by kind. Anonymous counts stay."""
    with transaction.atomic():
        # Locked first: a delivery run recording one of them (it locks them too) is waited for, so that what is
        # deleted below includes the delivery attempts it writes, instead of the erasure failing on them.
        subs = list(subscriptions(subject).select_for_update(of=("self",)).values_list("pk", flat=True))
        unlinked = FunnelEvent.objects.filter(subscription__in=subs).update(subscription=None)
        mailed, _ = release_emails(subject).delete()  # before the consents that find them are blanked
        if subject.fan is None and subject.email:
            for pk in subs:  # the save stops, the stored token goes; the Fan row is the account's, not the address's
                revocation.revoke_subscription(pk)
            Fan.objects.filter(email__iexact=subject.email).update(email="")
        consents(subject).filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        blanked = consents(subject).update(
            subscription=None,
            service_user_id="",
            display_name="",
            email="",
            ip_address=None,
            user_agent="",
        )
        signups, _ = email_signups(subject).delete()
        fans = 0
        if subject.fan is not None:
            fans, _ = Fan.objects.filter(pk=subject.fan.pk).delete()  # cascades: subscriptions, credentials
    return {
        "subscriptions": len(subs),
        "consents": blanked,
        "email_signups": signups,
        "release_emails": mailed,
        "funnel_events_unlinked": unlinked,
        "fans": fans,
    }
