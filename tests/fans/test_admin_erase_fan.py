"""Deleting a fan in the staff console is the fan's own "erase everything" (fans.privacy.erase), audited."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from fans.models import ConsentRecord, Credential, Fan, FunnelEvent, Subscription
from releases.models import AuditEntry
from tests.fans.test_privacy import alice  # noqa: F401 - the fixture: Alice pre-saved two campaigns, with email

pytestmark = pytest.mark.django_db


def delete_url(fan: Fan) -> str:
    return reverse("admin:fans_fan_delete", args=[fan.pk])


def assert_erased(events_before: int) -> None:
    assert not Fan.objects.filter(display_name="Alice").exists()
    assert not Subscription.objects.exists() and not Credential.objects.exists()
    consents = ConsentRecord.objects.all()
    assert consents.count() == 2, "that a consent was given stays, without who"
    assert set(consents.values_list("service_user_id", "display_name", "email", "ip_address", "user_agent")) == {
        ("", "", "", None, "")
    }
    assert FunnelEvent.objects.count() == events_before, "anonymous counts stay"
    assert not FunnelEvent.objects.filter(subscription__isnull=False).exists()
    names = set(LogEntry.objects.values_list("object_repr", flat=True))
    assert names == {"(erased)"}, names
    assert not [m for m in LogEntry.objects.values_list("change_message", flat=True) if "Alice" in m]


def test_deleting_a_fan_in_the_console_erases_them_as_their_own_erase_everything_does(client, alice, superuser):  # noqa: F811
    events_before = FunnelEvent.objects.count()
    client.force_login(superuser)

    page = client.get(delete_url(alice)).content.decode()
    assert "erase everything" in page
    response = client.post(delete_url(alice), {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert "Alice" not in response.content.decode()
    assert LogEntry.objects.filter(object_id=str(alice.pk), action_flag=3).exists(), "the deletion is in history"
    assert_erased(events_before)
    entry = AuditEntry.objects.get(action=AuditEntry.Action.ERASE_FAN)
    assert entry.username == "sam" and entry.rows == 2
    assert "Alice" not in str(entry.details) and "alice@" not in str(entry.details)
    audit_log = client.get(reverse("admin:releases_auditentry_changelist")).content.decode()
    assert "Erase a fan" in audit_log


def test_the_bulk_delete_selected_erases_each_fan(client, alice, superuser):  # noqa: F811
    events_before = FunnelEvent.objects.count()
    client.force_login(superuser)
    changelist = reverse("admin:fans_fan_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [alice.pk]}

    page = client.post(changelist, chosen).content.decode()
    assert "erase everything" in page
    client.post(changelist, {**chosen, "post": "yes"})

    assert_erased(events_before)
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ERASE_FAN).count() == 1


def test_label_staff_without_the_permission_cannot_erase_a_fan(client, alice, label_staff):  # noqa: F811
    client.force_login(label_staff)

    assert client.get(delete_url(alice)).status_code == 403
    assert client.post(delete_url(alice), {"post": "yes"}).status_code == 403

    assert Fan.objects.filter(pk=alice.pk).exists()
    assert Subscription.objects.filter(fan=alice).count() == 2
