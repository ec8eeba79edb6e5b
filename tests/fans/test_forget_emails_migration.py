"""Migration fans 0015: addresses no consent shares any more, left by withdrawals made before it, are forgotten."""

import pytest
from django.utils import timezone

from fans.models import ConsentRecord, Fan, Subscription
from tests.conftest import make_campaign
from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_an_address_no_consent_shares_is_forgotten_and_a_shared_one_kept():
    campaign = make_campaign()  # before migrating back: today's Campaign has columns added after it
    migrate(("fans", "0014_subscription_done_calls"))
    for user, revoked_at in [("withdrew", timezone.now()), ("shares", None)]:
        fan = Fan.objects.create(service="spotify", service_user_id=user, email=f"{user}@fan.test")
        subscription = Subscription.objects.create(fan=fan, campaign=campaign)
        record = ConsentRecord(
            subscription=subscription, campaign=campaign, service="spotify", service_user_id=user, scopes=[],
            wording_version="v", email_opt_in=True, email=fan.email, revoked_at=revoked_at,
        )  # fmt: skip
        record.issue_revoke_token()
        record.save()

    migrate(("fans", "0015_forget_unshared_emails"))

    assert dict(Fan.objects.values_list("service_user_id", "email")) == {"withdrew": "", "shares": "shares@fan.test"}
