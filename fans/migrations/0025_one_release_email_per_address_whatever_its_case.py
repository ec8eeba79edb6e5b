"""One release-day email per address and campaign whatever its case: a unique constraint on the lower-cased address
(0024 made the emails of one address in different cases one). Its index is built without locking the release
emails against writes while it builds (PostgreSQL's CREATE UNIQUE INDEX CONCURRENTLY, only outside a transaction:
this migration is not atomic; the SQLite demo builds it the ordinary way), beside the case-sensitive constraint,
which holds until it does and goes after, with release_email_by_address (0023): the new index holds the same."""

from django.db import migrations, models
from django.db.models.functions import Lower

CONSTRAINT = models.UniqueConstraint(Lower("email"), "campaign", name="one_release_email_whatever_the_case")


def build(apps, schema_editor):
    model = apps.get_model("fans", "ReleaseEmail")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_constraint(model, CONSTRAINT)
        return
    sql = str(CONSTRAINT.create_sql(model, schema_editor))
    assert sql.startswith("CREATE UNIQUE INDEX "), sql
    # One a build stopped halfway left (invalid: PostgreSQL keeps it), so that the migration can run again.
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{CONSTRAINT.name}"')
    schema_editor.execute(sql.replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY ", 1))


def drop(apps, schema_editor):
    model = apps.get_model("fans", "ReleaseEmail")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_constraint(model, CONSTRAINT)
        return
    schema_editor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{CONSTRAINT.name}"')


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("fans", "0024_one_release_email_per_address")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddConstraint(model_name="releaseemail", constraint=CONSTRAINT)],
            database_operations=[migrations.RunPython(build, drop)],
        ),
        migrations.RemoveConstraint(model_name="releaseemail", name="one_release_email_per_address"),
        migrations.RemoveIndex(model_name="releaseemail", name="release_email_by_address"),
    ]
