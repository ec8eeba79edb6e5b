"""A subscription's delivery attempts are deleted with it by the database too (PostgreSQL).

Django deletes a subscription's attempts itself (`on_delete=CASCADE` collects them first), but it only sees
the attempts committed when it looks: an attempt the delivery engine commits in between (it records a batch
while staff delete a fan, say) made the deletion fail at commit on the foreign key. With `ON DELETE CASCADE`
the database deletes those too. Django knows nothing of it: an AlterField of `DeliveryAttempt.subscription`
that recreates the constraint must add it back (delivery/models.py says so beside the field).
"""

from django.db import migrations

TABLE, COLUMN, REFERENCED = "delivery_deliveryattempt", "subscription_id", "fans_subscription"


def foreign_keys(cursor) -> list[str]:
    cursor.execute(
        "SELECT c.conname FROM pg_constraint AS c JOIN pg_attribute AS a "
        "ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey) "
        "WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND a.attname = %s AND c.confrelid = %s::regclass",
        [TABLE, COLUMN, REFERENCED],
    )
    return [name for (name,) in cursor.fetchall()]


def recreate(on_delete: str):
    def operation(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            names = foreign_keys(cursor)
        quote = schema_editor.quote_name
        for name in names:
            schema_editor.execute(
                f"ALTER TABLE {quote(TABLE)} DROP CONSTRAINT {quote(name)}, ADD CONSTRAINT {quote(name)} "
                f"FOREIGN KEY ({quote(COLUMN)}) REFERENCES {quote(REFERENCED)} (id) {on_delete} "
                "DEFERRABLE INITIALLY DEFERRED"
            )

    return operation


class Migration(migrations.Migration):
    dependencies = [("delivery", "0004_drop_indexes_covered_by_composites")]

    operations = [migrations.RunPython(recreate("ON DELETE CASCADE"), recreate("ON DELETE NO ACTION"))]
