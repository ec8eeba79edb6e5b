"""`python manage.py bench_campaign_page`: the campaign page's throughput against a trivial view, same server.

Starts gunicorn (the production server: pre-fork workers with threads) on this database, loads a trivial view
(/health/: no database, no template) and a campaign page (cache warm; each view fills the cached page's slots
and records its FunnelEvent), as new visitors and as returning ones, with the same load generator
(fans/loadgen.py) in alternating rounds, and prints requests/s, p50/p99 latency, the server's CPU a request
and the ratios.
Run it on PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/presave_bench python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/presave_bench python manage.py bench_campaign_page
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import NamedTuple, TypeVar

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fans.loadgen import LoadResult, load
from presave_site.benchmarking import Stopwatch, database_url, free_port, positive
from releases import benchmark
from releases.models import Campaign

T = TypeVar("T")
RATIO_TARGET = 0.75
RETURNING_COOKIES = "csrftoken=Bench0csrf0secret0of0thirty0two0; fv=bench-visitor-id-0123456789"
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1"
)


class Slice(NamedTuple):
    """One URL loaded in one round, and the CPU gunicorn's processes used meanwhile (None without /proc)."""

    load: LoadResult
    server_cpu_seconds: float | None


class Command(BaseCommand):
    help = (
        "Benchmark the campaign page under gunicorn against a trivial view on the same server: requests/s, "
        "p50/p99 latency and their ratio (target ≥ 0.75)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seconds", type=float, default=10.0, help="Load duration per URL (10).")
        parser.add_argument("--concurrency", type=positive, default=16, help="Requests in flight (16).")
        parser.add_argument("--workers", type=positive, default=2, help="gunicorn worker processes (2).")
        parser.add_argument("--threads", type=positive, default=4, help="Threads per worker (4).")
        parser.add_argument(
            "--rounds", type=positive, default=5, help="Rounds taking turns between the URLs (5): noise hits both."
        )
        parser.add_argument("--slug", default="", help="An existing campaign; default: a throwaway one.")

    def handle(self, *args, **options) -> None:
        campaign, made = self.campaign(options["slug"])
        try:
            rounds = self.measure(campaign, options)
            self.report(rounds, options)
        finally:
            if made:
                benchmark.drop(campaign)  # its FunnelEvents go with it

    def measure(self, campaign: Campaign, options: dict) -> list[dict[str, Slice]]:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        static_root = tempfile.TemporaryDirectory(prefix="bench-static-")  # the pages' HTML only: none is served
        server = self.start_server(port, options["workers"], options["threads"], static_root.name)
        headers = {"User-Agent": PHONE_UA}
        try:
            self.wait_until_up(base + "/health/", server)
            campaign_url = base + campaign.get_absolute_url()
            # New visitors are the page's usual case and its dearest (a visitor cookie set for each);
            # returning visitors send back the cookies a first view set.
            runs = [
                ("trivial", base + "/health/", headers),
                ("campaign", campaign_url, headers),
                ("returning", campaign_url, {**headers, "Cookie": RETURNING_COOKIES}),
            ]
            warmup = min(2.0, options["seconds"])
            for _, url, sent in runs:  # warm the page cache, database connections and workers
                load(url, seconds=warmup, concurrency=options["concurrency"], headers=sent)
            rounds = []
            slice_seconds = options["seconds"] / options["rounds"]
            for round_number in range(options["rounds"]):
                shift = round_number % len(runs)  # each URL takes each place in the order in turn
                rounds.append(
                    {
                        name: self.timed(
                            server, url, seconds=slice_seconds, concurrency=options["concurrency"], headers=sent
                        )
                        for name, url, sent in runs[shift:] + runs[:shift]
                    }
                )
            return rounds
        finally:
            server.send_signal(signal.SIGTERM)  # workers write their waiting page views as they exit
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
            static_root.cleanup()

    @staticmethod
    def timed(server: subprocess.Popen, url: str, **options) -> Slice:
        """`load(url)`, with the CPU time the server's processes (gunicorn's master and workers) used meanwhile:
        what a request costs the server, which other work on a shared machine changes much less than req/s."""
        watch = Stopwatch()
        watch.start()
        result = load(url, **options)
        watch.stop()
        by_part = watch.cpu_by_part(
            lambda pid, processes: "server" if server.pid in (pid, processes[pid].ppid) else None
        )
        return Slice(result, by_part.get("server") if watch.cpu_seconds is not None else None)

    def campaign(self, slug: str) -> tuple[Campaign, bool]:
        if slug:
            campaign = Campaign.objects.public().filter(slug=slug).first()
            if campaign is None:
                raise CommandError(f"No visible campaign with slug {slug!r}.")
            return campaign, False
        return benchmark.make_campaign(str(int(time.time()))), True

    def start_server(self, port: int, workers: int, threads: int, static_root: str) -> subprocess.Popen:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "presave_site.settings"),
            "DATABASE_URL": database_url(),
            "HTTPS": "false",  # plain HTTP on loopback: no redirect to https
            "CONN_MAX_AGE": "60",  # persistent connections, as in production (README: Production)
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "STATIC_ROOT": static_root,  # an empty one: WhiteNoise warns at start-up when there is none
        }
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--config=python:presave_site.gunicorn_config",  # as in production (README): its logger and socket
            "presave_site.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--worker-class=gthread",
            "--log-level=warning",
        ]
        return subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, start_new_session=True)  # noqa: S603 (fixed argv)

    def wait_until_up(self, url: str, server: subprocess.Popen) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError(f"gunicorn exited with status {server.returncode}.")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own loopback URL)
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise CommandError("gunicorn did not answer within 30 s.")

    def report(self, slices: list[dict[str, Slice]], options: dict) -> None:
        """Each URL's figures over all rounds; each round's ratios; the verdict on the median of the rounds'
        ratios (as bench_delivery's): a round's URLs are loaded back to back and see the same machine, while
        this machine's speed drifts from one minute to the next. Beside them, the server's CPU a request and its
        ratio (the trivial view's over the page's): on a machine other work keeps busy, what tells a change of a
        few hundredths apart when req/s cannot."""
        rounds = [{name: one.load for name, one in round_.items()} for round_ in slices]
        cpu = {name: _cpu_per_request(measured) for name, measured in _by_url(slices).items()}
        self.stdout.write(
            f"gunicorn gthread, {options['workers']} workers × {options['threads']} threads; "
            f"{options['concurrency']} requests in flight, {options['seconds']:g} s per URL in "
            f"{options['rounds']} alternating rounds"
        )
        results = {name: sum(rest, first) for name, (first, *rest) in _by_url(rounds).items()}
        for name, result in results.items():
            self.stdout.write(
                f"  {name:<9} {result.rps:8.0f} req/s   p50 {result.percentile(50):6.1f} ms   "
                f"p99 {result.percentile(99):6.1f} ms   {result.requests} requests, {result.errors} errors"
                + (f"   server CPU {cpu[name] * 1e6:5.0f} µs a request" if cpu[name] else "")
            )
        for name, label in (("campaign", "new visitors"), ("returning", "returning visitors")):
            ratios = [_ratio(one[name], one["trivial"]) for one in rounds]
            ratio = statistics.median(ratios)
            verdict = "meets" if ratio >= RATIO_TARGET else "below"
            self.stdout.write(
                f"ratio {name}/trivial: {ratio:.2f} ({label}; {verdict} the target of {RATIO_TARGET}; median of "
                f"the rounds: {', '.join(f'{r:.2f}' for r in ratios)}; all rounds pooled: "
                f"{_ratio(results[name], results['trivial']):.2f})"
            )
            if cpu[name] and cpu["trivial"]:
                self.stdout.write(f"  by the server's CPU a request: {cpu['trivial'] / cpu[name]:.2f}")
        errors = sum(result.errors for result in results.values())
        if errors:
            raise CommandError(f"{errors} requests failed.")


def _by_url(rounds: list[dict[str, T]]) -> dict[str, list[T]]:
    return {name: [one[name] for one in rounds] for name in rounds[0]}


def _cpu_per_request(slices: list[Slice]) -> float | None:
    """The server's CPU seconds a request over all of a URL's rounds; None where /proc could not tell."""
    if any(one.server_cpu_seconds is None for one in slices):
        return None
    requests = sum(one.load.requests for one in slices)
    return sum(one.server_cpu_seconds for one in slices) / requests if requests else None


def _ratio(page: LoadResult, trivial: LoadResult) -> float:
    return page.rps / trivial.rps if trivial.rps else 0.0
