"""A consent is opted in to email only where it holds an address we may email: Apple Music fans who ticked the
email box (Apple shares no address) were saved opted in without one, and exported and filtered as opted in.
Such consents are opted in no more (erased ones, whose address was blanked, keep what the fan ticked), and an
address no consent shares any more is forgotten, as fans.revocation.forget_unshared_emails does."""

from django.db import migrations
from django.db.models import Exists, OuterRef


def opted_in_means_an_address(apps, schema_editor):
    Fan = apps.get_model("fans", "Fan")
    ConsentRecord = apps.get_model("fans", "ConsentRecord")
    ConsentRecord.objects.filter(email_opt_in=True, email="").exclude(service_user_id="").update(email_opt_in=False)
    sharing = ConsentRecord.objects.filter(
        email_opt_in=True, revoked_at__isnull=True, subscription__fan=OuterRef("pk")
    )  # ConsentRecordQuerySet.SHARING_EMAIL
    Fan.objects.exclude(email="").exclude(Exists(sharing)).update(email="")


class Migration(migrations.Migration):
    dependencies = [("fans", "0019_subscription_done_calls_unlimited")]

    operations = [migrations.RunPython(opted_in_means_an_address, migrations.RunPython.noop)]
