"""Roles from the migration (Label staff, Manager), the export permission, and the audit log."""

import datetime as dt

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from fans.models import Credential, Fan, Subscription
from releases.models import AuditEntry
from tests.conftest import make_campaign
from tests.releases.personas import PASSWORD, member_of

pytestmark = pytest.mark.django_db


def perms(group: str) -> set[str]:
    return {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=group).permissions.all()}


def subscribe(campaign, user_id: str, **fields) -> Subscription:
    fan = Fan.objects.create(service="spotify", service_user_id=user_id, display_name=user_id.title())
    return Subscription.objects.create(fan=fan, campaign=campaign, **fields)


def test_the_migration_creates_label_staff_and_manager_groups():
    staff, manager = perms("Label staff"), perms("Manager")
    assert {"releases.change_campaign", "releases.deliver_campaign", "releases.change_release"} <= staff
    assert {"releases.change_artist", "fans.view_subscription"} <= staff
    assert "releases.export_subscribers" not in staff
    assert "releases.view_auditentry" not in staff
    assert staff < manager
    assert {"releases.export_subscribers", "releases.view_auditentry"} <= manager


def test_label_staff_without_export_get_403_and_no_data(client):
    campaign = make_campaign()
    subscribe(campaign, "secret-fan")
    client.force_login(member_of("Label staff", "lena-staff"))
    for url in (
        reverse("admin:releases_campaign_export", args=[campaign.pk]),
        reverse("admin:releases_artist_export", args=[campaign.release.artist.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 403
        assert b"secret" not in b"".join(getattr(response, "streaming_content", [response.content]))
    assert not AuditEntry.objects.exists(), "a refused export is not an export"
    change = client.get(reverse("admin:releases_campaign_change", args=[campaign.pk]))
    assert change.status_code == 200
    assert "Export CSV" not in change.content.decode()


def test_manager_exports_and_the_export_is_audited(client):
    campaign = make_campaign()
    subscribe(campaign, "fan-a")
    subscribe(campaign, "fan-b")
    manager = member_of("Manager", "mo-manager")
    client.force_login(manager)
    assert "Export CSV" in client.get(reverse("admin:releases_campaign_change", args=[campaign.pk])).content.decode()

    response = client.get(reverse("admin:releases_campaign_export", args=[campaign.pk]))

    assert response.status_code == 200
    assert b"Fan-A" in b"".join(response.streaming_content)
    entry = AuditEntry.objects.get()
    assert (entry.user, entry.username, entry.action, entry.campaign, entry.rows) == (
        manager,
        "mo-manager",
        "export",
        campaign,
        2,
    )
    campaign.delete()
    entry.refresh_from_db()
    assert entry.campaign is None and entry.details["campaign"] == campaign.slug, "what was exported stays known"


def test_deliver_now_is_audited_and_shows_who_pressed_it(client):
    campaign = make_campaign()
    subscribe(campaign, "fan-a")
    client.force_login(member_of("Label staff", "lena-staff"))

    response = client.post(reverse("admin:releases_campaign_deliver_now", args=[campaign.pk]), follow=True)

    entry = AuditEntry.objects.get()
    assert (entry.username, entry.action, entry.campaign, entry.rows) == ("lena-staff", "deliver_now", campaign, 1)
    assert "Deliver now last pressed by <strong>lena-staff</strong>" in response.content.decode()


def test_retry_failed_requeues_only_retryable_failures_and_is_audited(client):
    campaign = make_campaign(status="done", release_in=-dt.timedelta(hours=1))  # before it, they would wait
    gave_up = subscribe(
        campaign,
        "timeouts",
        status="failed",
        attempts=settings.DELIVERY_MAX_ATTEMPTS,
        last_error=f"Gave up after {settings.DELIVERY_MAX_ATTEMPTS} attempts: Spotify did not answer in time.",
    )
    token = Credential(subscription=gave_up, authorized_at=timezone.now())  # kept for Retry failed
    token.store("a refresh token")
    token.save()
    permanent = subscribe(
        campaign, "forbidden", status="failed", attempts=1, last_error="Spotify refused the action: forbidden (403)."
    )
    revoked = subscribe(campaign, "revoked", status="revoked", attempts=1, last_error="The fan's authorization …")
    client.force_login(member_of("Label staff", "lena-staff"))
    url = reverse("admin:releases_campaign_retry_failed", args=[campaign.pk])
    confirm = client.get(url).content.decode()
    assert "2 pre-saves failed. <strong>1</strong> of them failed on temporary errors" in confirm

    response = client.post(url, follow=True)

    assert "Re-queued 1 failed pre-save" in response.content.decode()
    gave_up.refresh_from_db()
    assert (gave_up.status, gave_up.attempts) == ("pending", 0)
    assert gave_up.next_attempt_at is not None
    for untouched, status in ((permanent, "failed"), (revoked, "revoked")):
        untouched.refresh_from_db()
        assert untouched.status == status
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.rows) == ("retry_failed", 1)
    from django_q.models import OrmQ

    assert OrmQ.objects.count() == 1, "the same delivery task Deliver now queues"


def test_audit_log_is_read_only_for_managers_and_hidden_from_label_staff(client):
    campaign = make_campaign()
    staff = member_of("Label staff", "lena-staff")
    AuditEntry.objects.create(user=staff, username="lena-staff", action="deliver_now", campaign=campaign, rows=3)
    changelist = reverse("admin:releases_auditentry_changelist")

    client.force_login(staff)
    assert client.get(changelist).status_code == 403

    client.force_login(member_of("Manager", "mo-manager"))
    response = client.get(changelist)
    assert response.status_code == 200
    assert "lena-staff" in response.content.decode()
    assert client.get(reverse("admin:releases_auditentry_add")).status_code == 403
    entry = AuditEntry.objects.get()
    assert client.post(reverse("admin:releases_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403


def test_a_refused_page_is_logged_as_one_line_naming_who_and_what(client, caplog):
    """A role refused a page is expected behaviour, not a crash: the web log has Django's one 403 line, naming the
    staff member, and no traceback."""
    campaign = make_campaign()
    client.force_login(member_of("Label staff", "lena-staff"))
    for url in (
        reverse("admin:releases_campaign_export", args=[campaign.pk]),  # our view refuses
        reverse("admin:releases_auditentry_changelist"),  # Django's admin refuses
    ):
        caplog.clear()
        assert client.get(url).status_code == 403
        [line] = [record for record in caplog.records if record.name == "django.request"]
        assert (line.levelname, line.exc_info) == ("WARNING", None)
        assert line.getMessage() == f"Forbidden (Permission denied): {url} (user lena-staff)"
        assert "Traceback" not in caplog.text


def test_staff_without_any_permission_get_403_on_every_console_action(client):
    from django.contrib.auth.models import User

    campaign = make_campaign()
    subscribe(campaign, "failed-fan", status="failed", attempts=5, last_error="Spotify timed out.")
    nobody = User.objects.create_user("nobody", "nobody@label.test", "staff-password-4", is_staff=True)
    client.force_login(nobody)
    for name in ["progress", "export", "deliver_now", "retry_failed"]:
        url = reverse(f"admin:releases_campaign_{name}", args=[campaign.pk])
        assert client.get(url).status_code == 403, name
        assert client.post(url).status_code == 403, name
    assert client.get(reverse("admin:releases_artist_export", args=[campaign.release.artist.pk])).status_code == 403
    assert not AuditEntry.objects.exists()
    assert Subscription.objects.get().status == "failed"


def test_anonymous_visitors_are_sent_to_the_login_from_every_console_action(client):
    campaign = make_campaign()
    for name in ["progress", "export", "deliver_now", "retry_failed"]:
        response = client.post(reverse(f"admin:releases_campaign_{name}", args=[campaign.pk]))
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), name
    assert not AuditEntry.objects.exists()


def test_console_sign_in_attempts_are_limited_per_ip(client, settings, label_staff):
    """A password guesser gets the 429 page; within the limit, signing in works as ever."""
    settings.ADMIN_LOGIN_RATE = "3/m"
    login = reverse("admin:login")
    wrong = [client.post(login, {"username": label_staff.username, "password": "guess"}) for _ in range(2)]
    assert [a.status_code for a in wrong] == [200, 200]
    assert "Please enter the correct username and password" in wrong[0].content.decode()
    right = client.post(login, {"username": label_staff.username, "password": PASSWORD})
    assert right.status_code == 302

    refused = client.post(login, {"username": label_staff.username, "password": "guess"})

    assert refused.status_code == 429 and "Too many tries" in refused.content.decode()
    assert 1 <= int(refused["Retry-After"]) <= 60


def test_console_sign_in_with_an_unsafe_next_lands_on_the_console_index(client, label_staff):
    """An off-site `next` is refused by the login view: the staff member lands on the console's index (not off
    site, and not Django's /accounts/profile/, which this project has no page for)."""
    login = reverse("admin:login")

    response = client.post(
        f"{login}?next=//evil.example", {"username": label_staff.username, "password": PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert response.status_code == 200
