"""The privacy pages opened by an address find its consent records and the streaming accounts carrying it through
an index on the lower-cased address each (fans.privacy compares lower(email), as they hold it), not by reading
every consent record and fan. Built without locking those tables against writes while they build (PostgreSQL's
CREATE INDEX CONCURRENTLY, only outside a transaction: this migration is not atomic); the SQLite demo builds them
the ordinary way."""

from django.db import migrations, models
from django.db.models.functions import Lower

INDEXES = {
    "consentrecord": models.Index(Lower("email"), name="consent_by_address"),
    "fan": models.Index(Lower("email"), name="fan_by_address"),
}


def concurrently(schema_editor) -> dict:
    return {"concurrently": True} if schema_editor.connection.vendor == "postgresql" else {}


def build(apps, schema_editor):
    for model_name, index in INDEXES.items():
        schema_editor.add_index(apps.get_model("fans", model_name), index, **concurrently(schema_editor))


def drop(apps, schema_editor):
    for model_name, index in INDEXES.items():
        schema_editor.remove_index(apps.get_model("fans", model_name), index, **concurrently(schema_editor))


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("fans", "0025_one_release_email_per_address_whatever_its_case")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name=model_name, index=index) for model_name, index in INDEXES.items()
            ],
            database_operations=[migrations.RunPython(build, drop)],
        ),
    ]
