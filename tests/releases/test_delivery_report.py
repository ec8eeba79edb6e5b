"""The release-day report: once a campaign's delivery is done, staff get one email saying how it went."""

import re

import pytest
from django.utils import timezone
from django_q.models import OrmQ, Schedule

from delivery import engine
from fans.models import Credential, Fan, Subscription
from releases import report
from releases.models import Campaign
from tests.conftest import make_campaign, make_subscription

pytestmark = pytest.mark.django_db
STAFF = ["label@example.test", "manager@example.test"]


def queued_reports() -> list[int]:
    return [task.task["args"][0] for task in OrmQ.objects.all() if task.func() == engine.REPORT_TASK]


def test_a_done_campaign_mails_its_staff_one_report_with_counts_and_reasons(
    sandbox, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.DELIVERY_REPORT_EMAILS = STAFF
    settings.PUBLIC_BASE_URL = "https://presave.example.test"
    campaign = make_campaign(release_in=-timezone.timedelta(minutes=1), status="delivering")
    for user in ("alice", "bob"):
        make_subscription(campaign, sandbox, user)
    ghost = Fan.objects.create(service="spotify", service_user_id="ghost", display_name="Ghost Fan")
    revoked = Subscription.objects.create(fan=ghost, campaign=campaign)
    credential = Credential(subscription=revoked, authorized_at=timezone.now())
    credential.store("a-token-the-sandbox-never-issued")
    credential.save()

    with django_capture_on_commit_callbacks(execute=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)
        engine.finish_campaigns(Campaign.objects.filter(pk=campaign.pk))  # the sweeper, after the run: no more

    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert queued_reports() == [campaign.pk], "queued once, by the update that marked the campaign done"
    assert report.send_delivery_report(campaign.pk).endswith("sent to 2 address(es)")
    (mail,) = mailoutbox
    assert mail.to == STAFF
    assert mail.subject == "Delivered: First Light by Nova Lark — 2 of 3 pre-saves"
    assert "Delivered: 2 of 3 pre-saves" in mail.body and "Revoked:   1" in mail.body
    assert "Why pre-saves weren't delivered (failed or revoked):" in mail.body, "a revoked fan is no failure"
    console = f"https://presave.example.test/admin/releases/campaign/{campaign.pk}"
    assert f"The campaign in the console: {console}/change/" in mail.body
    assert "(https://presave.example.test/first-light/) is done." in mail.body
    links = re.findall(r"\S*/\S*", mail.body)
    assert links and all(link.strip("()").startswith("https://presave.example.test/") for link in links), links
    assert "Ghost" not in mail.body and "a-token" not in mail.body, "counts and reasons only: no fan's data"


def test_no_report_is_queued_without_addresses(sandbox, settings, django_capture_on_commit_callbacks):
    settings.DELIVERY_REPORT_EMAILS = []
    campaign = make_campaign(release_in=-timezone.timedelta(minutes=1), status="delivering")
    make_subscription(campaign, sandbox, "alice")

    with django_capture_on_commit_callbacks(execute=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)

    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert queued_reports() == []


def test_a_report_the_mail_server_refuses_is_sent_again_later(settings, mailoutbox):
    settings.DELIVERY_REPORT_EMAILS = STAFF
    campaign = make_campaign(status="done")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there

    assert "mail server failed" in report.send_delivery_report(campaign.pk)

    retry = Schedule.objects.get(name=f"delivery-report-{campaign.pk}")
    assert retry.func == engine.REPORT_TASK and retry.next_run > timezone.now()
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert report.send_delivery_report(campaign.pk).endswith("sent to 2 address(es)")  # what the retry runs
    assert len(mailoutbox) == 1


def test_the_report_links_to_retry_failed_with_a_full_address(settings, mailoutbox):
    settings.DELIVERY_REPORT_EMAILS = STAFF
    settings.PUBLIC_BASE_URL = "https://presave.example.test"
    campaign = make_campaign(status="done")
    fan = Fan.objects.create(service="spotify", service_user_id="later")
    failed = Subscription.objects.create(
        fan=fan, campaign=campaign, status="failed", attempts=settings.DELIVERY_MAX_ATTEMPTS, last_error=engine.GAVE_UP
    )
    credential = Credential(subscription=failed, authorized_at=timezone.now())
    credential.store("a-token")
    credential.save()

    report.send_delivery_report(campaign.pk)

    (mail,) = mailoutbox
    retry_url = f"https://presave.example.test/admin/releases/campaign/{campaign.pk}/retry-failed/"
    assert f'"Retry failed" puts them\nback in the queue: {retry_url}\n' in mail.body


def test_the_release_time_schedule_after_deliver_now_sends_no_second_report(
    sandbox, settings, django_capture_on_commit_callbacks
):
    """Deliver now delivered the campaign before its release time; the schedule then fires on a done campaign."""
    settings.DELIVERY_REPORT_EMAILS = STAFF
    campaign = make_campaign(release_in=timezone.timedelta(minutes=2))
    make_subscription(campaign, sandbox, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        engine.deliver_campaign(campaign.pk, fan_out=False)  # Deliver now
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert queued_reports() == [campaign.pk]

    with django_capture_on_commit_callbacks(execute=True):
        summary = engine.deliver_campaign(campaign.pk, on_schedule=True).summary()  # the release time comes

    assert "already delivered" in summary
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DONE
    assert queued_reports() == [campaign.pk], "one report, not two"


def test_the_report_counts_pre_saves_not_fans(sandbox, settings, mailoutbox):
    """One fan who pre-saved on three services is three pre-saves: the report said "3 of 4 fans" for one fan on
    three services and a cancelled pre-save. One pre-save is "1 of 1 pre-save"."""
    settings.DELIVERY_REPORT_EMAILS = STAFF
    campaign = make_campaign(release_in=-timezone.timedelta(minutes=1), status="done")
    fan = Fan.objects.create(service="spotify", service_user_id="alice")
    Subscription.objects.create(fan=fan, campaign=campaign, status=Subscription.Status.DELIVERED)

    report.send_delivery_report(campaign.pk)

    (mail,) = mailoutbox
    assert mail.subject == "Delivered: First Light by Nova Lark — 1 of 1 pre-save"
    assert "Delivered: 1 of 1 pre-save\n" in mail.body and " fans" not in mail.body
