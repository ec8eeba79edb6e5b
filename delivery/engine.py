"""The delivery engine: keeps every fan's pre-save promise exactly once.

A run claims due subscriptions in batches under a lease (a conditional UPDATE, with
`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL), so any number of workers can share a campaign and a worker
killed mid-run only delays its batch until the lease expires. For each batch:

1. refresh every fan's token concurrently, and store rotated refresh tokens before anything else happens
   (the old one may already be dead);
2. perform the library actions concurrently;
3. record each outcome with one conditional write per outcome kind: only the lease holder may record.

Failures are sorted by what they mean: a revoked authorization is final and its token is destroyed; 5xx,
timeouts and connection errors are retried later with exponential backoff and jitter; a 429 pauses every
thread of the run for the time the service asked.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from delivery.models import DeliveryAttempt
from delivery.services import RateLimited, Service, ServiceError, Tokens, get_service
from fans.models import Credential, Subscription
from fans.vault import VaultError
from releases.models import Campaign

logger = logging.getLogger(__name__)

# A run waits in place for retries due within this many seconds; later ones are left to the sweeper.
MAX_INLINE_WAIT_SECONDS = 30.0
RATE_LIMIT_RETRIES = 5


@dataclass
class Outcome:
    subscription: Subscription
    result: str  # one of DeliveryAttempt.Outcome
    call: str
    message: str = ""
    http_status: int | None = None
    retry_at_seconds: float | None = None


@dataclass
class RunReport:
    campaign_id: int
    counts: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def add(self, result: str) -> None:
        self.counts[result] = self.counts.get(result, 0) + 1

    def summary(self) -> str:
        parts = [f"{name} {count}" for name, count in sorted(self.counts.items())] or ["nothing due"]
        return f"campaign {self.campaign_id}: " + ", ".join(parts) + (f" ({self.note})" if self.note else "")


class Pacer:
    """In-process back-off shared by a run's threads: one 429 pauses them all until Retry-After has passed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resume_at = 0.0

    def wait(self) -> None:
        while (delay := self._resume_at - time.monotonic()) > 0:
            time.sleep(delay)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def call(self, fn: Callable, *args):
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            self.wait()
            try:
                return fn(*args)
            except RateLimited as exc:
                if (
                    attempt == RATE_LIMIT_RETRIES
                    or exc.retry_after > settings.DELIVERY_MAX_RETRY_AFTER_SECONDS
                ):
                    raise
                self.pause(exc.retry_after)
        raise AssertionError("unreachable")


def due_now() -> Q:
    """Pending subscriptions whose retry time has come and that no live lease holds."""
    now = timezone.now()
    return (
        Q(status=Subscription.Status.PENDING)
        & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
    )


class Run:
    """One worker's pass over one campaign."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.release = campaign.release
        self.owner = uuid.uuid4()
        self.pacer = Pacer()
        self.local = threading.local()
        self.report = RunReport(campaign.pk)

    def service(self, key: str) -> Service:
        services = self.local.__dict__.setdefault("services", {})
        if key not in services:
            services[key] = get_service(key)
        return services[key]

    # --- claiming --------------------------------------------------------------------------------------
    def due(self):
        return Subscription.objects.filter(due_now(), campaign=self.campaign)

    def claim(self) -> list[Subscription]:
        lease_until = timezone.now() + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
        with transaction.atomic():
            candidates = self.due().order_by("created_at", "pk").select_for_update(skip_locked=True)
            ids = list(candidates.values_list("pk", flat=True)[: settings.DELIVERY_BATCH_SIZE])
            if not ids:
                return []
            # The due conditions are checked again by the UPDATE itself: a row another worker claimed in
            # the meantime is not taken over.
            self.due().filter(pk__in=ids).update(leased_by=self.owner, lease_expires_at=lease_until)
        return list(
            Subscription.objects.filter(pk__in=ids, leased_by=self.owner)
            .select_related("fan", "credential")
            .order_by("created_at", "pk")
        )

    def seconds_until_next_due(self) -> float | None:
        """How long until pending work becomes due (retry time or someone's lease); None if none is left."""
        now = timezone.now()
        pending = Subscription.objects.filter(campaign=self.campaign, status=Subscription.Status.PENDING)
        times = []
        for next_attempt_at, lease_expires_at in pending.values_list("next_attempt_at", "lease_expires_at"):
            times.append(max(t for t in (next_attempt_at, lease_expires_at, now) if t is not None))
        if not times:
            return None
        return max(0.0, (min(times) - now).total_seconds())

    # --- the calls -------------------------------------------------------------------------------------
    def refresh(self, subscription: Subscription) -> Tokens | Outcome:
        try:
            credential = subscription.credential
        except Credential.DoesNotExist:
            return Outcome(
                subscription, DeliveryAttempt.Outcome.REVOKED, "refresh", "No stored authorization."
            )
        service = self.service(subscription.fan.service)
        if not service.can_deliver(self.release):
            return Outcome(
                subscription,
                DeliveryAttempt.Outcome.FAILED,
                "refresh",
                f"The release has no {service.label} identifier to save.",
            )
        try:
            return self.pacer.call(service.refresh, credential.reveal())
        except VaultError:
            return Outcome(
                subscription,
                DeliveryAttempt.Outcome.FAILED,
                "refresh",
                "The stored authorization could not be decrypted (is its encryption key still configured?).",
            )
        except Exception as exc:  # noqa: BLE001 - sorted by classify(); one fan never stops the run
            return self.classify(subscription, "refresh", exc)

    def act(self, subscription: Subscription, access_token: str) -> Outcome:
        service = self.service(subscription.fan.service)
        call = "save"
        try:
            if self.campaign.save_release:
                self.pacer.call(service.save_release, access_token, self.release)
            if self.campaign.follow_artist:
                call = "follow"
                self.pacer.call(service.follow_artist, access_token, self.release)
        except Exception as exc:  # noqa: BLE001
            return self.classify(subscription, call, exc)
        return Outcome(subscription, DeliveryAttempt.Outcome.DELIVERED, call)

    def classify(self, subscription: Subscription, call: str, exc: Exception) -> Outcome:
        if not isinstance(exc, ServiceError):
            logger.exception("Unexpected error delivering subscription %s", subscription.pk)
            exc = ServiceError(f"Unexpected error ({type(exc).__name__}).")
        if exc.revoked:
            result = DeliveryAttempt.Outcome.REVOKED
        elif exc.permanent:
            result = DeliveryAttempt.Outcome.FAILED
        elif subscription.attempts + 1 >= settings.DELIVERY_MAX_ATTEMPTS:
            result = DeliveryAttempt.Outcome.FAILED
            exc.message = f"Gave up after {subscription.attempts + 1} attempts: {exc.message}"
        else:
            result = DeliveryAttempt.Outcome.RETRY
        retry_in = exc.retry_after if exc.retry_after is not None else backoff_seconds(subscription.attempts)
        return Outcome(subscription, result, call, exc.message[:500], exc.status, retry_in)

    # --- one batch -------------------------------------------------------------------------------------
    def run_batch(self, batch: list[Subscription]) -> list[Outcome]:
        with ThreadPoolExecutor(max_workers=settings.DELIVERY_THREADS) as pool:
            refreshed = list(pool.map(self.refresh, batch))
            self.store_rotated_tokens(batch, refreshed)
            outcomes: list[Outcome | None] = [r if isinstance(r, Outcome) else None for r in refreshed]
            to_act = [
                (i, sub, r.access_token)
                for i, (sub, r) in enumerate(zip(batch, refreshed, strict=True))
                if outcomes[i] is None
            ]
            for (i, _, _), outcome in zip(
                to_act, pool.map(lambda item: self.act(item[1], item[2]), to_act), strict=True
            ):
                outcomes[i] = outcome
        return outcomes  # type: ignore[return-value]

    def store_rotated_tokens(self, batch: list[Subscription], refreshed: list[Tokens | Outcome]) -> None:
        rotated = []
        for subscription, result in zip(batch, refreshed, strict=True):
            if isinstance(result, Tokens) and result.refresh_token:
                credential = subscription.credential
                credential.store(result.refresh_token)
                credential.updated_at = timezone.now()
                rotated.append(credential)
        if rotated:
            Credential.objects.bulk_update(rotated, ["kek_id", "wrapped_key", "ciphertext", "updated_at"])

    def record(self, outcomes: list[Outcome]) -> None:
        now = timezone.now()
        mine = Subscription.objects.filter(leased_by=self.owner, status=Subscription.Status.PENDING)
        released = {"leased_by": None, "lease_expires_at": None, "attempts": F("attempts") + 1}
        with transaction.atomic():
            delivered = [o.subscription.pk for o in outcomes if o.result == DeliveryAttempt.Outcome.DELIVERED]
            mine.filter(pk__in=delivered).update(
                status=Subscription.Status.DELIVERED,
                delivered_at=now,
                last_error="",
                next_attempt_at=None,
                **released,
            )
            revoked = [o.subscription.pk for o in outcomes if o.result == DeliveryAttempt.Outcome.REVOKED]
            for o in outcomes:
                if o.result == DeliveryAttempt.Outcome.DELIVERED:
                    continue
                fields = {"last_error": o.message, **released}
                if o.result == DeliveryAttempt.Outcome.RETRY:
                    fields["next_attempt_at"] = now + timedelta(seconds=o.retry_at_seconds or 0)
                else:
                    fields["status"] = o.result  # failed or revoked: the Subscription.Status of the same name
                mine.filter(pk=o.subscription.pk).update(**fields)
            Credential.objects.filter(subscription_id__in=revoked, subscription__leased_by=None).delete()
            DeliveryAttempt.objects.bulk_create(
                DeliveryAttempt(
                    subscription_id=o.subscription.pk,
                    at=now,
                    call=o.call,
                    outcome=o.result,
                    http_status=o.http_status,
                    message=o.message,
                )
                for o in outcomes
            )
        for o in outcomes:
            self.report.add(o.result)

    # --- the whole run ---------------------------------------------------------------------------------
    def run(self) -> RunReport:
        while True:
            batch = self.claim()
            if batch:
                self.record(self.run_batch(batch))
                continue
            wait = self.seconds_until_next_due()
            if wait is None or wait > MAX_INLINE_WAIT_SECONDS:
                break
            time.sleep(max(wait, 0.05))
        if not Subscription.objects.filter(
            campaign=self.campaign, status=Subscription.Status.PENDING
        ).exists():
            Campaign.objects.filter(pk=self.campaign.pk, status=Campaign.Status.DELIVERING).update(
                status=Campaign.Status.DONE
            )
        return self.report


def backoff_seconds(attempts_so_far: int) -> float:
    """Exponential backoff with full jitter: base·2ⁿ, then a random share of it (at least the base)."""
    base = settings.DELIVERY_RETRY_BASE_SECONDS
    ceiling = base * (2**attempts_so_far)
    return base + random.uniform(0, ceiling)  # noqa: S311 - jitter, not security


def deliver_campaign(campaign_id: int) -> RunReport:
    campaign = Campaign.objects.select_related("release__artist").filter(pk=campaign_id).first()
    if campaign is None:
        return RunReport(campaign_id, note="the campaign no longer exists")
    if campaign.status == Campaign.Status.DRAFT:
        return RunReport(campaign_id, note="the campaign is a draft")
    Campaign.objects.filter(pk=campaign_id, status__in=[Campaign.Status.LIVE, Campaign.Status.DONE]).update(
        status=Campaign.Status.DELIVERING
    )
    campaign.status = Campaign.Status.DELIVERING
    report = Run(campaign).run()
    logger.info("Delivery run: %s", report.summary())
    return report


def resume_deliveries() -> str:
    """Queue a run for every delivering campaign with due work that no live lease holds."""
    due = Subscription.objects.filter(due_now(), campaign__status=Campaign.Status.DELIVERING)
    campaign_ids = sorted(set(due.values_list("campaign_id", flat=True).distinct()))
    for campaign_id in campaign_ids:
        async_task("delivery.tasks.deliver_campaign", campaign_id)
    return f"resumed {len(campaign_ids)} campaign(s)"
