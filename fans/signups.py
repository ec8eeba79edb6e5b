"""The "email me when it's out" fallback: an email address and an explicit consent, nothing else.

Double opt-in: anyone can type anyone's address, so a sign-up counts only once the address is confirmed.
`sign_up` records it and queues `send_confirmation` (a django-q2 task: the fan's page never waits on the mail
server); the email carries a signed link (`confirm_url`) that opens a page with one button; pressing it
confirms (`confirm`). Link scanners in mailboxes fetch links without pressing buttons, so they confirm nothing.
Until confirmed, a sign-up gets no release email and is in no export or count (EmailSignup.objects.receiving).
A sign-up not confirmed while its link worked is deleted by a daily task (`forget_unconfirmed`).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from fans import admin_history, consent, links, privacy, release_email
from fans.addresses import lowered
from fans.errors import BadLink, CampaignClosed
from fans.models import EmailSignup
from releases import markets
from releases.models import Campaign

logger = logging.getLogger(__name__)

CONFIRM_TASK = "fans.signups.send_confirmation"
RESEND_SECONDS = 300  # one confirmation email per sign-up in this long, however often the address is typed
CONFIRM_SALT = "fans.signups.confirm"


def sign_up(campaign: Campaign, email: str, *, country: str = "") -> EmailSignup:
    """Record (or renew) `email`'s sign-up for `campaign`, with the wording version the fan agreed to, and mail
    a confirmation link unless the address is confirmed already, or was sent one in the last RESEND_SECONDS
    (the sign-up form is limited per IP; this limits what reaches one inbox). An address that had unsubscribed
    must confirm again. A confirmed sign-up is left as it is: whoever types the address again (anyone can)
    must not rewrite what its owner agreed to, and when."""
    if not (campaign.accepts_presaves_in(markets.normalize(country)) and campaign.offer_email_optin):
        raise CampaignClosed(
            "This release is out or its sign-up has ended, so there's nothing to email you about.",
            retry_url=campaign.get_absolute_url(),
        )
    address = normalized(email)
    fields = {"country": country, "wording_version": consent.WORDING_VERSION, "created_at": timezone.now()}
    with transaction.atomic():
        # The address's sign-up whatever its case: one stored as typed, not by this function, is the same one.
        signup, created = EmailSignup.objects.select_for_update().get_or_create(
            campaign=campaign, email__lower=lowered(address), defaults={**fields, "email": address}
        )
        receiving = signup.confirmed_at is not None and signup.unsubscribed_at is None
        if not created and not receiving:  # a confirmed sign-up keeps the record of what its owner confirmed
            if signup.unsubscribed_at is not None:
                signup.confirmed_at = None
            for name, value in {**fields, "unsubscribed_at": None}.items():
                setattr(signup, name, value)
            signup.save()
        if signup.confirmed_at is None and cache.add(f"fans:confirm-sent:{signup.pk}", True, RESEND_SECONDS):
            transaction.on_commit(lambda: async_task(CONFIRM_TASK, signup.pk))
    return signup


def normalized(email: str) -> str:
    """The address as a sign-up stores it, and its page names it: lower-cased."""
    return email.strip().lower()


def confirm_url(signup: EmailSignup) -> str:
    token = signing.dumps({"signup": signup.pk}, salt=CONFIRM_SALT)  # no address in the URL: URLs get logged
    return release_email.absolute(reverse("fans:confirm_email", args=[token]))


def send_confirmation(signup_id: int) -> str:
    """The task: mail the confirmation link (nothing if the sign-up is gone, confirmed or unsubscribed). When
    the mail server fails, a ONCE schedule runs it again (release_email.retry_later)."""
    signup = EmailSignup.objects.select_related("campaign__release__artist").filter(pk=signup_id).first()
    if signup is None or signup.confirmed_at is not None or signup.unsubscribed_at is not None:
        return "nothing to send"
    release = signup.campaign.release
    context = {
        "release": release,
        "artist": release.artist,
        "confirm_url": confirm_url(signup),
        "page_url": release_email.absolute(signup.campaign.get_absolute_url()),
        "privacy_url": release_email.absolute(privacy.link_for_email(signup.email)),
        "days": max(1, settings.EMAIL_CONFIRM_LINK_MAX_AGE // 86_400),
    }
    try:
        mail = EmailMultiAlternatives(
            subject=f"Confirm your email for {release.title} by {release.artist}",
            body=render_to_string("email/confirm_signup.txt", context),
            to=[signup.email],
        )
        mail.attach_alternative(render_to_string("email/confirm_signup.html", context), "text/html")
        mail.send()
    except release_email.MAIL_SERVER_ERRORS as exc:
        retry_at = release_email.retry_later(f"confirm-email-{signup_id}", CONFIRM_TASK, signup_id)
        reason = type(exc).__name__
        logger.warning("Confirmation for sign-up %s not sent (%s); retrying at %s", signup_id, reason, retry_at)
        return f"confirmation for sign-up {signup_id}: mail server failed, retry at {retry_at}"
    return f"confirmation sent for sign-up {signup_id}"


def signup_for(token: str) -> EmailSignup:
    """The sign-up a confirmation link names; an expired link is a 410, a forged or damaged one a 400."""
    payload = links.load(
        token,
        salt=CONFIRM_SALT,
        max_age=settings.EMAIL_CONFIRM_LINK_MAX_AGE,
        expired="For your safety confirmation links work for a limited time. Sign up again on the release's "
        "page for a new one.",
    )
    signup = None
    if isinstance(payload.get("signup"), int):
        signup = EmailSignup.objects.select_related("campaign__release__artist").filter(pk=payload["signup"]).first()
    if signup is None:
        raise BadLink("This sign-up no longer exists: it was erased or never finished. Sign up again.")
    return signup


def forget_unconfirmed() -> str:
    """The daily task: delete the sign-ups whose confirmation link expired unused (a re-sign-up renews
    created_at, and with it the time its new link works)."""
    expired = timezone.now() - dt.timedelta(seconds=settings.EMAIL_CONFIRM_LINK_MAX_AGE)
    unconfirmed = EmailSignup.objects.filter(confirmed_at__isnull=True, created_at__lt=expired)
    admin_history.forget(EmailSignup, unconfirmed.values_list("pk", flat=True))
    deleted, _ = unconfirmed.delete()
    return f"forgot {deleted} unconfirmed email sign-up(s)"


def too_late(signup: EmailSignup) -> bool:
    """Whether the release is out already where the sign-up is: confirming now would promise an email that its
    release day has sent (the fan is sent to the page, which is the listening links by then)."""
    return signup.confirmed_at is None and signup.campaign.is_out_in(markets.normalize(signup.country))


def confirm(signup: EmailSignup) -> None:
    """Confirm the address (again is harmless), unless it is `too_late`; a sign-up that unsubscribed since stays
    unsubscribed."""
    if too_late(signup):
        return
    EmailSignup.objects.filter(pk=signup.pk, confirmed_at__isnull=True, unsubscribed_at__isnull=True).update(
        confirmed_at=timezone.now()
    )
