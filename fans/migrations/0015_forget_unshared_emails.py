"""Fans' addresses that no consent shares any more (every email consent revoked or unsubscribed before
fans.revocation.forget_unshared_emails existed) are forgotten, as they now are at the moment of withdrawal."""

from django.db import migrations
from django.db.models import Exists, OuterRef


def forget_unshared_emails(apps, schema_editor):
    Fan = apps.get_model("fans", "Fan")
    ConsentRecord = apps.get_model("fans", "ConsentRecord")
    sharing = ConsentRecord.objects.filter(
        email_opt_in=True, revoked_at__isnull=True, subscription__fan=OuterRef("pk")
    )  # ConsentRecordQuerySet.SHARING_EMAIL
    Fan.objects.exclude(email="").exclude(Exists(sharing)).update(email="")


class Migration(migrations.Migration):
    dependencies = [("fans", "0014_subscription_done_calls")]

    operations = [migrations.RunPython(forget_unshared_emails, migrations.RunPython.noop)]
