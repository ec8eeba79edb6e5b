"""The record of every delivery attempt: what was called for which subscription, and what came of it."""

from django.db import models


class DeliveryAttempt(models.Model):
    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRY = "retry", "Will retry"
        FAILED = "failed", "Failed"
        REVOKED = "revoked", "Revoked"

    # Indexed by attempt_by_subscription, which leads with it. On PostgreSQL the constraint also cascades in the
    # database (migration 0005: attempts committed while Django deletes): a migration that alters this field and
    # recreates the constraint must add ON DELETE CASCADE back.
    subscription = models.ForeignKey(
        "fans.Subscription", on_delete=models.CASCADE, related_name="attempts_log", db_index=False
    )
    at = models.DateTimeField()
    call = models.CharField(max_length=20, help_text="The last call made: refresh, save or follow.")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["subscription", "-at"], name="attempt_by_subscription")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.call} → {self.outcome}"


class RateLimitSlot(models.Model):
    """How many permits were asked for in one slot of a shared rate limit (see delivery/ratelimit.py).

    Only the first `cap` of them were granted; the cap is a function of the slot number, so it is not stored.
    """

    key = models.CharField(max_length=100)
    slot = models.BigIntegerField(help_text="Epoch seconds divided by the slot length.")
    requested = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "slot"], name="ratelimit_slot_unique")]

    def __str__(self) -> str:
        return f"{self.key} slot {self.slot}: {self.requested} requested"


class RateLimitPause(models.Model):
    """Nobody calls the service behind `key` before `until` (set on a 429 with Retry-After)."""

    key = models.CharField(max_length=100, unique=True)
    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.key} paused until {self.until:%H:%M:%S}"
