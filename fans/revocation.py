"""A fan takes back a pre-save with the one-click token from the thank-you page or an email.

Revoking withdraws every consent given for that subscription (the fan's email opt-in with them), stops the
release-day save and destroys the stored token. A pre-save release day has done is left as it is, as the privacy
page leaves it (fans/privacy.py `revoke_one`): there is nothing left to cancel, a save can't be undone from here
(the pages say how to undo it in the service), and withdrawing its consents would only drop, unasked, the email
the fan asked for (its own "Stop the email" does that). Doing it twice is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from fans.errors import NotFound
from fans.models import ConsentRecord, Credential, Fan, Subscription, hash_token

ACTIVE = (Subscription.Status.PENDING, Subscription.Status.FAILED)  # release day has something to do or retry


@dataclass(frozen=True)
class Revocation:
    consent: ConsentRecord
    already_revoked: bool  # nothing changed: it had been revoked before
    delivered: bool  # nothing changed: release day had done it, there was nothing left to cancel
    withdrawn: bool = False  # nothing changed: the permission was withdrawn in the service, nothing left to cancel
    failed: bool = False  # it couldn't be done: cancelling it withdrew only its permission and consents

    @property
    def campaign(self):
        return self.consent.campaign

    @property
    def cancelled(self) -> bool:
        return not (self.already_revoked or self.delivered or self.withdrawn)


LEADS_NOWHERE = (
    "This link doesn't match any pre-save. Check it was copied whole; if you've already cancelled, there's nothing "
    "more to do."
)


def find_consent(token: str) -> ConsentRecord:
    """The consent record `token` revokes, or a 404. One it finds has its pre-save: erasure, the only way a consent
    loses it, gives the consent a hash no token has in the same transaction."""
    consent = (
        ConsentRecord.objects.select_related("campaign__release__artist", "subscription__fan")
        .filter(revoke_token_hash=hash_token(token))
        .first()
    )
    if consent is None:
        raise NotFound(LEADS_NOWHERE)
    return consent


def is_delivered(consent: ConsentRecord) -> bool:
    return consent.subscription.status == Subscription.Status.DELIVERED


def withdrawn_in_service(consent: ConsentRecord) -> bool:
    """Whether the consent's pre-save was ended in the service, not cancelled by the fan: release day (or Deliver
    now) found the permission withdrawn in the fan's account and revoked the pre-save, leaving its consents as they
    were (the fan's cancel stamps `revoked_at` on every one of them). There is nothing left to cancel."""
    return consent.subscription.status == Subscription.Status.REVOKED and consent.revoked_at is None


def subscription_withdrawn_in_service(subscription: Subscription) -> bool:
    """`withdrawn_in_service` for a whole pre-save (the privacy page's): revoked by release day (or Deliver now),
    which found the permission withdrawn in the fan's account and left its consents as they were, where the fan's
    cancel (the revoke link, the privacy page) stamps `revoked_at` on every one of them."""
    if subscription.status != Subscription.Status.REVOKED:
        return False
    return subscription.consents.filter(revoked_at__isnull=True).exists()


def holds_permission(subscription: Subscription) -> bool:
    """Whether we still keep the token the fan's permission gave us. A pre-save that couldn't be done keeps it only
    while Retry failed may take it back (the engine drops it when it fails for good), and fans.retention drops it
    RETENTION_SETTLED_TOKEN_DAYS after: cancelling then withdraws only the consents."""
    return Credential.objects.filter(subscription=subscription).exists()


def presaved_again(consent: ConsentRecord) -> ConsentRecord | None:
    """The consent of the pre-save the fan made again after cancelling the one `consent` was given for (the same
    subscription, waiting for release day again, or failed on it), or None. That pre-save is not the one the
    consent's link cancelled: an old link neither cancels it nor may call it cancelled."""
    subscription = consent.subscription
    if consent.revoked_at is None or subscription.status not in ACTIVE:
        return None
    return subscription.consents.filter(revoked_at__isnull=True).order_by("-created_at").first()


def revoke(token: str) -> Revocation:
    """Revoke the consent named by `token` and its subscription; destroy the credential. Idempotent. A pre-save
    release day has done, or found withdrawn in the service, is left as it is (checked under the lock: release
    day may have come since the fan was asked); one erased meanwhile is not found, as its link is after."""
    found = find_consent(token)
    with transaction.atomic():
        # Still the token's: an erasure committed while we waited for the lock made it lead nowhere.
        still = ConsentRecord.objects.select_for_update().filter(revoke_token_hash=found.revoke_token_hash)
        consent = still.filter(pk=found.pk).first()
        if consent is None:
            raise NotFound(LEADS_NOWHERE)
        consent.campaign = found.campaign
        subscription = Subscription.objects.select_for_update().get(pk=consent.subscription_id)
        consent.subscription = subscription
        if subscription.status == Subscription.Status.DELIVERED:
            return Revocation(consent, already_revoked=consent.revoked_at is not None, delivered=True)
        if withdrawn_in_service(consent):  # its consents stay as they were: the email the fan asked for among them
            return Revocation(consent, already_revoked=False, delivered=False, withdrawn=True)
        if consent.revoked_at is not None:
            return Revocation(consent, already_revoked=True, delivered=False)
        failed = subscription.status == Subscription.Status.FAILED
        consent.revoked_at = timezone.now()
        consent.save(update_fields=["revoked_at"])
        _withdraw(subscription, consent.revoked_at)
    return Revocation(consent, already_revoked=False, delivered=False, failed=failed)


def revoke_subscription(subscription_id: int) -> bool:
    """Revoke one subscription and every consent given for it (the privacy page's per-campaign button).
    False when it was already revoked: by the fan, or in the service (its consents, the email the fan asked for
    among them, stay as they were: there was nothing left to cancel). Idempotent."""
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
        if subscription.status == Subscription.Status.REVOKED:
            return False
        _withdraw(subscription, timezone.now())
    return True


def _withdraw(subscription: Subscription, now) -> None:
    """Every consent for this subscription is withdrawn with it (a fan who pre-saved twice has two); the
    release-day save is stopped unless it already happened; the stored token is destroyed."""
    ConsentRecord.objects.filter(subscription=subscription, revoked_at__isnull=True).update(revoked_at=now)
    if subscription.status != Subscription.Status.DELIVERED:
        subscription.status = Subscription.Status.REVOKED
        subscription.next_attempt_at = None
        subscription.save(update_fields=["status", "next_attempt_at", "updated_at"])
    Credential.objects.filter(subscription=subscription).delete()
    forget_unshared_emails(Fan.objects.filter(pk=subscription.fan_id))


def stop_sharing_email(consents: QuerySet[ConsentRecord]) -> None:
    """`consents` share their fan's address no more (an unsubscribe, or the fan's later answer without the email
    box); an address that no consent shares any more is forgotten."""
    fan_ids = list(consents.exclude(subscription=None).values_list("subscription__fan_id", flat=True))
    consents.update(email_opt_in=False)
    forget_unshared_emails(Fan.objects.filter(pk__in=fan_ids))


def forget_unshared_emails(fans: QuerySet[Fan]) -> None:
    """A fan's address is kept only while one of their consents still shares it (opted in, not withdrawn): once
    none does (revoked, unsubscribed), nobody may look the fan up by it, nor is it mailed or exported."""
    sharing = ConsentRecord.objects.sharing_email().filter(subscription__fan=OuterRef("pk"))
    fans.exclude(email="").exclude(Exists(sharing)).update(email="")
