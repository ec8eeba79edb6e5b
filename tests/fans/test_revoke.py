"""Revoking a pre-save with the one-click link: GET asks, POST revokes, twice is harmless."""

import pytest
from django.urls import reverse
from django.utils import timezone

from fans import consent
from fans.models import ConsentRecord, Credential, Fan, Subscription
from tests.conftest import make_campaign, make_subscription

pytestmark = pytest.mark.django_db


def presaved(campaign, sandbox, user_id: str = "alice") -> tuple[Subscription, str]:
    """A fan's pending subscription with its credential and consent record; returns it and the revoke token."""
    subscription = make_subscription(campaign, sandbox, user_id)
    record = ConsentRecord(
        subscription=subscription,
        campaign=campaign,
        service="spotify",
        service_user_id=user_id,
        scopes=["user-library-modify"],
        wording_version=consent.WORDING_VERSION,
    )
    token = record.issue_revoke_token()
    record.save()
    return subscription, token


def revoke_url(token: str) -> str:
    return reverse("fans:revoke", args=[token])


def text(response) -> str:
    return response.content.decode().replace("&#x27;", "'")


def test_link_shows_a_confirm_button_and_changes_nothing(client, campaign, sandbox):
    subscription, token = presaved(campaign, sandbox)

    response = client.get(revoke_url(token))

    assert response.status_code == 200
    html = text(response)
    assert "Cancel your pre-save?" in html
    assert f'<form method="post" action="{revoke_url(token)}">' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert 'id="confirm-revoke"' in html
    subscription.refresh_from_db()
    assert subscription.status == "pending"
    assert Credential.objects.filter(subscription=subscription).exists()
    assert ConsentRecord.objects.get().revoked_at is None


def test_confirming_revokes_and_destroys_the_token(client, campaign, sandbox):
    subscription, token = presaved(campaign, sandbox)

    response = client.post(revoke_url(token))

    assert response.status_code == 200
    assert "Pre-save cancelled" in text(response)
    subscription.refresh_from_db()
    assert subscription.status == "revoked"
    assert not Credential.objects.filter(subscription=subscription).exists()
    assert ConsentRecord.objects.get().revoked_at is not None


def test_revoking_twice_says_it_is_already_revoked(client, campaign, sandbox):
    _, token = presaved(campaign, sandbox)
    client.post(revoke_url(token))
    revoked_at = ConsentRecord.objects.get().revoked_at

    again = client.post(revoke_url(token))
    visit = client.get(revoke_url(token))

    for response in (again, visit):
        assert response.status_code == 200
        assert "Already cancelled" in text(response)
        assert 'id="confirm-revoke"' not in text(response)
    assert ConsentRecord.objects.get().revoked_at == revoked_at


def test_revoking_withdraws_every_consent_of_the_subscription(client, campaign, sandbox):
    subscription, old_token = presaved(campaign, sandbox)
    newer = ConsentRecord(
        subscription=subscription,
        campaign=campaign,
        service="spotify",
        service_user_id="alice",
        wording_version=consent.WORDING_VERSION,
    )
    newer_token = newer.issue_revoke_token()
    newer.save()

    client.post(revoke_url(old_token))

    assert not ConsentRecord.objects.filter(revoked_at__isnull=True).exists()
    assert "Already cancelled" in text(client.get(revoke_url(newer_token)))


def test_delivered_presave_says_it_was_already_saved(client, campaign, sandbox):
    subscription, token = presaved(campaign, sandbox)
    Subscription.objects.filter(pk=subscription.pk).update(status="delivered", delivered_at=timezone.now())

    confirm = client.get(revoke_url(token))
    done = client.post(revoke_url(token))

    assert "was already saved to your Spotify library" in text(confirm)
    assert "can't undo that" in text(confirm)
    assert "already saved to your Spotify library before you cancelled" in text(done)
    subscription.refresh_from_db()
    assert subscription.status == "delivered"  # what happened stays recorded
    assert ConsentRecord.objects.get().revoked_at is not None
    assert not Credential.objects.filter(subscription=subscription).exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_unknown_token_is_not_found(client, campaign, sandbox, method):
    presaved(campaign, sandbox)

    response = getattr(client, method)(revoke_url("not-a-real-token"))

    assert response.status_code == 404
    assert "doesn't match any pre-save" in text(response)
    assert Subscription.objects.get().status == "pending"


def test_the_fans_address_goes_with_their_last_email_consent(client, sandbox):
    """Staff look fans up by address in the console: an address whose every email consent was withdrawn is
    no longer held (nor shown, searched, mailed or exported)."""
    first, second = make_campaign(), make_campaign(slug="second-light")
    one, one_token = presaved(first, sandbox)
    two, two_token = presaved(second, sandbox)
    ConsentRecord.objects.update(email_opt_in=True, email="alice@sandbox.test")
    Fan.objects.update(email="alice@sandbox.test")

    client.post(revoke_url(one_token))
    assert Fan.objects.get().email == "alice@sandbox.test", "the other pre-save still shares it"

    client.post(revoke_url(two_token))
    assert Fan.objects.get().email == ""
