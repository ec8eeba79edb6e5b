"""Campaigns made before the release-day email existed: give each its `release-email-<id>` schedule.

The same rule as `fans.release_email.sync_schedule` (which keeps it in step from then on): every campaign that
is not a draft and whose release is still to come; a schedule already there is left as it is.
"""

from django.db import migrations
from django.utils import timezone


def schedule_release_emails(apps, schema_editor):
    Campaign = apps.get_model("releases", "Campaign")
    Schedule = apps.get_model("django_q", "Schedule")
    upcoming = Campaign.objects.exclude(status="draft").filter(release__release_at__gt=timezone.now())
    for campaign_id, release_at in upcoming.values_list("pk", "release__release_at"):
        Schedule.objects.get_or_create(
            name=f"release-email-{campaign_id}",
            defaults={
                "func": "fans.release_email.send_release_emails",
                "args": repr((campaign_id,)),
                "schedule_type": "O",  # Schedule.ONCE
                "repeats": 1,
                "next_run": release_at,
            },
        )


class Migration(migrations.Migration):
    dependencies = [
        ("fans", "0006_subscription_by_day_index"),
        ("releases", "0008_tally_breakdowns"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(schedule_release_emails, migrations.RunPython.noop)]
