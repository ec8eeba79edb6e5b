"""An address's email sign-ups are found through the index of the unique constraint on the lower-cased address
(one_signup_per_email, fans 0022): the lookups compare lower(email), as the index holds it. iexact's UPPER() made
PostgreSQL read every sign-up of the campaign (or of every campaign, on the privacy page) to find one."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fans import privacy, release_email, signups
from fans.models import EmailSignup, ReleaseEmail
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def statement(queries, start: str) -> str:
    """The one statement of `queries` on fans_emailsignup starting with `start`, as it was sent."""
    (sql,) = [q["sql"] for q in queries if q["sql"].startswith(start) and '"fans_emailsignup"' in q["sql"]]
    return sql


@pytest.fixture
def campaign():
    campaign = make_campaign(offer_email_optin=True)
    EmailSignup.objects.bulk_create(
        EmailSignup(campaign=campaign, email=f"fan{i}@fan.test", wording_version="v1") for i in range(20_000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fans_emailsignup")
    return campaign


def test_signing_up_again_finds_the_address_through_the_index(campaign):
    before = EmailSignup.objects.get(email="fan123@fan.test")
    with CaptureQueriesContext(connection) as queries:
        signup = signups.sign_up(campaign, " Fan123@Fan.test ")

    assert signup.pk == before.pk
    plan = explain(statement(queries, "SELECT"))
    assert "one_signup_per_email" in plan, plan


def test_the_privacy_page_finds_the_address_through_the_index(campaign):
    plan = privacy.email_signups(privacy.Subject(email="Fan123@fan.test")).explain()

    assert "one_signup_per_email" in plan, plan


def test_unsubscribing_finds_the_address_through_the_index(campaign):
    email = ReleaseEmail.objects.create(campaign=campaign, email="FAN123@fan.test")
    with CaptureQueriesContext(connection) as queries:
        release_email.unsubscribe(email)

    assert EmailSignup.objects.get(email="fan123@fan.test").unsubscribed_at is not None
    plan = explain(statement(queries, "UPDATE"))
    assert "one_signup_per_email" in plan, plan
