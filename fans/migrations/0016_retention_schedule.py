"""Every day, forget personal data past its time (fans.retention.forget_expired), which takes over the daily
forgetting of unconfirmed email sign-ups (migration 0011's schedule)."""

from django.db import migrations

NAME = "fans-retention"
OLD_NAME = "fans-forget-unconfirmed-signups"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=OLD_NAME).delete()
    Schedule.objects.update_or_create(
        name=NAME,
        defaults={"func": "fans.retention.forget_expired", "schedule_type": "D", "repeats": -1},  # D: DAILY
    )


def remove_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name=NAME).delete()
    Schedule.objects.update_or_create(
        name=OLD_NAME,
        defaults={"func": "fans.signups.forget_unconfirmed", "schedule_type": "D", "repeats": -1},
    )


class Migration(migrations.Migration):
    dependencies = [("fans", "0015_forget_unshared_emails")]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
