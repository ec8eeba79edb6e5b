from django.db import migrations, models
from django.db.models import F


def confirm_earlier_signups(apps, schema_editor):
    """Sign-ups made before confirmation existed keep counting: they were taken under the rules of their day."""
    EmailSignup = apps.get_model("fans", "EmailSignup")
    EmailSignup.objects.filter(confirmed_at__isnull=True).update(confirmed_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("fans", "0009_subscription_queue_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="emailsignup",
            name="confirmed_at",
            field=models.DateTimeField(
                blank=True, help_text="When the address was confirmed by the link mailed to it.", null=True
            ),
        ),
        migrations.RunPython(confirm_earlier_signups, migrations.RunPython.noop),
    ]
