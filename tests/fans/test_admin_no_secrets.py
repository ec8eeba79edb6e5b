"""No admin page shows a fan's token, its sealed bytes, its key id or a consent's revoke token."""

import base64

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from delivery.models import DeliveryAttempt
from fans.models import ConsentRecord, Credential, Fan, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def secrets(campaign, sandbox):
    """A fan who pre-saved with a real sandbox token, its consent record and one delivery attempt."""
    tokens = sandbox.authorize("alice", "user-library-modify")
    fan = Fan.objects.create(service="spotify", service_user_id="alice", display_name="Alice", email="a@fans.test")
    subscription = Subscription.objects.create(fan=fan, campaign=campaign)
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(tokens["refresh_token"])
    credential.save()
    consent = ConsentRecord(
        subscription=subscription,
        campaign=campaign,
        service="spotify",
        service_user_id="alice",
        scopes=["user-library-modify"],
        wording_version="v1",
    )
    revoke_token = consent.issue_revoke_token()
    consent.save()
    DeliveryAttempt.objects.create(
        subscription=subscription, at=timezone.now(), call="refresh", outcome="retry", message="Timed out."
    )
    wrapped, sealed = bytes(credential.wrapped_key), bytes(credential.ciphertext)
    return {
        "refresh token": tokens["refresh_token"],
        "access token": tokens["access_token"],
        "revoke token": revoke_token,
        "revoke token hash": consent.revoke_token_hash,
        "key id": f"key {credential.kek_id}",
        "kek_id field": "kek_id",
        "ciphertext (hex)": sealed.hex()[:32],
        "ciphertext (base64)": base64.b64encode(sealed).decode()[:32],
        "wrapped key (hex)": wrapped.hex()[:32],
        "wrapped key (base64)": base64.b64encode(wrapped).decode()[:32],
    }


def admin_pages() -> list[str]:
    """Every changelist, and every object's change, history and delete page, of every registered model."""
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        opts = model._meta
        urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        for pk in model.objects.values_list("pk", flat=True):
            for view in ("change", "history", "delete"):
                urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[pk]))
    return urls


def forbidden(url: str) -> bool:
    read_only = ("/fans/subscription/", "/fans/consentrecord/", "/delivery/deliveryattempt/")
    return url.endswith("/delete/") and any(part in url for part in read_only)


def test_credentials_are_not_in_the_admin(client, label_staff):
    client.force_login(label_staff)
    assert Credential not in admin.site._registry
    assert client.get("/admin/fans/credential/").status_code == 404


def test_no_admin_page_shows_a_token_or_sealed_bytes(client, superuser, secrets):
    client.force_login(superuser)  # every page there is
    pages = admin_pages()
    assert len(pages) > 20, pages

    for url in pages:
        response = client.get(url)
        # Read-only admins refuse their delete pages; every other page renders.
        assert response.status_code == (403 if forbidden(url) else 200), url
        html = response.content.decode()
        for name, secret in secrets.items():
            assert secret not in html, f"{name} shown on {url}"
