"""Migration fans 0007: campaigns made before the release-day email get its schedule, run on the real database."""

import datetime as dt

import pytest
from django_q.models import Schedule

from fans.release_email import schedule_name
from tests.conftest import make_campaign
from tests.migrations import back_to_the_latest_after, migrate  # noqa: F401 (fixture)

BEFORE = ("fans", "0006_subscription_by_day_index")
MIGRATION = ("fans", "0007_release_email_schedules")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_after")
def test_every_upcoming_non_draft_campaign_gets_its_release_email_schedule():
    # Made before migrating back: today's Campaign has columns added after it.
    live = make_campaign(slug="live")
    delivered_early = make_campaign(slug="delivered-early", status="done")
    draft = make_campaign(slug="draft", status="draft")
    out = make_campaign(slug="out", status="done", release_in=dt.timedelta(days=-1))
    kept = make_campaign(slug="kept")
    migrate(BEFORE)
    # As before the release-day email existed: no schedules but one a later save made.
    earlier = kept.release.release_at - dt.timedelta(hours=1)
    Schedule.objects.filter(name__startswith="release-email-").exclude(name=schedule_name(kept.pk)).delete()
    Schedule.objects.filter(name=schedule_name(kept.pk)).update(next_run=earlier)

    migrate(MIGRATION)

    for campaign in (live, delivered_early):
        schedule = Schedule.objects.get(name=schedule_name(campaign.pk))
        assert (schedule.func, schedule.args) == ("fans.release_email.send_release_emails", repr((campaign.pk,)))
        assert (schedule.schedule_type, schedule.repeats) == (Schedule.ONCE, 1)
        assert schedule.next_run == campaign.release.release_at
    assert not Schedule.objects.filter(name__in=[schedule_name(draft.pk), schedule_name(out.pk)]).exists()
    kept_schedule = Schedule.objects.get(name=schedule_name(kept.pk))
    assert kept_schedule.next_run == earlier, "an existing one is left as is"
