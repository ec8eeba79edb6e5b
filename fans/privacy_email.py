"""A fresh privacy link by email: a fan whose link expired (an old release-day email's, say) types their
address on the privacy page and gets a new one there. Only the owner of the address receives it, so it proves
what every email's link proves (fans/privacy.py); the page says the same whether we hold anything or not, and
the mail goes only to an address we hold something about (nobody is mailed about what we don't hold).

The task is given the address sealed (fans/vault.py): django-q2 keeps a task's arguments in its tables (queued,
then succeeded or failed) long after the mail is sent, and after the address's data is erased."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.utils.crypto import salted_hmac
from django_q.tasks import async_task

from fans import privacy, release_email, vault
from fans.addresses import lowered
from fans.models import Fan
from fans.signups import RESEND_SECONDS

logger = logging.getLogger(__name__)

SEND_TASK = "fans.privacy_email.send_link"
TASK_AAD = b"fans.privacy_email.send_link:email"
SENT_KEY_SALT = "fans.privacy_email.sent_key"  # the vault's associated data: opens as this task's address only


def request_link(email: str) -> None:
    """Queue the mail of a fresh link to `email` if we hold anything about it (the fan's page never waits on
    the mail server), at most once per RESEND_SECONDS: the form is limited per IP; this limits what reaches one
    inbox, however many connections type the address."""
    email = email.strip().lower()
    if holds_anything(email) and cache.add(sent_key(email), True, RESEND_SECONDS):
        async_task(SEND_TASK, vault.seal_text(email, aad=TASK_AAD))


def sent_key(email: str) -> str:
    """The cache key that a link was mailed to `email` lately: no address kept, and no plain hash of one either
    (whoever reads the cache could hash a list of addresses and find who asked); an HMAC keyed by SECRET_KEY."""
    return "fans:privacy-link-sent:" + salted_hmac(SENT_KEY_SALT, email, algorithm="sha256").hexdigest()[:32]


def holds_anything(email: str) -> bool:
    """Whether the link would show or erase anything: what fans/privacy.py finds for the address (its consent
    records, email sign-ups and release-day emails), or a streaming account carrying it (in any case)."""
    subject = privacy.Subject(email=email)
    found = (privacy.consents(subject), privacy.email_signups(subject), privacy.release_emails(subject))
    return any(query.exists() for query in found) or Fan.objects.filter(email__lower=lowered(email)).exists()


def send_link(sealed_email: str) -> str:
    """The task: mail the address `request_link` sealed a privacy link made now (it works PRIVACY_LINK_MAX_AGE
    from now)."""
    try:
        email = vault.unseal_text(sealed_email, aad=TASK_AAD)
    except vault.VaultError as exc:  # a key retired since, or queued before addresses were sealed: ask again
        logger.warning("Privacy link not sent (%s)", type(exc).__name__)
        return "privacy link: the address did not open"
    context = {
        "privacy_url": release_email.absolute(privacy.link_for_email(email)),
        "days": max(1, settings.PRIVACY_LINK_MAX_AGE // 86_400),
    }
    mail = EmailMessage(
        subject="Your link to what we hold about you",
        body=render_to_string("email/privacy_link.txt", context),
        to=[email],
    )
    try:
        mail.send()
    except release_email.MAIL_SERVER_ERRORS as exc:  # the page told the fan to ask again if nothing comes
        logger.warning("Privacy link not sent (%s)", type(exc).__name__)  # no address in the log
        return "privacy link: mail server failed"
    return "privacy link sent"
