"""The engine's per-batch writes: one statement for a whole batch of fans, whatever its size.

On PostgreSQL (production) a batch's rows travel as a few arrays (`unnest`): a short statement with a handful
of parameters, where Django's bulk operations or a `pk__in` filter would send one parameter per field per row
and the driver would quote each and parse a statement as long as the batch. The statements go through a cursor
that lets the server bind the parameters, sent and read in PostgreSQL's binary format: sealed tokens travel as
bytes, where Django's cursor (client-side binding, text) escapes every byte going out and parses hex coming
back, row by row (measured: 19 µs a row for a batch of rotated tokens, 2 µs in binary). Elsewhere (SQLite,
the demo) Django's bulk operations do the same job. Rows are plain tuples: a batch makes no model instances.
A claim, or a batch's write, that PostgreSQL rolls back to break a deadlock, or whose connection drops or cannot
be made (a restart, a failover), is made again (`retried_write`): each is harmless to repeat.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import NamedTuple, TypeVar
from uuid import UUID

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, QuerySet

from delivery.models import DeliveryAttempt
from fans.models import Credential, Fan, Subscription
from fans.vault import Sealed

Status = Subscription.Status
T = TypeVar("T")
logger = logging.getLogger(__name__)


class Settled(NamedTuple):
    """What a batch's outcome does to its subscription."""

    subscription_id: int
    status: str  # the Subscription.Status it ends in (pending: it will be tried again)
    message: str  # last_error
    attempted: bool  # counts as an attempt (a fan waiting for the release to come out does not)
    retry_in: float | None  # seconds until the next try, for a fan still pending
    done_calls: str | None  # the library actions done so far; None leaves them as they were
    forget_token: bool = False  # the fan's credential is deleted with it: nothing will use it again


class Attempt(NamedTuple):
    subscription_id: int
    call: str
    outcome: str  # a DeliveryAttempt.Outcome
    http_status: int | None
    message: str


# What a claim returns of each subscription: enough to deliver it, no model instance.
CLAIMED = (
    "pk",
    "attempts",
    "market",
    "done_calls",
    "fan__service",
    "fan__country",
    "credential__kek_id",
    "credential__wrapped_key",
    "credential__ciphertext",
)


def claim(due: QuerySet, limit: int, owner: UUID, lease_until: datetime) -> list[tuple]:
    """Lease up to `limit` of the `due` subscriptions (in its order) to `owner`, skipping rows another run has
    locked, and return them as CLAIMED tuples. On PostgreSQL one statement (`claim_statement`)."""
    with transaction.atomic():
        if connection.vendor != "postgresql":
            ids = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
            # The due conditions are checked again by the UPDATE itself: a row another worker claimed in the
            # meantime is not taken over.
            due.filter(pk__in=ids).update(leased_by=owner, lease_expires_at=lease_until)
            leased = Subscription.objects.filter(pk__in=ids, leased_by=owner).order_by("created_at", "pk")
            return list(leased.values_list(*CLAIMED))
        sql, params = claim_statement(due, limit, owner, lease_until)
    return _execute(sql, params)


def claim_statement(due: QuerySet, limit: int, owner: UUID, lease_until: datetime) -> tuple[str, list]:
    """The PostgreSQL claim: an UPDATE of the rows a `SELECT … FOR UPDATE SKIP LOCKED` picks (the job-queue
    pattern: no row is leased twice), returning each with its fan's service and sealed token. The picked ids
    are gathered first (`ARRAY(…)`, run once) and the UPDATE finds them by primary key: an `IN (…)` join may
    be planned as a scan of the whole table, at every claim. Called inside a transaction (FOR UPDATE)."""
    picked, params = due.select_for_update(skip_locked=True).values("pk")[:limit].query.sql_with_params()
    sql = (
        f"WITH leased AS (UPDATE {_table(Subscription)} AS s SET leased_by = %s, lease_expires_at = %s "  # noqa: S608
        f"WHERE s.id = ANY(ARRAY({picked})) "
        "RETURNING s.id, s.attempts, s.market, s.done_calls, s.fan_id, s.created_at) "
        # The fan's service and country by its key, one lookup per claimed row (a join would hash the whole fans
        # table).
        "SELECT l.id, l.attempts, l.market, l.done_calls, f.service, f.country, "
        f"c.kek_id, c.wrapped_key, c.ciphertext FROM leased AS l "
        f"CROSS JOIN LATERAL (SELECT f.service, f.country FROM {_table(Fan)} AS f WHERE f.id = l.fan_id) AS f "
        f"LEFT JOIN {_table(Credential)} AS c ON c.subscription_id = l.id ORDER BY l.created_at, l.id"
    )
    return sql, [owner, lease_until, *params]


def renew_leases(ids: list[int], owner: UUID, lease_until: datetime) -> None:
    """Extend `owner`'s lease on the subscriptions `ids` that it still holds (pending, leased to it): a batch
    whose calls are still out stays its run's, however long the service keeps it waiting."""
    if not ids:
        return
    if connection.vendor != "postgresql":
        held = Subscription.objects.filter(pk__in=ids, leased_by=owner, status=Status.PENDING)
        held.update(lease_expires_at=lease_until)
        return
    _execute(
        f"UPDATE {_table(Subscription)} SET lease_expires_at = %s "  # noqa: S608 - our table
        "WHERE id = ANY(%s::bigint[]) AND leased_by = %s AND status = %s",
        [lease_until, ids, owner, Status.PENDING],
    )


def release_leases(ids: list[int], owner: UUID) -> None:
    """Give back `owner`'s leases on the subscriptions `ids` (those it still holds) without an outcome: they are
    pending as they were, for the next run to claim."""
    if not ids:
        return
    if connection.vendor != "postgresql":
        held = Subscription.objects.filter(pk__in=ids, leased_by=owner, status=Status.PENDING)
        held.update(leased_by=None, lease_expires_at=None)
        return
    _execute(
        f"UPDATE {_table(Subscription)} SET leased_by = NULL, lease_expires_at = NULL "  # noqa: S608 - our table
        "WHERE id = ANY(%s::bigint[]) AND leased_by = %s AND status = %s",
        [ids, owner, Status.PENDING],
    )


def update_credentials(sealed: list[tuple[int, Sealed]], now: datetime) -> set[int]:
    """Store re-sealed credentials, as (subscription id, sealed token); returns the subscription ids whose
    credential was there to update. An UPDATE, not an upsert: a credential deleted meanwhile (the fan revoked,
    or erased their data) stays deleted."""
    if not sealed:
        return set()
    if connection.vendor != "postgresql":
        kept = Credential.objects.filter(subscription_id__in=[pk for pk, _ in sealed])
        kept = set(kept.values_list("subscription_id", flat=True))
        credentials = [
            Credential(subscription_id=pk, kek_id=s.kek_id, wrapped_key=s.wrapped_key, ciphertext=s.ciphertext)
            for pk, s in sealed
            if pk in kept
        ]
        for credential in credentials:
            credential.updated_at = now
        Credential.objects.bulk_update(credentials, ["kek_id", "wrapped_key", "ciphertext", "updated_at"])
        return kept
    rows = _execute(*credentials_statement(sealed, now))
    return {pk for (pk,) in rows}


def credentials_statement(sealed: list[tuple[int, Sealed]], now: datetime) -> tuple[str, dict]:
    """update_credentials's UPDATE on PostgreSQL: the rows joined with `unnest` of the new values, and found by
    primary key (`subscription_id = ANY(ids)`, the same ids). With the join alone, from about a hundred tokens
    a statement PostgreSQL hashed the whole credentials table (a sequential scan at every rotated-token write:
    a million rows on a million-fan campaign's release day)."""
    sql = (
        f"UPDATE {_table(Credential)} AS c SET kek_id = v.kek_id, wrapped_key = v.wrapped_key, "  # noqa: S608
        "ciphertext = v.ciphertext, updated_at = %(now)s "
        "FROM unnest(%(ids)s::bigint[], %(kek_ids)s::text[], %(keys)b::bytea[], %(ciphertexts)b::bytea[]) "
        "AS v(subscription_id, kek_id, wrapped_key, ciphertext) "  # %b: bytes sent as binary
        "WHERE c.subscription_id = ANY(%(ids)s::bigint[]) AND c.subscription_id = v.subscription_id "
        "RETURNING c.subscription_id"
    )
    params = {
        "now": now,
        "ids": [pk for pk, _ in sealed],
        "kek_ids": [s.kek_id for _, s in sealed],
        "keys": [s.wrapped_key for _, s in sealed],
        "ciphertexts": [s.ciphertext for _, s in sealed],
    }
    return sql, params


def existing_credentials(ids: list[int]) -> set[int]:
    """Which of the subscriptions `ids` still hold a credential: a fan who revoked, or erased their data, has
    none any more (fans/revocation.py, fans/privacy.py)."""
    if not ids:
        return set()
    if connection.vendor != "postgresql":
        return set(Credential.objects.filter(subscription_id__in=ids).values_list("subscription_id", flat=True))
    rows = _execute(
        f"SELECT subscription_id FROM {_table(Credential)} WHERE subscription_id = ANY(%s::bigint[])",  # noqa: S608
        [ids],
    )
    return {pk for (pk,) in rows}


def record_progress(owner: UUID, progress: list[tuple[int, str]], now: datetime) -> None:
    """Write the library actions done so far (Subscription.done_calls) of fans still being delivered, as
    (subscription id, done calls), only on subscriptions still pending under `owner`'s lease: a run whose lease
    expired and was taken over cannot overwrite the new holder's progress. One UPDATE."""
    if not progress:
        return
    if connection.vendor != "postgresql":
        mine = Subscription.objects.filter(leased_by=owner, status=Status.PENDING)
        rows = [Subscription(pk=pk, done_calls=done, updated_at=now) for pk, done in progress]
        mine.bulk_update(rows, ["done_calls", "updated_at"])  # its UPDATE keeps `mine`'s conditions
        return
    _execute(*progress_statement(owner, progress, now))


def progress_statement(owner: UUID, progress: list[tuple[int, str]], now: datetime) -> tuple[str, dict]:
    """record_progress's UPDATE on PostgreSQL. The rows are found by primary key (`id = ANY(ids)`) and each
    takes its own value by its id's place in the array (`array_position`). A join with `unnest(ids, values)`
    was planned, from statistics in which `leased_by` is NULL, as a scan of the whole table filtered by the
    lease (one row expected) for a few hundred ids: every write of a run's progress read every subscription."""
    sql = (
        f"UPDATE {_table(Subscription)} "  # noqa: S608 - our table
        "SET done_calls = (%(done)s::text[])[array_position(%(ids)s::bigint[], id)], updated_at = %(now)s "
        "WHERE id = ANY(%(ids)s::bigint[]) AND leased_by = %(owner)s AND status = %(status)s"
    )
    ids, done = [pk for pk, _ in progress], [done for _, done in progress]
    return sql, {"done": done, "ids": ids, "now": now, "owner": owner, "status": Status.PENDING}


def settle_subscriptions(owner: UUID, settled: list[Settled], now: datetime) -> None:
    """Write outcomes and release their leases, only on subscriptions still pending under `owner`'s lease: a
    lease that expired and was taken over is not this run's to record any more. One UPDATE per kind of outcome
    (retry times rounded to a tenth of a second so that they group), each naming its rows by id. An outcome that
    `forget_token`s deletes the credentials of the rows its UPDATE changed, in the same statement: a token goes
    only with the record that nothing will use it again, and with no other run's."""
    mine = Subscription.objects.filter(leased_by=owner, status=Status.PENDING)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for row in settled:
        retry_in = None if row.retry_in is None else round(row.retry_in, 1)
        key = (row.status, row.message, row.attempted, retry_in, row.done_calls, row.forget_token)
        groups[key].append(row.subscription_id)
    for (status, message, attempted, retry_in, done_calls, forget_token), ids in groups.items():
        next_attempt_at = None if retry_in is None else now + timedelta(seconds=retry_in)
        if connection.vendor == "postgresql":
            # `id = ANY(array)`: one parameter, where `pk__in` sends (and the driver quotes) one per row. Rows
            # are found by id whatever the planner believes of `leased_by` (always NULL when it last looked).
            sql = (
                f"UPDATE {_table(Subscription)} SET status = %s, last_error = %s, "  # noqa: S608 - our table
                "attempts = attempts + %s, delivered_at = CASE WHEN %s THEN %s ELSE delivered_at END, "
                "next_attempt_at = coalesce(%s, next_attempt_at), done_calls = coalesce(%s, done_calls), "
                "leased_by = NULL, lease_expires_at = NULL, "
                "updated_at = %s WHERE id = ANY(%s::bigint[]) AND leased_by = %s AND status = %s"
            )
            if forget_token:  # the settled ids gathered first (`ARRAY(…)`), the credentials found by their key
                sql = (
                    f"WITH settled AS ({sql} RETURNING id) DELETE FROM {_table(Credential)} "  # noqa: S608
                    "WHERE subscription_id = ANY(ARRAY(SELECT id FROM settled))"
                )
            _execute(
                sql,
                [status, message, int(attempted), status == Status.DELIVERED, now, next_attempt_at, done_calls]
                + [now, ids, owner, Status.PENDING],
            )
            continue
        changes = {"status": status, "last_error": message, "leased_by": None, "lease_expires_at": None}
        if attempted:
            changes["attempts"] = F("attempts") + 1
        if status == Status.DELIVERED:
            changes["delivered_at"] = now
        if next_attempt_at is not None:
            changes["next_attempt_at"] = next_attempt_at
        if done_calls is not None:
            changes["done_calls"] = done_calls
        rows = mine.filter(pk__in=ids)
        forgotten = list(rows.values_list("pk", flat=True)) if forget_token else []
        rows.update(updated_at=now, **changes)
        Credential.objects.filter(subscription_id__in=forgotten).delete()


def insert_attempts(attempts: list[Attempt], at: datetime) -> None:
    """Insert delivery attempts that share their time, for the subscriptions that still exist; a delivered one
    only for a subscription still pending (called before the batch's outcomes are written).

    A fan may erase their data (fans/privacy.py deletes their subscriptions) while the engine's calls for them
    are out: their attempts are dropped, not inserted to fail the batch's foreign-key check at commit (the
    whole batch unrecorded, its fans delivered again when the lease expires). A fan who revoked after the check
    before their save (`Run.call`) stays revoked, and no attempt says otherwise. Called inside a transaction: on
    PostgreSQL the subscriptions are locked (FOR KEY SHARE, as the foreign-key check would) so that a deletion
    or a revocation waits for the commit, and one that got there first is seen as such."""
    if not attempts:
        return
    if connection.vendor != "postgresql":  # SQLite: the transaction already holds the database's write lock
        ids = {row.subscription_id for row in attempts}
        status = dict(Subscription.objects.filter(pk__in=ids).values_list("pk", "status"))
        rows = (
            DeliveryAttempt(at=at, **row._asdict())
            for row in attempts
            if row.subscription_id in status
            and (row.outcome != DeliveryAttempt.Outcome.DELIVERED or status[row.subscription_id] == Status.PENDING)
        )
        DeliveryAttempt.objects.bulk_create(rows)
        return
    _execute(*attempts_statement(attempts, at))


def attempts_statement(attempts: list[Attempt], at: datetime) -> tuple[str, dict]:
    """insert_attempts's INSERT on PostgreSQL. The batch's subscriptions are locked and read by primary key in a
    subquery of their own (`id = ANY(ids)`, the same ids), then joined with the attempts: joined with `unnest`
    directly, even with `id = ANY(ids)` beside the join, PostgreSQL hashed every subscription at each batch
    (12.8 ms a batch of 500 on 36,000 subscriptions; a million on a million-fan campaign's release day)."""
    sql = (
        f"INSERT INTO {_table(DeliveryAttempt)} (subscription_id, at, call, outcome, http_status, message) "  # noqa: S608
        "SELECT v.subscription_id, %(at)s, v.call, v.outcome, v.http_status, v.message "
        "FROM unnest(%(ids)s::bigint[], %(calls)s::text[], %(outcomes)s::text[], %(statuses)s::integer[], "
        "%(messages)s::text[]) AS v(subscription_id, call, outcome, http_status, message) "
        f"JOIN (SELECT id, status FROM {_table(Subscription)} WHERE id = ANY(%(ids)s::bigint[]) FOR KEY SHARE) "
        "AS s ON s.id = v.subscription_id "
        "WHERE (v.outcome <> %(delivered)s OR s.status = %(pending)s) "
        # Written again after a dropped connection, the batch's attempts are not doubled (they share `at`).
        f"AND NOT EXISTS (SELECT FROM {_table(DeliveryAttempt)} AS a "
        "WHERE a.subscription_id = v.subscription_id AND a.at = %(at)s)"
    )
    ids, calls, outcomes, statuses, messages = (list(column) for column in zip(*attempts, strict=True))
    params = {"at": at, "ids": ids, "calls": calls, "outcomes": outcomes, "statuses": statuses, "messages": messages}
    return sql, params | {"delivered": DeliveryAttempt.Outcome.DELIVERED, "pending": Status.PENDING}


CONFLICT_TRIES = 5
CONFLICT_WAIT_SECONDS = 0.05  # then twice as long at each try: 0.05, 0.1, 0.2, 0.4 s
RECONNECT_WAIT_SECONDS = 0.5  # then twice as long at each try, up to RECONNECT_WAIT_MAX_SECONDS
RECONNECT_WAIT_MAX_SECONDS = 5.0


def retried_write(write: Callable[[], T]) -> T:
    """Run `write`, a whole transaction (called outside any), again when it did not go through for a reason
    that passes: PostgreSQL rolled it back to break a deadlock or a serialization conflict (SQLSTATE class 40;
    up to CONFLICT_TRIES times), or the connection dropped or could not be made (class 08, the server shutting
    down or starting: 57P01–57P03, or no SQLSTATE at all: the client saw the connection die or be refused),
    for as long as `outage_seconds()` allows: a restart, a failover. Such a write must be harmless to repeat:
    after a dropped connection it may have been committed already. Other errors go up as they are."""
    conflicts, reconnects, deadline = 0, 0, None
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None) or ""
            conflict = sqlstate.startswith("40")
            dropped = not sqlstate or sqlstate.startswith(("08", "57P0"))
            if connection.in_atomic_block or not (conflict or dropped):
                raise
            if conflict:
                conflicts += 1
                if conflicts == CONFLICT_TRIES:
                    raise
                wait = CONFLICT_WAIT_SECONDS * 2 ** (conflicts - 1)
            else:
                deadline = deadline or time.monotonic() + outage_seconds()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                wait = min(RECONNECT_WAIT_SECONDS * 2**reconnects, RECONNECT_WAIT_MAX_SECONDS, left)
                reconnects += 1
                connection.close()  # the next query connects again
            logger.warning("A batch write did not go through (%s); writing it again.", sqlstate or "connection lost")
            time.sleep(wait)


def outage_seconds() -> float:
    """How long a write waits for the database to come back: DELIVERY_DATABASE_OUTAGE_SECONDS, at most half the
    lease (a batch whose lease ran out meanwhile could be taken over by another run and delivered again)."""
    return min(settings.DELIVERY_DATABASE_OUTAGE_SECONDS, settings.DELIVERY_LEASE_SECONDS / 2)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _execute(sql: str, params: list | dict) -> list[tuple]:
    """Run one statement on the default connection (in its transaction, if one is open) with server-side
    binding, reading its rows, if it returns any, in binary. Never prepared: each statement is planned for
    its own parameters (a generic plan could not use the claim's partial index)."""
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=False, binary=True)
        return cursor.fetchall() if cursor.description else []
