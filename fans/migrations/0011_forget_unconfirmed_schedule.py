"""Every day, forget email sign-ups whose address was never confirmed in time (fans.signups.forget_unconfirmed)."""

from django.db import migrations

NAME = "fans-forget-unconfirmed-signups"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME,
        defaults={
            "func": "fans.signups.forget_unconfirmed",
            "schedule_type": "D",  # Schedule.DAILY
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fans", "0010_email_signup_confirmation"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
