"""The staff console at scale: seed a campaign with N subscriptions by PostgreSQL COPY, then measure the CSV
export (in a child process, for its own peak memory) and the campaign page's KPIs and funnel.

Used by `manage.py bench_console`; PostgreSQL only (COPY and server-side cursors are what is being measured).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from fans.models import ConsentRecord, Fan, FunnelEvent, Subscription
from presave_site.benchmarking import tidy
from releases import analytics, exports
from releases.models import Artist, Campaign, Release

STATUSES = ["delivered"] * 70 + ["pending"] * 20 + ["failed"] * 7 + ["revoked"] * 3
MARKETS = ["US", "GB", "DE", "FR", "BR", "JP", "SE", "MX", "AU", "CA"]
SOURCES = ["instagram", "tiktok", "newsletter", "", "", "twitter"]
DEVICES = ["mobile", "mobile", "desktop", "tablet"]
EVENTS = [("view", 2.0, ""), ("click", 1.3, "spotify"), ("authorize", 1.0, "spotify")]  # kind, per fan, service


def make_campaign(label: str) -> Campaign:
    artist = Artist.objects.create(name=f"Bench artist {label}")
    release_at = timezone.now() + dt.timedelta(days=7)
    release = Release.objects.create(
        artist=artist, title=f"Bench {label}", release_date=release_at.date(), timezone="UTC"
    )
    return Campaign.objects.create(release=release, slug=f"bench-{label}", status=Campaign.Status.LIVE)


def reserve_ids(model, count: int) -> int:
    """The first of `count` consecutive primary keys taken from the table's sequence."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
        sequence = cursor.fetchone()[0]
        cursor.execute("SELECT nextval(%s)", [sequence])
        first = cursor.fetchone()[0]
        cursor.execute("SELECT setval(%s, %s)", [sequence, first + count])
    return first


def copy_rows(model, columns: list[str], rows) -> None:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3: cursor.copy streams rows to COPY … FROM STDIN
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def seed(campaign: Campaign, count: int) -> float:
    """Fans, subscriptions (a realistic status mix), opted-in consent for a third, and funnel events (the clicks and
    authorizations on Spotify, the fans' service)."""
    started = time.perf_counter()
    now = timezone.now()
    label = campaign.slug
    with transaction.atomic():
        first_fan = reserve_ids(Fan, count)
        first_sub = reserve_ids(Subscription, count)
        copy_rows(
            Fan,
            ["id", "service", "service_user_id", "display_name", "email", "country", "created_at", "updated_at"],
            (
                (first_fan + i, "spotify", f"{label}-{i}", f"Fan {i}", f"fan{i}@x.test", MARKETS[i % 10], now, now)
                for i in range(count)
            ),
        )
        copy_rows(
            Subscription,
            [
                "id",
                "fan_id",
                "campaign_id",
                "status",
                "market",
                "attempts",
                "last_error",
                "created_at",
                "updated_at",
                "delivered_at",
            ],  # fmt: skip
            (
                (
                    first_sub + i,
                    first_fan + i,
                    campaign.pk,
                    STATUSES[i % 100],
                    MARKETS[i % 10],
                    1 if STATUSES[i % 100] != "pending" else 0,
                    "Spotify refused the action: forbidden (403)." if STATUSES[i % 100] == "failed" else "",
                    now - dt.timedelta(minutes=i % 43_200),
                    now,
                    now if STATUSES[i % 100] == "delivered" else None,
                )
                for i in range(count)
            ),
        )
        copy_rows(
            ConsentRecord,
            [
                "subscription_id",
                "campaign_id",
                "service",
                "service_user_id",
                "email",
                "scopes",
                "wording_version",
                "email_opt_in",
                "revoke_token_hash",
                "created_at",
                "user_agent",
                "display_name",
            ],  # fmt: skip
            (
                (
                    first_sub + i,
                    campaign.pk,
                    "spotify",
                    f"{label}-{i}",
                    "",
                    "[]",
                    "bench",
                    i % 3 == 0,
                    f"{label}-{i}",
                    now,
                    "",
                    "",
                )  # fmt: skip
                for i in range(count)
            ),
        )
        copy_rows(
            FunnelEvent,
            [
                "campaign_id",
                "kind",
                "service",
                "visitor",
                "utm_source",
                "utm_medium",
                "utm_campaign",
                "referrer_domain",
                "country",
                "device",
                "in_app_browser",
                "created_at",
            ],  # fmt: skip
            (
                (campaign.pk, kind, service, "", SOURCES[i % 6], "", "", "", MARKETS[i % 10], DEVICES[i % 4], "", now)
                for kind, share, service in EVENTS
                for i in range(int(count * share))
            ),
        )
    with connection.cursor() as cursor:
        for model in (Fan, Subscription, ConsentRecord, FunnelEvent):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return time.perf_counter() - started


def page_queries(campaign: Campaign) -> None:
    """What the campaign page's KPIs and funnel cost."""
    counts = analytics.kpis(campaign)
    analytics.funnel(campaign, delivered=counts["delivered"])


def other_insights(campaign: Campaign) -> None:
    """The rest of the campaign page's figures: breakdowns, pre-saves per day, failure reasons."""
    analytics.breakdowns(campaign)
    analytics.presaves_per_day(campaign)
    analytics.failure_reasons(campaign)


def by_service(campaign: Campaign) -> None:
    """The campaign page's "By service" table: clicks, authorizations and fans by status per service."""
    analytics.by_service(campaign)


def time_page(campaign: Campaign, runs: int = 7, queries=page_queries) -> float:
    """Median seconds of the KPIs and funnel (or of `queries`), after one warm-up."""
    queries(campaign)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        queries(campaign)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


@dataclass
class ExportFigures:
    rows: int
    seconds: float
    peak_rss_mb: float
    baseline_rss_mb: float
    bytes: int


def export_in_this_process(campaign_id: int) -> ExportFigures:
    """Stream the campaign's CSV to nowhere, chunk by chunk, as a web server would send it."""
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: kilobytes
    started = time.perf_counter()
    querysets = exports.export_querysets(Q(campaign_id=campaign_id))
    response = exports.csv_response("bench", querysets)
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += chunk.count(b"\n")
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ExportFigures(
        rows=lines - 1, seconds=seconds, peak_rss_mb=peak_kb / 1024, baseline_rss_mb=baseline_kb / 1024, bytes=size
    )


def export_in_child(campaign_id: int) -> ExportFigures:
    """Run the export in a fresh `manage.py bench_console --export-only` process: its peak RSS is the export's."""
    output = subprocess.run(  # noqa: S603 - our own manage.py with an integer argument
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "bench_console", "--export-only", str(campaign_id)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return ExportFigures(**json.loads(output.strip().splitlines()[-1]))


def drop(campaign: Campaign) -> None:
    """Remove the seeded rows with plain DELETEs (the ORM's cascade would load a million objects)."""
    release, artist = campaign.release, campaign.release.artist
    fans = list(Subscription.objects.filter(campaign=campaign).values_list("fan_id", flat=True).order_by())
    with transaction.atomic():
        for model in (ConsentRecord, FunnelEvent):
            model.objects.filter(campaign=campaign)._raw_delete(connection.alias)
        Subscription.objects.filter(campaign=campaign)._raw_delete(connection.alias)
        for start in range(0, len(fans), 50_000):
            Fan.objects.filter(pk__in=fans[start : start + 50_000])._raw_delete(connection.alias)
        campaign.delete()
        release.delete()
        artist.delete()
    tidy(("fans_fan", "fans_subscription", "fans_consentrecord", "fans_funnelevent"))
