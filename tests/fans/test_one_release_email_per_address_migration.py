"""Migrations fans 0024 and 0025: one release-day email per address and campaign whatever its case, run on the real
database: emails of one address in different cases (two runs planning at once wrote one each) become one, the
first sent, else the first planned, keeping what the others recorded of the address."""

import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from fans.models import ReleaseEmail
from tests.conftest import make_campaign
from tests.fans.test_release_email import pre_save, sign_up
from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)

BEFORE = ("fans", "0023_release_email_by_address")
MIGRATION = ("fans", "0025_one_release_email_per_address_whatever_its_case")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_release_emails_of_one_address_in_different_cases_become_one():
    campaign, other = make_campaign(), make_campaign(slug="second-light")
    consent = pre_save(campaign, "keen", "Keen@Fan.test", opt_in=True)
    signup = sign_up(campaign, "keen@fan.test")
    now = timezone.now()
    migrate(BEFORE)
    planned = ReleaseEmail.objects.create(campaign=campaign, email="Keen@Fan.test", consent=consent)
    sent = ReleaseEmail.objects.create(
        campaign=campaign, email="keen@fan.test", signup=signup, sent_at=now, opened_at=now, clicks=1
    )
    also_sent = ReleaseEmail.objects.create(
        campaign=campaign,
        email="KEEN@fan.test",
        sent_at=now + dt.timedelta(seconds=1),
        clicked_at=now,
        clicks=2,
        unsubscribed_at=now + dt.timedelta(minutes=1),
    )
    unsent = ReleaseEmail.objects.create(campaign=campaign, email="Late@Fan.test")
    refused = ReleaseEmail.objects.create(campaign=campaign, email="late@fan.test", refusal="550 no such user")
    alone = ReleaseEmail.objects.create(campaign=campaign, email="Alone@Fan.test")
    elsewhere = ReleaseEmail.objects.create(campaign=other, email="keen@fan.test")

    migrate(MIGRATION)

    kept = set(ReleaseEmail.objects.values_list("pk", flat=True))
    assert kept == {sent.pk, unsent.pk, alone.pk, elsewhere.pk}, "the first sent, else the first planned"
    keen = ReleaseEmail.objects.get(pk=sent.pk)
    assert (keen.email, keen.sent_at, keen.opened_at, keen.clicked_at, keen.clicks) == (
        "keen@fan.test",
        now,
        now,
        now,
        3,
    )
    assert keen.unsubscribed_at == now + dt.timedelta(minutes=1), "one email an address: unsubscribed from all"
    assert (keen.signup_id, keen.consent_id) == (signup.pk, consent.pk)
    assert ReleaseEmail.objects.get(pk=unsent.pk).refusal == "550 no such user", "the address was refused"
    assert ReleaseEmail.objects.get(pk=alone.pk).email == "Alone@Fan.test", "an address is kept as it was"
    assert not ReleaseEmail.objects.filter(pk__in=[planned.pk, also_sent.pk, refused.pk]).exists()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReleaseEmail.objects.create(campaign=campaign, email="ALONE@fan.test")
