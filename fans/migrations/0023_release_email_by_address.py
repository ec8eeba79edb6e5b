"""The campaign's release emails to an address whatever its case, by an index on the lower-cased address (the
admin's WITHDRAWN_AT). Built without locking the release emails against writes while it builds (PostgreSQL's
CREATE INDEX CONCURRENTLY, only outside a transaction: this migration is not atomic); the SQLite demo builds it
the ordinary way."""

from django.db import migrations, models
from django.db.models.functions import Lower

INDEX = models.Index(Lower("email"), "campaign", name="release_email_by_address")


def concurrently(schema_editor) -> dict:
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


def build(apps, schema_editor):
    schema_editor.add_index(apps.get_model("fans", "ReleaseEmail"), INDEX, **concurrently(schema_editor))


def drop(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("fans", "ReleaseEmail"), INDEX, **concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("fans", "0022_one_signup_per_address_whatever_its_case"),
        ("releases", "0017_tally_services_only_with_a_service"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="releaseemail", index=INDEX)],
            database_operations=[migrations.RunPython(build, drop)],
        ),
    ]
