"""The engine's per-batch writes: one statement for a whole batch of fans, whatever its size.

On PostgreSQL (production) a batch's rows travel as a few arrays (`unnest`): a short statement with a handful
of parameters, where Django's bulk_create or bulk_update would send one parameter per field per row and the
driver would parse a statement as long as the batch. Elsewhere (SQLite, the demo) Django's bulk operations do
the same job.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection

from delivery.models import DeliveryAttempt
from fans.models import Credential


def update_credentials(credentials: list[Credential], now: datetime) -> None:
    """Store re-sealed credentials (kek_id, wrapped_key, ciphertext). An UPDATE, not an upsert: a credential
    deleted meanwhile (the fan revoked) stays deleted."""
    if not credentials:
        return
    if connection.vendor != "postgresql":
        for credential in credentials:
            credential.updated_at = now
        Credential.objects.bulk_update(credentials, ["kek_id", "wrapped_key", "ciphertext", "updated_at"])
        return
    table = connection.ops.quote_name(Credential._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS c SET kek_id = v.kek_id, wrapped_key = v.wrapped_key, "  # noqa: S608 - our table
            "ciphertext = v.ciphertext, updated_at = %s "
            "FROM unnest(%s::bigint[], %s::text[], %s::bytea[], %s::bytea[]) "
            "AS v(subscription_id, kek_id, wrapped_key, ciphertext) WHERE c.subscription_id = v.subscription_id",
            [
                now,
                [credential.subscription_id for credential in credentials],
                [credential.kek_id for credential in credentials],
                [bytes(credential.wrapped_key) for credential in credentials],
                [bytes(credential.ciphertext) for credential in credentials],
            ],
        )


def insert_attempts(attempts: list[DeliveryAttempt]) -> None:
    """Insert delivery attempts that share their time (`at`)."""
    if not attempts:
        return
    if connection.vendor != "postgresql":
        DeliveryAttempt.objects.bulk_create(attempts)
        return
    table = connection.ops.quote_name(DeliveryAttempt._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (subscription_id, at, call, outcome, http_status, message) "  # noqa: S608
            "SELECT v.subscription_id, %s, v.call, v.outcome, v.http_status, v.message "
            "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::integer[], %s::text[]) "
            "AS v(subscription_id, call, outcome, http_status, message)",
            [
                attempts[0].at,
                [attempt.subscription_id for attempt in attempts],
                [attempt.call for attempt in attempts],
                [attempt.outcome for attempt in attempts],
                [attempt.http_status for attempt in attempts],
                [attempt.message for attempt in attempts],
            ],
        )
