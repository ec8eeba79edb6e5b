"""Migration fans 0020: Apple Music consents saved opted in to email without an address are opted in no more,
run on the real database."""

import pytest

from fans.models import ConsentRecord, Fan, Subscription
from tests.conftest import make_campaign, make_consent
from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)

BEFORE = ("fans", "0019_subscription_done_calls_unlimited")
MIGRATION = ("fans", "0020_opted_in_means_an_address")


def consent_of(campaign, service: str, user_id: str, **fields) -> ConsentRecord:
    fan = Fan.objects.create(service=service, service_user_id=user_id, email=fields.get("email", ""))
    return make_consent(Subscription.objects.create(fan=fan, campaign=campaign), **fields)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_consents_opted_in_without_an_address_are_opted_in_no_more():
    campaign = make_campaign()
    migrate(BEFORE)
    apple = consent_of(campaign, "apple_music", "mut-alice", email_opt_in=True)  # as authorization saved them
    spotify = consent_of(campaign, "spotify", "bob", email="bob@fans.test", email_opt_in=True)
    declined = consent_of(campaign, "apple_music", "mut-chloe", email_opt_in=False)
    erased = consent_of(campaign, "spotify", "dan", email="dan@fans.test", email_opt_in=True)
    ConsentRecord.objects.filter(pk=erased.pk).update(service_user_id="", email="", subscription=None)

    migrate(MIGRATION)

    opted = dict(ConsentRecord.objects.values_list("pk", "email_opt_in"))
    assert opted == {apple.pk: False, spotify.pk: True, declined.pk: False, erased.pk: True}
    assert Fan.objects.get(service_user_id="bob").email == "bob@fans.test"
