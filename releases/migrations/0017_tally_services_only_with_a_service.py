"""The funnel's `funnel:<kind>:service:<service>` tally (0016) counts only the events that name a service: clicks,
authorizations, smart-link clicks. Page views name none, and 0016 counted every one of them again under a
`funnel:view:service:` key that nothing reads, a row each batch of page views (the campaign page's hot path)
updated for nothing. Those rows go. PostgreSQL only, like the other tallies."""

import importlib

from django.db import migrations

BREAKDOWNS = importlib.import_module("releases.migrations.0008_tally_breakdowns")
VISITORS = importlib.import_module("releases.migrations.0011_tally_visitor_days")
SERVICES = importlib.import_module("releases.migrations.0016_tally_services")

SERVICE_KEY = SERVICES.FUNNEL_KEYS[-1]
NO_SERVICE = r"key ~ '^funnel:[a-z_]+:service:$'"  # funnel:<kind>:service: and nothing after


def rows(table: str, n: int) -> str:
    """0008's funnel rows from `table`, and the service's for the events that name one."""
    return (
        f"{BREAKDOWNS.rows(table, BREAKDOWNS.FUNNEL_KEYS, n)} "
        f"UNION ALL SELECT campaign_id, {SERVICE_KEY} AS key, {n} AS n FROM {table} WHERE service <> ''"
    )


def funnel_function() -> str:
    """0016's funnel function (0011's, its inserts also counting the visitors first seen), with `rows`."""
    new, old = rows("new_rows", 1), rows("old_rows", -1)
    upsert = BREAKDOWNS.UPSERT
    return f"""
CREATE OR REPLACE FUNCTION {VISITORS.FUNNEL}() RETURNS trigger LANGUAGE plpgsql {VISITORS.INDEX_LOOKUPS} AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {upsert.format(rows=new + " UNION ALL " + VISITORS.FIRST_SEEN)}
    ELSIF TG_OP = 'DELETE' THEN {upsert.format(rows=old)}
    ELSE {upsert.format(rows=new + " UNION ALL " + old)}
    END IF;
    RETURN NULL;
END $$;
"""


def count_only_services(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(funnel_function())
    schema_editor.execute(f"DELETE FROM releases_campaigntally WHERE {NO_SERVICE}")


def count_every_event(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(SERVICES.funnel_function(SERVICES.FUNNEL_KEYS))
    schema_editor.execute(
        f"INSERT INTO releases_campaigntally (campaign_id, key, count) "
        f"SELECT campaign_id, {SERVICE_KEY}, count(*) FROM fans_funnelevent WHERE service = '' GROUP BY 1, 2 "
        f"ON CONFLICT (campaign_id, key) DO UPDATE SET count = EXCLUDED.count"
    )


class Migration(migrations.Migration):
    dependencies = [("releases", "0016_tally_services")]

    operations = [migrations.RunPython(count_only_services, count_every_event)]
