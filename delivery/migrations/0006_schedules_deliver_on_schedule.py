"""Campaigns' release-time schedules run `deliver_on_schedule`, which does not start a campaign before its release
time (the schedules made from now on do; this moves those made before)."""

from django.db import migrations

OLD, NEW = "delivery.tasks.deliver_campaign", "delivery.tasks.deliver_on_schedule"


def schedules(apps, func: str):
    return apps.get_model("django_q", "Schedule").objects.filter(name__startswith="deliver-campaign-", func=func)


def forwards(apps, schema_editor):
    schedules(apps, OLD).update(func=NEW)


def backwards(apps, schema_editor):
    schedules(apps, NEW).update(func=OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("delivery", "0005_attempts_cascade_in_the_database"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
