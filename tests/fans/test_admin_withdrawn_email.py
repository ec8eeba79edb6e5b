"""A fan who withdrew their email consent: label staff neither find them by the address nor see it in the console;
the consent itself stays as evidence of what was agreed, and when it was withdrawn."""

import pytest
from django.urls import reverse
from django.utils import timezone

from fans import release_email, revocation
from fans.models import ConsentRecord, EmailSignup, Fan, ReleaseEmail, Subscription
from tests.conftest import make_consent

pytestmark = pytest.mark.django_db

CONSENTS = reverse("admin:fans_consentrecord_changelist")
FANS = reverse("admin:fans_fan_changelist")


def opted_in(campaign, user_id: str, address: str = "") -> ConsentRecord:
    address = address or f"{user_id}@fans.test"
    fan = Fan.objects.create(service="spotify", service_user_id=user_id, display_name=user_id.title(), email=address)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign)
    return make_consent(subscription, email=address, email_opt_in=True, display_name=user_id.title())


def found(client, changelist: str, query: str) -> list[str]:
    return [row.service_user_id for row in client.get(changelist, {"q": query}).context["cl"].result_list]


def pages(consent: ConsentRecord) -> list[str]:
    return [
        CONSENTS,
        reverse("admin:fans_consentrecord_change", args=[consent.pk]),
        FANS,
        reverse("admin:fans_fan_change", args=[consent.subscription.fan_id]),
    ]


def test_a_fan_who_cancelled_is_not_found_by_their_address_nor_shown_it(staff_client, campaign):
    consent = opted_in(campaign, "alice")
    revocation.revoke_subscription(consent.subscription_id)
    today = f"withdrawn on {timezone.now():%Y-%m-%d}"

    assert found(staff_client, CONSENTS, "alice@fans.test") == []
    assert found(staff_client, FANS, "alice@fans.test") == []
    assert staff_client.get(CONSENTS, {"email": "alice@fans.test"}).status_code == 400, "nor by a hand-made filter"
    for page in pages(consent):
        html = staff_client.get(page).content.decode()
        assert "alice@fans.test" not in html, page
        if "/change/" in page:
            assert today in html, page
    assert found(staff_client, CONSENTS, "Alice") == ["alice"], "the consent stays, as evidence"


def test_the_address_of_a_pre_save_release_day_found_revoked_is_still_shown(staff_client, campaign):
    """Release day found the authorization gone: the pre-save is revoked, its consent row left as it was. Only the
    fan withdraws the consent to share: the address is still found and shown (it still gets the release email)."""
    consent = opted_in(campaign, "chloe")
    Subscription.objects.filter(pk=consent.subscription_id).update(status=Subscription.Status.REVOKED)

    assert found(staff_client, CONSENTS, "chloe@fans.test") == ["chloe"]
    html = staff_client.get(reverse("admin:fans_consentrecord_change", args=[consent.pk])).content.decode()
    assert "chloe@fans.test" in html and "withdrawn" not in html


def assert_withdrawn_today(staff_client, consent: ConsentRecord, address: str) -> None:
    """The console finds no consent by Bob's address, shows `address` (as the consent held it) on none of the
    consent's pages, and its change pages say it was withdrawn today."""
    today = f"withdrawn on {timezone.now():%Y-%m-%d}"
    assert found(staff_client, CONSENTS, "bob@fans.test") == []
    for page in pages(consent):
        html = staff_client.get(page).content.decode()
        assert address not in html, page
        if "/change/" in page:
            assert today in html, page


def test_a_fan_who_unsubscribed_from_email_is_not_found_by_their_address(staff_client, campaign):
    consent = opted_in(campaign, "bob")
    mailed = ReleaseEmail.objects.create(campaign=campaign, email="bob@fans.test", consent=consent)
    release_email.unsubscribe(mailed)  # the link in the release-day email
    assert_withdrawn_today(staff_client, consent, "bob@fans.test")


def test_an_address_unsubscribed_in_another_case_is_withdrawn_on_that_day(staff_client, campaign):
    """The release email went to the address as the email sign-up holds it (lower-cased), not as the service gave
    it with the fan's pre-save: unsubscribing withdrew the consent (whatever the case), and the console says when."""
    consent = opted_in(campaign, "bob", address="Bob@Fans.test")
    signup = EmailSignup.objects.create(campaign=campaign, email="bob@fans.test", wording_version="v1")
    mailed = ReleaseEmail.objects.create(campaign=campaign, email="bob@fans.test", signup=signup)
    release_email.unsubscribe(mailed)
    assert_withdrawn_today(staff_client, consent, "Bob@Fans.test")


def test_an_address_still_shared_is_found_and_shown(staff_client, campaign):
    consent = opted_in(campaign, "chloe")

    assert found(staff_client, CONSENTS, "chloe@fans.test") == ["chloe"]
    assert found(staff_client, FANS, "chloe@fans.test") == ["chloe"]
    for page in pages(consent)[1:]:  # the consents' list has no address column
        assert "chloe@fans.test" in staff_client.get(page).content.decode(), page


def test_when_an_address_was_unsubscribed_is_an_index_lookup(campaign):
    """Each consent shown asks whether its address was unsubscribed in the campaign, whatever its case: through
    one_release_email_whatever_the_case, not a read of the campaign's release emails."""
    from django.db import connection

    from fans.admin import WITHDRAWN_AT

    now = timezone.now()
    ReleaseEmail.objects.bulk_create(
        ReleaseEmail(campaign=campaign, email=f"fan{i}@fans.test", unsubscribed_at=now) for i in range(20_000)
    )
    opted_in(campaign, "bob", address="Fan123@Fans.test")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE fans_releaseemail")

    plan = ConsentRecord.objects.annotate(at=WITHDRAWN_AT).explain()

    assert "one_release_email_whatever_the_case" in plan, plan
