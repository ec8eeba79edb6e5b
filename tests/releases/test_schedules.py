"""The release-time schedules (delivery, release-day email) as staff edit, move and delete campaigns."""

import datetime as dt

import pytest
from django.utils import timezone
from django_q.models import Schedule

from delivery import scheduling
from fans import release_email
from releases.models import Campaign
from tests.conftest import make_campaign

pytestmark = pytest.mark.django_db


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run what a block leaves for on_commit (the schedules are synced once a change is committed)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_deleting_a_campaign_removes_its_schedules(committed):
    with committed():
        campaign = make_campaign()
    release_email.follow_up(campaign.pk, timezone.now() + release_email.RETRY_AFTER)
    names = [
        scheduling.schedule_name(campaign.pk),
        release_email.schedule_name(campaign.pk),
        release_email.next_run_schedule_name(campaign.pk),
    ]
    assert Schedule.objects.filter(name__in=names).count() == 3

    with committed():
        campaign.delete()

    assert not Schedule.objects.filter(name__in=names).exists(), "nothing fires for a campaign that is gone"


def test_moving_the_release_into_the_past_fires_the_waiting_email_now(committed):
    with committed():
        campaign = make_campaign(release_in=dt.timedelta(days=2))
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DONE)  # as Deliver now leaves it
    release = campaign.release
    release.release_date = (timezone.now() - dt.timedelta(hours=1)).date()  # it came out early
    release.release_time = (timezone.now() - dt.timedelta(hours=1)).time().replace(microsecond=0)

    with committed():
        release.save()

    schedule = Schedule.objects.get(name=release_email.schedule_name(campaign.pk))
    assert (schedule.next_run, schedule.repeats) == (release.release_at, 1), "not two days late"


def test_an_email_schedule_that_fired_is_never_re_armed(committed):
    with committed():
        campaign = make_campaign(release_in=dt.timedelta(days=2))
    Schedule.objects.filter(name=release_email.schedule_name(campaign.pk)).update(repeats=0)  # it fired
    release = campaign.release
    release.release_date = (timezone.now() - dt.timedelta(days=1)).date()

    with committed():
        release.save()

    schedule = Schedule.objects.get(name=release_email.schedule_name(campaign.pk))
    assert schedule.repeats == 0 and schedule.next_run != release.release_at


def test_a_campaign_out_before_it_had_an_email_schedule_gets_none(committed):
    with committed():
        campaign = make_campaign(release_in=dt.timedelta(days=-30), status="done")
    Schedule.objects.filter(name=release_email.schedule_name(campaign.pk)).delete()

    with committed():
        campaign.save()

    assert not Schedule.objects.filter(name=release_email.schedule_name(campaign.pk)).exists()
