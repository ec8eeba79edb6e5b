"""The tallies grow the console's "By service" table (releases.analytics.by_service): each campaign's pre-saves
by the fan's streaming service and status (`service:<service>:<status>`), and its funnel events by the service
clicked or authorized (`funnel:<kind>:service:<service>`), so it reads a few rows instead of joining every
pre-save to its fan and counting every click (docs/benchmarks.md, "The staff console").

The fan's service is the fans_fan row's, looked up by primary key, and only for the pre-saves a statement
changed: its rows netted by (campaign, fan, status), one pre-save each, and those that come out even left out.
The delivery engine's claims and lease renewals (an UPDATE of the lease only) look up nothing. PostgreSQL only,
like the other tallies; elsewhere the console counts with queries."""

import importlib

from django.db import migrations

BREAKDOWNS = importlib.import_module("releases.migrations.0008_tally_breakdowns")
VISITORS = importlib.import_module("releases.migrations.0011_tally_visitor_days")

SUBSCRIPTIONS = "releases_tally_subscriptions"
FUNNEL_KEYS = [*BREAKDOWNS.FUNNEL_KEYS, "'funnel:' || kind || ':service:' || service"]


def service_rows(*tables: tuple[str, int]) -> str:
    """(campaign, `service:<service>:<status>`, n) for the pre-saves whose (campaign, fan, status) the statement
    changed, from its transition `tables` (name, +1 or -1). The service row by row, by primary key: a fan deleted
    in the same statement's transaction before its pre-saves (not Django's order) is left out, not a NULL key."""
    moves = " UNION ALL ".join(f"SELECT campaign_id, fan_id, status, {n} AS n FROM {table}" for table, n in tables)
    netted = (
        f"SELECT campaign_id, fan_id, status, sum(n) AS n FROM ({moves}) AS moves GROUP BY 1, 2, 3 HAVING sum(n) <> 0"
    )
    looked_up = (
        f"SELECT campaign_id, status, n, (SELECT f.service FROM fans_fan AS f WHERE f.id = netted.fan_id) AS service "
        f"FROM ({netted}) AS netted"
    )
    return (
        f"SELECT campaign_id, 'service:' || service || ':' || status AS key, n FROM ({looked_up}) AS changed "
        f"WHERE service IS NOT NULL"
    )


def subscriptions_function(by_service: bool) -> str:
    """0008's subscriptions function, also counting `service_rows` when `by_service`. Index lookups only (0011's
    INDEX_LOOKUPS): PL/pgSQL keeps a statement's first plan, and one made while fans_fan was small would scan it
    for every pre-save ever after."""
    keys = BREAKDOWNS.SUBSCRIPTION_KEYS
    if not by_service:
        return BREAKDOWNS.tally_function(SUBSCRIPTIONS, keys)
    new, old = BREAKDOWNS.rows("new_rows", keys, 1), BREAKDOWNS.rows("old_rows", keys, -1)
    inserted = f"{new} UNION ALL {service_rows(('new_rows', 1))}"
    deleted = f"{old} UNION ALL {service_rows(('old_rows', -1))}"
    updated = f"{new} UNION ALL {old} UNION ALL {service_rows(('new_rows', 1), ('old_rows', -1))}"
    upsert = BREAKDOWNS.UPSERT
    return f"""
CREATE OR REPLACE FUNCTION {SUBSCRIPTIONS}() RETURNS trigger LANGUAGE plpgsql {VISITORS.INDEX_LOOKUPS} AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN {upsert.format(rows=inserted)}
    ELSIF TG_OP = 'DELETE' THEN {upsert.format(rows=deleted)}
    ELSE {upsert.format(rows=updated)}
    END IF;
    RETURN NULL;
END $$;
"""


def funnel_function(keys: list[str]) -> str:
    """0011's funnel function (its inserts also count the visitors first seen), counting `keys`."""
    function = BREAKDOWNS.tally_function(VISITORS.FUNNEL, keys)
    new = BREAKDOWNS.rows("new_rows", keys, 1)
    inserts = f"IF TG_OP = 'INSERT' THEN {BREAKDOWNS.UPSERT.format(rows=new)}"
    counted = f"IF TG_OP = 'INSERT' THEN {BREAKDOWNS.UPSERT.format(rows=new + ' UNION ALL ' + VISITORS.FIRST_SEEN)}"
    assert inserts in function and "LANGUAGE plpgsql AS" in function
    return function.replace(inserts, counted).replace(
        "LANGUAGE plpgsql AS", f"LANGUAGE plpgsql {VISITORS.INDEX_LOOKUPS} AS"
    )


def tally_services(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(subscriptions_function(by_service=True))
    schema_editor.execute(funnel_function(FUNNEL_KEYS))
    schema_editor.execute(
        "INSERT INTO releases_campaigntally (campaign_id, key, count) "
        "SELECT s.campaign_id, 'service:' || f.service || ':' || s.status, count(*) "
        "FROM fans_subscription AS s JOIN fans_fan AS f ON f.id = s.fan_id GROUP BY 1, 2 "
        "ON CONFLICT (campaign_id, key) DO UPDATE SET count = EXCLUDED.count"
    )
    schema_editor.execute(
        f"INSERT INTO releases_campaigntally (campaign_id, key, count) "
        f"SELECT campaign_id, {FUNNEL_KEYS[-1]}, count(*) FROM fans_funnelevent GROUP BY 1, 2 "
        f"ON CONFLICT (campaign_id, key) DO UPDATE SET count = EXCLUDED.count"
    )


def forget_services(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(subscriptions_function(by_service=False))
    schema_editor.execute(funnel_function(BREAKDOWNS.FUNNEL_KEYS))
    schema_editor.execute(
        "DELETE FROM releases_campaigntally WHERE key LIKE 'service:%%' OR key LIKE 'funnel:%%:service:%%'"
    )


class Migration(migrations.Migration):
    dependencies = [("releases", "0015_playlist_name_plain_text"), ("fans", "0018_funnel_visitor_days")]

    operations = [migrations.RunPython(tally_services, forget_services)]
