"""Consents erased before erasure cut their times to the day and made their revoke links unusable (fans.privacy):
do the same to them now. An erased consent is one whose service user id was blanked; its time with
microseconds matched the fan's funnel events', and its old revoke link still said what was cancelled."""

import secrets

from django.db import migrations
from django.db.models.functions import TruncDay


def lead_nowhere(apps, schema_editor):
    ConsentRecord = apps.get_model("fans", "ConsentRecord")
    erased = ConsentRecord.objects.filter(service_user_id="").exclude(revoke_token_hash__startswith="erased:")
    ids = list(erased.values_list("pk", flat=True))
    ConsentRecord.objects.filter(pk__in=ids).update(created_at=TruncDay("created_at"), revoked_at=TruncDay("revoked_at"))
    unusable = [ConsentRecord(pk=pk, revoke_token_hash=f"erased:{secrets.token_hex(28)}") for pk in ids]
    ConsentRecord.objects.bulk_update(unusable, ["revoke_token_hash"], batch_size=1000)


class Migration(migrations.Migration):
    dependencies = [("fans", "0016_retention_schedule")]

    operations = [migrations.RunPython(lead_nowhere, migrations.RunPython.noop)]
