"""One email-only sign-up per address and campaign whatever its case: the unique constraint on the lower-cased
address (0021 made the sign-ups of one address in different cases one)."""

from django.db import migrations, models
from django.db.models.functions import Lower


class Migration(migrations.Migration):
    dependencies = [
        ("fans", "0021_one_signup_per_address"),
        ("releases", "0015_playlist_name_plain_text"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="emailsignup", name="one_signup_per_email"),
        migrations.AddConstraint(
            model_name="emailsignup",
            constraint=models.UniqueConstraint(Lower("email"), models.F("campaign"), name="one_signup_per_email"),
        ),
    ]
