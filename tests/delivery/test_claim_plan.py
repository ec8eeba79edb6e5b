"""A claim walks the campaign's delivery queue, not the whole campaign, and takes a fair share near the end;
a run's progress write, its rotated-token write and its attempts' insert find their rows by primary key.

The engine claims a campaign's due subscriptions first come, first served. Without the partial index
`subscription_queue` (pending subscriptions in sign-up order), PostgreSQL reads past every subscription already
delivered at each claim: a million-fan campaign would spend minutes in its claims. These check the plans
PostgreSQL chooses for the engine's own claim statement, on a campaign most of whose fans are delivered.
"""

import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone

from delivery import benchmark as delivery_benchmark
from delivery import bulk
from delivery.engine import Run, due_now
from delivery.models import DeliveryAttempt
from fans import vault
from fans.models import Credential, Subscription, credential_aad
from releases import benchmark

pytestmark = pytest.mark.django_db


def explain(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def explain_as_sent(sql: str, params: list | dict) -> str:
    """EXPLAIN through the engine's own cursor (`bulk._execute`: parameters bound by the server, as sent)."""
    return "\n".join(row[0] for row in bulk._execute(f"EXPLAIN {sql}", params))


@pytest.fixture
def mostly_delivered():
    campaign = benchmark.make_campaign("claim-plan")
    benchmark.seed(campaign, 20_000)  # 70 % delivered, 20 % pending, the rest failed or revoked
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fans_subscription")
    return campaign


def test_the_claim_reads_the_delivery_queue_index(mostly_delivered):
    due = Subscription.objects.filter(due_now(), campaign=mostly_delivered).order_by("created_at", "pk")
    with transaction.atomic():
        plan = explain(*bulk.claim_statement(due, 1000, uuid.uuid4(), timezone.now()))

    assert "subscription_queue" in plan, plan
    # The claimed rows are updated through the primary key: no plan of the claim reads the whole table.
    assert "fans_subscription_pkey" in plan, plan
    assert "Seq Scan on fans_subscription" not in plan, plan
    # Each claimed fan's service and country are read by its key, not by hashing every fan.
    assert "fans_fan_pkey" in plan, plan
    assert "Seq Scan on fans_fan" not in plan, plan


def test_runs_share_the_last_of_the_queue(mostly_delivered, settings):
    """Two runs on a campaign: a full batch while plenty is due, then half of what is left, never less than
    the calls one run keeps in flight; so the runs end together."""
    settings.DELIVERY_PARALLEL_RUNS = 2
    settings.DELIVERY_BATCH_SIZE = 1500
    settings.DELIVERY_CONCURRENCY = 100
    settings.SPOTIFY_RATE_LIMIT = 0  # no limit: batches are not paced (`Run.paced_batch_size`)
    run = Run(mostly_delivered, transport=None)  # claims only: no call goes out
    due = Subscription.objects.filter(due_now(), campaign=mostly_delivered)
    assert due.count() == 4000

    sizes = []
    while batch := run.claim():
        sizes.append(len(batch))

    assert sizes == [1500, 1250, 625, 313, 156, 100, 56]
    assert not due.exists()


def test_a_runs_progress_is_one_update_through_the_primary_key(mostly_delivered):
    """The progress of a few hundred fans between calls (`record_progress`, every DELIVERY_RECORD_SECONDS of a
    run whose fans make more than one call: a save then a follow) is one UPDATE that finds its rows by primary
    key. The statistics say `leased_by` is NULL everywhere (ANALYZE ran before any lease): a join with
    `unnest(ids, values)` was planned as a scan of every subscription, filtered by the lease."""
    owner = uuid.uuid4()
    pending = Subscription.objects.filter(campaign=mostly_delivered, status=Subscription.Status.PENDING)
    ids = list(pending.order_by("pk").values_list("pk", flat=True)[:400])
    Subscription.objects.filter(pk__in=ids).update(leased_by=owner)
    progress = [(pk, "save" if i % 2 else f"save playlist-made:{i}") for i, pk in enumerate(ids)]

    plan = explain_as_sent(*bulk.progress_statement(owner, progress, timezone.now()))
    assert "fans_subscription_pkey" in plan, plan
    assert "Seq Scan on fans_subscription" not in plan, plan

    bulk.record_progress(owner, progress, timezone.now())
    written = dict(Subscription.objects.filter(pk__in=ids).values_list("pk", "done_calls"))
    assert written == dict(progress)  # each row its own value


def test_rotated_tokens_are_stored_through_the_primary_key():
    """A few hundred rotated refresh tokens stored at once (`update_credentials`, the run thread's pass while a
    batch refreshes) are found by key: joined with `unnest` alone, PostgreSQL hashed every credential."""
    tokens = {f"rotated-{i}": f"token-{i}" for i in range(5000)}
    campaign = delivery_benchmark.seed_campaign("rotated-plan", tokens)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fans_credential")
    ids = list(Subscription.objects.filter(campaign=campaign).order_by("pk").values_list("pk", flat=True)[:300])
    sealed = [(pk, vault.seal(f"new-{pk}", aad=credential_aad(pk))) for pk in ids]

    plan = explain_as_sent(*bulk.credentials_statement(sealed, timezone.now()))
    assert "fans_credential_pkey" in plan, plan
    assert "Seq Scan on fans_credential" not in plan, plan

    assert bulk.update_credentials(sealed, timezone.now()) == set(ids)
    stored = Credential.objects.filter(subscription_id__in=ids[:3]).order_by("subscription_id")
    assert [credential.reveal() for credential in stored] == [f"new-{pk}" for pk in ids[:3]]


def test_a_batchs_attempts_find_their_subscriptions_by_primary_key(mostly_delivered):
    """A batch's attempts (`insert_attempts`, with every record of a run) lock and read only their own
    subscriptions, by primary key: joined with `unnest` alone, PostgreSQL hashed every subscription (12.8 ms a
    batch of 500 on 36,000 subscriptions; a million-fan campaign would have read a million rows at each)."""
    pending = Subscription.objects.filter(campaign=mostly_delivered, status=Subscription.Status.PENDING)
    ids = list(pending.order_by("pk").values_list("pk", flat=True)[:500])
    delivered = Subscription.objects.filter(campaign=mostly_delivered, status=Subscription.Status.DELIVERED)
    already = delivered.values_list("pk", flat=True).first()
    attempts = [bulk.Attempt(pk, "save", "delivered", 200, "") for pk in ids]
    attempts.append(bulk.Attempt(already, "save", "delivered", 200, ""))  # no second "delivered" for this one
    at = timezone.now()

    with transaction.atomic():
        plan = explain_as_sent(*bulk.attempts_statement(attempts, at))
    assert "fans_subscription_pkey" in plan, plan
    assert "Seq Scan on fans_subscription" not in plan, plan

    with transaction.atomic():
        bulk.insert_attempts(attempts, at)
        bulk.insert_attempts(attempts, at)  # written again after a dropped connection: not doubled
    written = DeliveryAttempt.objects.filter(at=at)
    assert sorted(written.values_list("subscription_id", flat=True)) == ids
