"""Migration fans 0017: consents erased before erasure cut their times and revoke links are made to lead nowhere."""

import datetime as dt

import pytest
from django.utils import timezone

from fans.models import ConsentRecord, Fan, Subscription, hash_token
from tests.conftest import make_campaign
from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_a_consent_erased_before_loses_its_exact_time_and_revoke_link_and_a_live_one_keeps_them():
    campaign = make_campaign()  # before migrating back: today's Campaign has columns added after it
    migrate(("fans", "0016_retention_schedule"))
    given = timezone.now().replace(hour=15, minute=49, second=45, microsecond=384474)
    records = {}
    for user in ("erased", "live"):
        fan = Fan.objects.create(service="spotify", service_user_id=user)
        record = ConsentRecord(
            subscription=Subscription.objects.create(fan=fan, campaign=campaign), campaign=campaign,
            service="spotify", service_user_id=user, scopes=[], wording_version="v", created_at=given,
            revoked_at=given + dt.timedelta(minutes=5),
        )  # fmt: skip
        records[user] = (record.issue_revoke_token(), record)
        record.save()
    ConsentRecord.objects.filter(service_user_id="erased").update(subscription=None, service_user_id="")  # as erased

    migrate(("fans", "0017_past_erasures_lead_nowhere"))

    erased = ConsentRecord.objects.get(pk=records["erased"][1].pk)
    assert (erased.created_at, erased.revoked_at) == (given.replace(hour=0, minute=0, second=0, microsecond=0),) * 2
    assert not ConsentRecord.objects.filter(revoke_token_hash=hash_token(records["erased"][0])).exists()
    live = ConsentRecord.objects.get(service_user_id="live")
    assert live.created_at == given and live.revoke_token_hash == hash_token(records["live"][0])
