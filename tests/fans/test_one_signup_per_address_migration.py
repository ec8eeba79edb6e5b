"""Migrations fans 0021 and 0022: one email-only sign-up per address and campaign whatever its case, run on the real
database: sign-ups of one address in different cases (none written through fans.signups.sign_up, which
lower-cases it) become one, the one that still receives the email if any, and keep their release emails."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from fans.models import EmailSignup, ReleaseEmail
from tests.conftest import make_campaign
from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)

BEFORE = ("fans", "0020_opted_in_means_an_address")
MIGRATION = ("fans", "0022_one_signup_per_address_whatever_its_case")


def signup(campaign, email: str, *, days_ago: int, confirmed: bool = True, unsubscribed: bool = False):
    at = timezone.now() - dt.timedelta(days=days_ago)
    return EmailSignup.objects.create(
        campaign=campaign,
        email=email,
        wording_version="v1",
        created_at=at,
        confirmed_at=at if confirmed else None,
        unsubscribed_at=at + dt.timedelta(hours=1) if unsubscribed else None,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_sign_ups_of_one_address_in_different_cases_become_one():
    campaign, other = make_campaign(), make_campaign(slug="second-light")
    migrate(BEFORE)
    gone = signup(campaign, "Fan@Example.test", days_ago=9, unsubscribed=True)
    receiving = signup(campaign, "fan@example.test", days_ago=5)
    later = signup(campaign, "FAN@example.test", days_ago=1, confirmed=False)
    mailed = ReleaseEmail.objects.create(campaign=campaign, email="Fan@Example.test", signup=gone)
    old = signup(campaign, "Late@Fan.test", days_ago=9, unsubscribed=True)
    renewed = signup(campaign, "late@fan.test", days_ago=2, confirmed=False)
    alone = signup(campaign, "Alone@Fan.test", days_ago=3)
    elsewhere = signup(other, "fan@example.test", days_ago=3)

    migrate(MIGRATION)

    kept = set(EmailSignup.objects.values_list("pk", flat=True))
    assert kept == {receiving.pk, renewed.pk, alone.pk, elsewhere.pk}, "the receiving one, else the latest"
    assert {gone.pk, later.pk, old.pk}.isdisjoint(kept)
    assert EmailSignup.objects.get(pk=alone.pk).email == "Alone@Fan.test", "an address is kept as it was"
    assert ReleaseEmail.objects.get(pk=mailed.pk).signup_id == receiving.pk, "its email stays the address's"
    with pytest.raises(IntegrityError), transaction.atomic():
        signup(campaign, "ALONE@fan.test", days_ago=0)
