"""One release-day email per address and campaign whatever its case: the unique constraint on the lower-cased
address (0024 made the emails of one address in different cases one). Its index is release_email_by_address's
(the lower-cased address, then the campaign: 0023), which goes."""

from django.db import migrations, models
from django.db.models.functions import Lower


class Migration(migrations.Migration):
    dependencies = [("fans", "0024_one_release_email_per_address")]

    operations = [
        migrations.RemoveConstraint(model_name="releaseemail", name="one_release_email_per_address"),
        migrations.RemoveIndex(model_name="releaseemail", name="release_email_by_address"),
        migrations.AddConstraint(
            model_name="releaseemail",
            constraint=models.UniqueConstraint(Lower("email"), models.F("campaign"), name="one_release_email_per_address"),
        ),
    ]
