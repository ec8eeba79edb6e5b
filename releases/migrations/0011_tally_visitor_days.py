"""The funnel's tally counts visitors too: each page view whose visitor (a daily-salted hash, so a browser once a
day) the campaign had not seen adds one to `funnel:visitors`. Only inserts count: blanking a visitor later (the
retention task, an erasure) leaves the count as it was, an anonymous figure. PostgreSQL only, like the other
tallies; elsewhere the console counts distinct visitors with a query."""

import importlib

from django.db import migrations

BREAKDOWNS = importlib.import_module("releases.migrations.0008_tally_breakdowns")
FUNNEL = "releases_tally_funnel"
# The visitors first seen in this statement: each (campaign, visitor) of its page views whose rows in the table
# (written already: the trigger runs after the statement) are all this statement's. A scalar subquery per pair,
# which PostgreSQL runs on the funnel_visitor_days index: a NOT EXISTS became an anti-join scanning the table.
FIRST_SEEN = """
    SELECT campaign_id, 'funnel:visitors' AS key, 1 AS n FROM (
        SELECT campaign_id, visitor, count(*) AS here FROM new_rows
        WHERE kind = 'view' AND visitor <> '' GROUP BY campaign_id, visitor
    ) AS batch
    WHERE batch.here = (
        SELECT count(*) FROM fans_funnelevent AS e
        WHERE e.campaign_id = batch.campaign_id AND e.kind = 'view' AND e.visitor = batch.visitor AND e.visitor <> ''
    )"""


# PL/pgSQL keeps a statement's first plan: made while the table was small (a new campaign's first views), it
# scans the whole table for every batch ever after, slower as the table grows. Index lookups it is, always.
INDEX_LOOKUPS = "SET enable_seqscan = off"


def funnel_function(count_visitors: bool) -> str:
    """Migration 0008's funnel function, its inserts also counting FIRST_SEEN when `count_visitors`."""
    function = BREAKDOWNS.tally_function(FUNNEL, BREAKDOWNS.FUNNEL_KEYS)
    if not count_visitors:
        return function
    new = BREAKDOWNS.rows("new_rows", BREAKDOWNS.FUNNEL_KEYS, 1)
    inserts = f"IF TG_OP = 'INSERT' THEN {BREAKDOWNS.UPSERT.format(rows=new)}"
    counted = f"IF TG_OP = 'INSERT' THEN {BREAKDOWNS.UPSERT.format(rows=new + ' UNION ALL ' + FIRST_SEEN)}"
    assert inserts in function and "LANGUAGE plpgsql AS" in function
    return function.replace(inserts, counted).replace("LANGUAGE plpgsql AS", f"LANGUAGE plpgsql {INDEX_LOOKUPS} AS")


def count_visitors(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(funnel_function(count_visitors=True))
    schema_editor.execute(
        "INSERT INTO releases_campaigntally (campaign_id, key, count) "
        "SELECT campaign_id, 'funnel:visitors', count(DISTINCT visitor) FROM fans_funnelevent "
        "WHERE kind = 'view' AND visitor <> '' GROUP BY 1 "
        "ON CONFLICT (campaign_id, key) DO UPDATE SET count = EXCLUDED.count"
    )


def forget_visitors(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(funnel_function(count_visitors=False))
    schema_editor.execute("DELETE FROM releases_campaigntally WHERE key = 'funnel:visitors'")


class Migration(migrations.Migration):
    dependencies = [
        ("releases", "0010_ascii_digits_in_upc_and_isrc"),
        ("fans", "0018_funnel_visitor_days"),
    ]

    operations = [migrations.RunPython(count_visitors, forget_visitors)]
