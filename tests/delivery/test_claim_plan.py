"""A claim walks the campaign's delivery queue, not the whole campaign.

The engine claims a campaign's due subscriptions first come, first served. Without the partial index
`subscription_queue` (pending subscriptions in sign-up order), PostgreSQL reads past every subscription already
delivered at each claim: a million-fan campaign would spend minutes in its claims. This checks the plan
PostgreSQL chooses for the engine's own claim query, on a campaign most of whose fans are delivered.
"""

import pytest
from django.db import connection, transaction

from delivery.engine import due_now
from fans.models import Subscription
from releases import benchmark

pytestmark = pytest.mark.django_db


def test_the_claim_reads_the_delivery_queue_index():
    campaign = benchmark.make_campaign("claim-plan")
    benchmark.seed(campaign, 20_000)  # 70 % delivered, 20 % pending, the rest failed or revoked
    due = Subscription.objects.filter(due_now(), campaign=campaign).order_by("created_at", "pk")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE fans_subscription")
        sql, params = due.select_for_update(skip_locked=True).values("pk")[:1000].query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "subscription_queue" in plan, plan
    assert "Seq Scan" not in plan, plan
