"""`python manage.py bench_console`: the staff console at a million subscriptions.

Seeds a campaign by PostgreSQL COPY, then measures the streamed CSV export (in a child process: its peak
RSS is the export's own) and the campaign page's KPIs and funnel against a small baseline campaign, in the
same run. Run it against PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/presave_bench python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/presave_bench python manage.py bench_console
"""

from __future__ import annotations

import dataclasses
import json
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from presave_site.benchmarking import positive
from releases import benchmark

EXPORT_SECONDS, EXPORT_RSS_MB = 30.0, 100.0
PAGE_MS, PAGE_RATIO = 100.0, 3.0


class Command(BaseCommand):
    help = (
        "Benchmark the staff console: seed N subscriptions by COPY, time the streamed CSV export and its peak "
        "memory in a child process, and time the campaign page's KPIs and funnel at N against a baseline."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscriptions", type=positive, default=1_000_000, help="Subscriptions (1,000,000).")
        parser.add_argument("--baseline", type=positive, default=10_000, help="The baseline campaign's (10,000).")
        parser.add_argument("--keep", action="store_true", help="Keep the seeded campaigns afterwards.")
        parser.add_argument(
            "--export-only", type=int, metavar="CAMPAIGN_ID", help="(internal) export one campaign, print figures"
        )

    def handle(self, *args, subscriptions: int, baseline: int, keep: bool, export_only: int | None, **options):
        if connection.vendor != "postgresql":
            raise CommandError("bench_console needs PostgreSQL (COPY, server-side cursors): set DATABASE_URL.")
        if export_only is not None:
            figures = benchmark.export_in_this_process(export_only)
            self.stdout.write(json.dumps(dataclasses.asdict(figures)))
            return
        label = str(int(time.time()))
        small = benchmark.make_campaign(f"{label}-small")
        large = benchmark.make_campaign(f"{label}-large")
        try:
            self.stdout.write(f"Seeding {baseline:,} and {subscriptions:,} subscriptions by COPY…")
            seeded = benchmark.seed(small, baseline) + benchmark.seed(large, subscriptions)
            self.stdout.write(f"  seeded in {seeded:.1f} s (with consent records and funnel events)")
            export = benchmark.export_in_child(large.pk)
            small_page, large_page = benchmark.time_page(small), benchmark.time_page(large)
            small_rest = benchmark.time_page(small, runs=3, queries=benchmark.other_insights)
            large_rest = benchmark.time_page(large, runs=3, queries=benchmark.other_insights)
            services = [benchmark.time_page(c, runs=7, queries=benchmark.by_service) for c in (small, large)]
            self.report(export, subscriptions, baseline, small_page, large_page, small_rest, large_rest, services)
        finally:
            if not keep:
                benchmark.drop(small)
                benchmark.drop(large)

    def report(self, export, subscriptions, baseline, small_page, large_page, small_rest, large_rest, services) -> None:
        ratio = large_page / small_page if small_page else float("inf")
        checks = [
            (f"CSV export of {export.rows:,} rows", f"{export.seconds:.1f} s", export.seconds < EXPORT_SECONDS,
             f"< {EXPORT_SECONDS:.0f} s"),
            ("  its peak RSS (child process)", f"{export.peak_rss_mb:.0f} MB", export.peak_rss_mb < EXPORT_RSS_MB,
             f"< {EXPORT_RSS_MB:.0f} MB"),
            ("  RSS before the export (Django loaded)", f"{export.baseline_rss_mb:.0f} MB", True, ""),
            (f"KPIs + funnel at {subscriptions:,}", f"{large_page * 1000:.1f} ms", large_page * 1000 < PAGE_MS,
             f"< {PAGE_MS:.0f} ms"),
            (f"KPIs + funnel at {baseline:,}", f"{small_page * 1000:.1f} ms", True, "baseline"),
            ("  ratio", f"{ratio:.2f}", ratio < PAGE_RATIO, f"< {PAGE_RATIO:.0f}"),
            (f"other insights at {subscriptions:,}", f"{large_rest * 1000:.0f} ms", True, "(no target)"),
            (f"other insights at {baseline:,}", f"{small_rest * 1000:.0f} ms", True, "(no target)"),
            (f"By service at {subscriptions:,}", f"{services[1] * 1000:.1f} ms", True, "(no target)"),
            (f"By service at {baseline:,}", f"{services[0] * 1000:.1f} ms", True, "(no target)"),
        ]  # fmt: skip
        for name, value, ok, target in checks:
            self.stdout.write(f"{name:<42} {value:>10}   {target:<11} {'ok' if ok else 'MISSED'}")
        missed = sum(not ok for *_, ok, _ in checks)
        self.stdout.write(
            f"bench_console: export {export.rows:,} rows in {export.seconds:.1f} s at {export.peak_rss_mb:.0f} MB; "
            f"page {large_page * 1000:.1f} ms vs {small_page * 1000:.1f} ms (×{ratio:.2f}); "
            f"{'all targets met' if not missed else f'{missed} target(s) missed'}"
        )
