"""The privacy pages opened by an address find its consent records and the streaming accounts carrying it through
indexes on the lower-cased address (consent_by_address, fan_by_address): the lookups compare lower(email), as the
indexes hold it. iexact's UPPER() made PostgreSQL read every consent record (every fan, for the erasure and the
privacy link's form) to find an address's, on each privacy page opened by address."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fans import privacy, privacy_email
from fans.models import ConsentRecord, Fan
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def statement(queries, start: str, table: str) -> str:
    """The one statement of `queries` on `table` starting with `start`, as it was sent."""
    (sql,) = [q["sql"] for q in queries if q["sql"].startswith(start) and f'"{table}"' in q["sql"].split("WHERE")[0]]
    return sql


@pytest.fixture
def campaign():
    campaign = make_campaign(offer_email_optin=True)
    Fan.objects.bulk_create(
        Fan(service="spotify", service_user_id=f"fan{i}", email=f"fan{i}@fan.test") for i in range(20_000)
    )
    ConsentRecord.objects.bulk_create(
        ConsentRecord(
            campaign=campaign,
            service="spotify",
            service_user_id=f"fan{i}",
            email=f"fan{i}@fan.test",
            email_opt_in=True,
            wording_version="v1",
            revoke_token_hash=f"{i:064x}",
        )
        for i in range(20_000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fans_fan")
        cursor.execute("ANALYZE fans_consentrecord")
    return campaign


def test_the_privacy_page_finds_the_addresss_consents_through_the_index(campaign):
    subject = privacy.Subject(email="Fan123@fan.test")

    assert "consent_by_address" in (plan := privacy.consents(subject).explain()), plan
    assert "consent_by_address" in (plan := privacy.subscriptions(subject).explain()), plan


def test_the_privacy_links_form_finds_an_account_carrying_the_address_through_the_index(campaign):
    ConsentRecord.objects.filter(email="fan123@fan.test").delete()  # only the account carries it: asked last
    with CaptureQueriesContext(connection) as queries:
        assert privacy_email.holds_anything("fan123@fan.test")

    plan = explain(statement(queries, "SELECT", "fans_fan"))
    assert "fan_by_address" in plan, plan


def test_erasing_by_address_finds_the_accounts_carrying_it_through_the_index(campaign):
    with CaptureQueriesContext(connection) as queries:
        privacy.erase(privacy.Subject(email="Fan123@fan.test"))

    assert not Fan.objects.filter(email="fan123@fan.test").exists()
    plan = explain(statement(queries, "UPDATE", "fans_fan"))
    assert "fan_by_address" in plan, plan
