"""Campaigns' release-time schedules run `deliver_on_schedule`, which does not start a campaign before its release
time (the schedules made from now on do; this moves those made before)."""

from django.db import migrations

OLD, NEW = "delivery.tasks.deliver_campaign", "delivery.tasks.deliver_on_schedule"


def move(apps, old: str, new: str) -> None:
    schedules = apps.get_model("django_q", "Schedule").objects.filter(name__startswith="deliver-campaign-", func=old)
    schedules.update(func=new)


class Migration(migrations.Migration):
    dependencies = [("delivery", "0005_attempts_cascade_in_the_database"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]

    operations = [
        migrations.RunPython(lambda apps, schema_editor: move(apps, OLD, NEW), lambda apps, schema_editor: move(apps, NEW, OLD))
    ]
