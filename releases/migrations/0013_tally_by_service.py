"""The tallies count by streaming service too, for the campaign page's "By service" (releases.analytics.by_service),
which counted a campaign's rows (joining every subscription to its fan) at each view:

- `service:<service>:<status>`: subscriptions by their fan's service and status. The fan's service is in fans_fan,
  so the trigger looks each row's fan up by its primary key: on inserts and deletes, and on updates only for the
  rows whose status, campaign or fan changed (a delivery's claims, which touch only the lease, look up nothing);
- `funnel:<kind>:service:<service>`: funnel events naming a service (clicks, authorizations, smart-link clicks).

PostgreSQL only, like the other tallies; elsewhere the console counts with a query.
"""

import importlib

from django.db import migrations

BREAKDOWNS = importlib.import_module("releases.migrations.0008_tally_breakdowns")
VISITORS = importlib.import_module("releases.migrations.0011_tally_visitor_days")
SUBSCRIPTIONS, FUNNEL = "releases_tally_subscriptions", "releases_tally_funnel"

SERVICE_KEY = "'service:' || f.service || ':' || {row}.status"
FUNNEL_SERVICE_KEY = "'funnel:' || kind || ':service:' || service"


def by_service(table: str, n: int) -> str:
    return (
        f"SELECT t.campaign_id, {SERVICE_KEY.format(row='t')} AS key, {n} AS n "
        f"FROM {table} AS t JOIN fans_fan AS f ON f.id = t.fan_id"
    )


def changed_by_service(side: str, n: int) -> str:
    """An update's rows whose counted columns changed, as they were (`side` o, counted -1) or are now (n, +1)."""
    return (
        f"SELECT {side}.campaign_id, {SERVICE_KEY.format(row=side)} AS key, {n} AS n "
        "FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id JOIN fans_fan AS f ON f.id = "
        f"{side}.fan_id WHERE (o.status, o.campaign_id, o.fan_id) IS DISTINCT FROM (n.status, n.campaign_id, n.fan_id)"
    )


def funnel_by_service(table: str, n: int) -> str:
    return f"SELECT campaign_id, {FUNNEL_SERVICE_KEY} AS key, {n} AS n FROM {table} WHERE service <> ''"


def function(name: str, inserted: str, deleted: str, updated: str) -> str:
    # Index lookups of fans_fan and fans_funnelevent, always: PL/pgSQL keeps a statement's first plan (0011).
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql {VISITORS.INDEX_LOOKUPS} AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {BREAKDOWNS.UPSERT.format(rows=inserted)}
    ELSIF TG_OP = 'DELETE' THEN {BREAKDOWNS.UPSERT.format(rows=deleted)}
    ELSE {BREAKDOWNS.UPSERT.format(rows=updated)}
    END IF;
    RETURN NULL;
END $$;
"""


def subscription_function() -> str:
    keys = BREAKDOWNS.SUBSCRIPTION_KEYS
    new, old = BREAKDOWNS.rows("new_rows", keys, 1), BREAKDOWNS.rows("old_rows", keys, -1)
    return function(
        SUBSCRIPTIONS,
        inserted=f"{new} UNION ALL {by_service('new_rows', 1)}",
        deleted=f"{old} UNION ALL {by_service('old_rows', -1)}",
        updated=f"{new} UNION ALL {old} UNION ALL {changed_by_service('n', 1)} UNION ALL {changed_by_service('o', -1)}",
    )


def funnel_function() -> str:
    keys = BREAKDOWNS.FUNNEL_KEYS
    new = f"{BREAKDOWNS.rows('new_rows', keys, 1)} UNION ALL {funnel_by_service('new_rows', 1)}"
    old = f"{BREAKDOWNS.rows('old_rows', keys, -1)} UNION ALL {funnel_by_service('old_rows', -1)}"
    return function(FUNNEL, inserted=f"{new} UNION ALL {VISITORS.FIRST_SEEN}", deleted=old, updated=f"{new} UNION ALL {old}")


def count_by_service(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(subscription_function())
    schema_editor.execute(funnel_function())
    for counted in (
        f"SELECT s.campaign_id, {SERVICE_KEY.format(row='s')}, count(*) FROM fans_subscription AS s "
        "JOIN fans_fan AS f ON f.id = s.fan_id GROUP BY 1, 2",
        f"SELECT campaign_id, {FUNNEL_SERVICE_KEY}, count(*) FROM fans_funnelevent WHERE service <> '' GROUP BY 1, 2",
    ):
        schema_editor.execute(
            f"INSERT INTO releases_campaigntally (campaign_id, key, count) {counted} "
            "ON CONFLICT (campaign_id, key) DO UPDATE SET count = EXCLUDED.count"
        )


def stop_counting_by_service(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(BREAKDOWNS.tally_function(SUBSCRIPTIONS, BREAKDOWNS.SUBSCRIPTION_KEYS))
    schema_editor.execute(VISITORS.funnel_function(count_visitors=True))
    schema_editor.execute(
        "DELETE FROM releases_campaigntally WHERE key LIKE 'service:%%' OR key LIKE 'funnel:%%:service:%%'"
    )


class Migration(migrations.Migration):
    dependencies = [("releases", "0012_campaign_playlist_name")]

    operations = [migrations.RunPython(count_by_service, stop_counting_by_service)]
