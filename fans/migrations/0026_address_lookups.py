"""The privacy pages opened by an address find its consent records and the streaming accounts carrying it through
an index on the lower-cased address each (fans.privacy compares lower(email), as they hold it), not by reading
every consent record and fan."""

from django.db import migrations, models
from django.db.models.functions import Lower


class Migration(migrations.Migration):
    dependencies = [("fans", "0025_one_release_email_per_address_whatever_its_case")]

    operations = [
        migrations.AddIndex(model_name="consentrecord", index=models.Index(Lower("email"), name="consent_by_address")),
        migrations.AddIndex(model_name="fan", index=models.Index(Lower("email"), name="fan_by_address")),
    ]
