"""`python manage.py bench_delivery`: how fast release-day delivery is, and whether it stayed correct.

Starts the Spotify sandbox in its own process, seeds fans, and times a sequential baseline, a bare concurrent
ceiling and the delivery engine (delivery/benchmark.py). Run it against PostgreSQL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/presave_bench python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/presave_bench python manage.py bench_delivery --fans 2000
"""

from __future__ import annotations

import os
import statistics
import time
import traceback
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q
from django.test.utils import override_settings
from django.utils import timezone

from delivery import benchmark
from delivery.benchmark import Phase
from delivery.sandbox.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from presave_site.benchmarking import positive, tidy

SPEEDUP_TARGET, SPEEDUP_LATENCY_MS = 100, 50
CEILING_TARGET = 0.70
LIMIT_USED_TARGET, LIMITED_TARGET = 0.90, 0.01
ENGINE_SETTINGS = ("DELIVERY_CONCURRENCY", "DELIVERY_BATCH_SIZE", "DELIVERY_PERMIT_BLOCK")


class Command(BaseCommand):
    help = (
        "Benchmark release-day delivery against the Spotify sandbox (started as a subprocess): a sequential "
        "baseline, a bare concurrent ceiling and the delivery engine, each timed; then check that every fan "
        "was delivered at most once. Exits non-zero when a correctness check fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fans", type=positive, default=2000, help="Fans for the ceiling and the engine (2000).")
        parser.add_argument(
            "--baseline-fans", type=positive, default=100, help="Fans for the sequential baseline, a sample (100)."
        )
        parser.add_argument(
            "--latency-ms", type=float, default=50.0, help="Sandbox latency added to every request, in ms (50)."
        )
        parser.add_argument(
            "--concurrency",
            type=positive,
            help="Requests in flight in the ceiling loop, in as many processes as the engine has workers. Default: "
            "the best of two shapes, timed each round: one process with 64 in flight (the bare loop of the "
            "issue's own figures), and as many processes as the engine's workers with as many in flight as the "
            "engine's runs together (DELIVERY_CONCURRENCY per run).",
        )
        parser.add_argument(
            "--rate-limit",
            type=positive,
            help="Calls per 30 s window, on the sandbox and the engine's limiter (off). "
            "Baseline and ceiling are then skipped unless --all-phases.",
        )
        parser.add_argument(
            "--workers",
            type=int,
            choices=range(17),
            metavar="K",
            default=2,
            help="Run the engine as production does: a qcluster with K worker processes, each running the "
            "delivery task on the campaign (2, like Q_WORKERS' default); 0: one run in this process.",
        )
        parser.add_argument(
            "--rounds",
            type=positive,
            default=1,
            help="Time the ceiling and the engine this many times, alternately, each on fans of its own; report "
            "each by its best round, and the engine's share of the ceiling by the median of the rounds' own "
            "shares (1). On a shared machine, other work only ever slows a round down, and a round's two phases, "
            "timed back to back, see the same machine.",
        )
        parser.add_argument(
            "--follow",
            action="store_true",
            help="The campaign also follows the artist: each fan costs a refresh, a save and a follow, in every "
            "phase (and the engine writes a fan's save as progress before its follow).",
        )
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark campaigns' rows.")
        parser.add_argument(
            "--all-phases", action="store_true", help="Run baseline and ceiling under --rate-limit too."
        )

    def handle(self, *args, **options) -> None:
        fans, rate_limit = options["fans"], options["rate_limit"]
        slug = timezone.now().strftime("bench-%Y%m%d-%H%M%S")
        run_unpaced = rate_limit is None or options["all_phases"]
        options["uris"] = benchmark.library_writes(options["follow"])
        self.say(
            f"Benchmark {slug}: {fans} fans ({'refresh, save, follow' if options['follow'] else 'refresh, save'}), "
            f"sandbox latency {options['latency_ms']:g} ms, "
            f"rate limit {rate_limit or 'off'}, database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[1]}"
        )
        engine_settings = ", ".join(
            f"{name}={getattr(settings, name)}" for name in ENGINE_SETTINGS if hasattr(settings, name)
        )
        workers = options["workers"]
        options["ceiling_shapes"] = benchmark.ceiling_shapes(options["concurrency"], workers)
        where = f"a qcluster of {workers} worker processes" if workers else "this process"
        self.say(f"Engine: {engine_settings}; in {where}")
        self.warn_of_other_deliveries()
        shapes = " or ".join(benchmark.shape_words(*shape) for shape in options["ceiling_shapes"])
        self.say(
            f"Machine: {os.cpu_count()} cores, shared by the sandbox, PostgreSQL and the phase being timed "
            f"(the ceiling: bare aiohttp, {shapes}, the faster each round, against the same sandbox on the same cores)"
        )
        with benchmark.SandboxProcess(options["latency_ms"]) as sandbox:
            overrides = {
                "SPOTIFY_ACCOUNTS_URL": sandbox.accounts_url,
                "SPOTIFY_API_URL": sandbox.api_url,
                "SPOTIFY_CLIENT_ID": DEFAULT_CLIENT_ID,
                "SPOTIFY_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                "SPOTIFY_ENABLED": True,
                "SPOTIFY_RATE_LIMIT": rate_limit,  # None: unlimited, like the sandbox
                "SPOTIFY_RATE_WINDOW_SECONDS": benchmark.RATE_WINDOW_SECONDS,
            }
            environment = {name: str(value) for name, value in overrides.items()}  # for the cluster's processes
            environment["SPOTIFY_RATE_LIMIT"] = str(rate_limit or 0)  # 0: unlimited
            with override_settings(**overrides):
                phases, checks, calls, shares = self.run_phases(sandbox, slug, environment, run_unpaced, options)
        self.report(phases, checks, calls, shares, options, sandbox_pid=sandbox.process.pid)
        if checks.failures:
            raise CommandError(f"bench_delivery: correctness check failed: {'; '.join(checks.failures)}.")
        engine = phases["engine"]
        self.say(
            f"bench_delivery: engine delivered {engine.ok} of {engine.fans} fans in {engine.seconds:.2f} s "
            f"({engine.rate:.1f} fans/s); checks passed."
        )

    def warn_of_other_deliveries(self) -> None:
        """A campaign left delivering in this database (an interrupted run, say) is swept up every minute by
        the benchmark's cluster, or any other on this database, and a live one whose release-time delivery is
        due is fired by its scheduler: their fans would share the machine with the phases being timed."""
        from django_q.models import Schedule

        from delivery.scheduling import SCHEDULE_NAME_PREFIX, SCHEDULED_TASK
        from releases.models import Campaign

        # Due within the hour and not fired yet (a ONCE schedule that fired has no repeats left).
        due = Schedule.objects.filter(func=SCHEDULED_TASK, next_run__lte=timezone.now() + timedelta(hours=1))
        names = due.exclude(repeats=0).values_list("name", flat=True)
        due_ids = [int(pk) for name in names if (pk := name.removeprefix(SCHEDULE_NAME_PREFIX)).isdigit()]
        delivering = list(
            Campaign.objects.filter(
                Q(status=Campaign.Status.DELIVERING) | Q(pk__in=due_ids, status=Campaign.Status.LIVE)
            ).values_list("slug", flat=True)
        )
        if delivering:
            names = ", ".join(delivering[:5]) + (", …" if len(delivering) > 5 else "")
            self.stderr.write(
                self.style.WARNING(
                    f"Warning: {len(delivering)} campaign(s) in this database are delivering or due to ({names}); "
                    "the sweeper and scheduler of the benchmark's cluster (or of any other on this database) "
                    "deliver them meanwhile, and the figures suffer. Use a database of its own for benchmarks."
                )
            )

    def run_phases(self, sandbox: benchmark.SandboxProcess, slug: str, environment: dict, run_unpaced: bool, options):
        """Seed, then time the baseline once and, each round, the ceiling then the engine (each round on fans of
        its own: refresh tokens rotate). Each of the ceiling and the engine is reported by its best round."""
        fans, rate_limit, rounds = options["fans"], options["rate_limit"], options["rounds"]
        follow, uris = options["follow"], options["uris"]
        scope = benchmark.FOLLOW_SCOPE if follow else benchmark.SCOPE

        def mint(user_ids: list[str]) -> dict[str, str]:
            return sandbox.mint(user_ids, scope)

        started = time.perf_counter()
        baseline_ids = [f"{slug}-b-{i:05d}" for i in range(options["baseline_fans"])]
        baseline_tokens = mint(baseline_ids) if run_unpaced else {}
        shapes = options["ceiling_shapes"] if run_unpaced else []
        ceiling_tokens = [  # per round, per ceiling shape
            [mint([f"{slug}-c{r}s{s}-{i:05d}" for i in range(fans)]) for s in range(len(shapes))] for r in range(rounds)
        ]
        campaigns = [
            benchmark.seed_campaign(f"{slug}-{r}", mint([f"{slug}-e{r}-{i:05d}" for i in range(fans)]), follow=follow)
            for r in range(rounds)
        ]
        tidy(benchmark.CHURNED_TABLES)
        seconds = time.perf_counter() - started
        minted = len(baseline_tokens) + fans * rounds * (len(shapes) + 1)
        self.say(f"Seeded {minted} sandbox fans and {fans * rounds} subscriptions in {seconds:.1f} s")

        baseline, results = None, []  # results: (ceiling, engine, calls) per round
        try:
            if rate_limit is not None and run_unpaced:
                sandbox.control("POST", "faults", {"rate_limit": rate_limit})
            if run_unpaced:
                baseline = benchmark.run_baseline(sandbox, list(baseline_tokens.values()), uris)
            for r, campaign in enumerate(campaigns):
                ceiling, others, timed = None, "", []
                if run_unpaced:
                    # Each shape on fans of its own, in turn first: the round's ceiling is the fastest.
                    order = list(zip(shapes, ceiling_tokens[r], strict=True))
                    order = order[r % len(order) :] + order[: r % len(order)]
                    for (p, n), t in order:
                        opened = sandbox.counters()["connections"]
                        timed.append(benchmark.run_ceiling(sandbox, list(t.values()), n, p, uris))
                        timed[-1].connections = sandbox.counters()["connections"] - opened
                    ceiling = max(timed, key=lambda phase: phase.rate)
                    others = "".join(f"; {p.shape}: {p.rate:.1f}" for p in timed if p is not ceiling)
                if rate_limit is not None:
                    sandbox.control("POST", "faults", {"rate_limit": rate_limit})
                    benchmark.wait_for_empty_window(sandbox)
                before = sandbox.counters()
                try:
                    engine = benchmark.run_engine(campaign.pk, options["workers"], environment)
                except Exception:  # noqa: BLE001 - reported; the checks below then show what was left undone
                    self.stderr.write(f"The engine failed:\n{traceback.format_exc()}")
                    engine = Phase("engine", fans, 0.0, 0, "failed: see above")
                after = sandbox.counters()
                calls = {name: after[name] - before[name] for name in ("requests", "rate_limited", "connections")}
                # The connections each of the round's bare loops opened, to set the engine's beside.
                calls["ceilings"] = [(phase.shape, phase.connections) for phase in timed]
                results.append((ceiling, engine, calls))
                if rounds > 1:
                    share = round_share(ceiling, engine)
                    versus = f", {share:.0%} of that round's ceiling" if share is not None else ""
                    cpu_share = round_share(ceiling, engine, by="cpu")
                    versus += f" (by CPU a fan: {cpu_share:.0%})" if cpu_share is not None else ""
                    ceiling_rate = (
                        f"ceiling {ceiling.rate:.1f} fans/s ({ceiling.shape}{others}){cpu_note(ceiling)}, "
                        if ceiling
                        else ""
                    )
                    self.say(
                        f"  round {r + 1}: {ceiling_rate}engine {engine.rate:.1f} fans/s{cpu_note(engine)}{versus}"
                    )
            checks = benchmark.Checks.combined(
                [benchmark.check_engine(sandbox, campaign.pk, fans, uris) for campaign in campaigns]
            )
        finally:
            if options["keep"]:
                self.say(f"Kept campaigns {slug}-0… and their fans.")
            else:
                for campaign in campaigns:
                    benchmark.delete_campaign(campaign, f"{slug}-")
                tidy(benchmark.CHURNED_TABLES)
        best_ceiling = max((c for c, _, _ in results if c), key=lambda phase: phase.rate, default=None)
        _, best_engine, calls = max(results, key=lambda result: result[1].rate)
        if rounds > 1:
            for phase in (best_ceiling, best_engine):
                if phase is not None:
                    phase.note += f"; best of {rounds} rounds"
        # Each round's engine against the ceiling timed just before it.
        shares = {
            by: [share for ceiling, engine, _ in results if (share := round_share(ceiling, engine, by)) is not None]
            for by in ("rate", "cpu")
        }
        return {"baseline": baseline, "ceiling": best_ceiling, "engine": best_engine}, checks, calls, shares

    def report(
        self,
        phases: dict[str, Phase | None],
        checks: benchmark.Checks,
        calls: dict,
        shares: dict[str, list[float]],
        options,
        sandbox_pid: int,
    ) -> None:
        self.say("")
        self.say(f"  {'phase':<10}{'fans':>7}{'seconds':>10}{'fans/s':>10}{'CPU µs/fan':>12}   how")
        for name, phase in phases.items():
            if phase is None:
                skipped = "skipped: it does not pace (--all-phases runs it)"
                self.say(f"  {name:<10}{'n/a':>7}{'':>10}{'':>10}{'':>12}   {skipped}")
                continue
            short = f" ({phase.fans - phase.ok} not delivered)" if phase.ok < phase.fans else ""
            cpu = f"{phase.cpu_per_fan:.0f}" if phase.cpu_per_fan is not None else "n/a"
            self.say(
                f"  {name:<10}{phase.fans:>7}{phase.seconds:>10.2f}{phase.rate:>10.1f}{cpu:>12}   {phase.note}{short}"
            )
        if phases["engine"].counts:
            outcomes = ", ".join(f"{name} {count}" for name, count in sorted(phases["engine"].counts.items()))
            self.say(f"  engine outcomes: {outcomes}")
        for name, phase in phases.items():
            parts = phase.cpu_per_fan_by_part(sandbox_pid) if phase else {}
            if parts:
                where = ", ".join(f"{part} {micros:.0f}" for part, micros in parts.items())
                self.say(f"  {name} CPU µs a fan by part: {where}")

        self.say("")
        self.say("Targets")
        engine, baseline, ceiling = phases["engine"], phases["baseline"], phases["ceiling"]
        latency, unlimited = options["latency_ms"], options["rate_limit"] is None
        if baseline and baseline.rate:
            speedup = engine.rate / baseline.rate
            self.show_target(
                f"{speedup:.1f}× sequential",
                f"≥{SPEEDUP_TARGET}× at {SPEEDUP_LATENCY_MS} ms, no limit",
                speedup >= SPEEDUP_TARGET if unlimited and latency == SPEEDUP_LATENCY_MS else None,
            )
        if ceiling and ceiling.rate:
            share, what = engine.rate / ceiling.rate, "of ceiling"
            if len(shares["rate"]) > 1:
                # This machine's speed drifts by a fifth within a minute: a round's ceiling and engine, timed
                # back to back, drift together; the best of each may come from minutes apart.
                share, what = statistics.median(shares["rate"]), "of ceiling, median round"
                self.say(
                    f"  rounds' engine/ceiling: {', '.join(f'{r:.0%}' for r in shares['rate'])}; "
                    f"best engine / best ceiling {engine.rate / ceiling.rate:.0%}"
                )
            if shares["cpu"]:
                # Not the verdict (the target is about speed), but steadier: what the whole machine spent per
                # fan, the ceiling's over the engine's, where both phases keep every core busy.
                median = f"; median {statistics.median(shares['cpu']):.0%}" if len(shares["cpu"]) > 1 else ""
                self.say(f"  by CPU a fan, ceiling/engine: {', '.join(f'{r:.0%}' for r in shares['cpu'])}{median}")
            self.show_target(
                f"{share:.0%} {what}",
                f"≥{CEILING_TARGET:.0%} at 0 ms, no limit",
                share >= CEILING_TARGET if unlimited and latency == 0 else None,
            )
        rate_limit = options["rate_limit"]
        if calls and engine.fans:  # the bare loops make a refresh and one call per library write, a fan
            per_fan, bare = calls["requests"] / engine.fans, 1 + len(options["uris"])
            self.say(f"  engine calls a fan: {per_fan:.2f} (the ceiling's: {bare})")
            # Kept alive, a connection serves a call after another: one per call in flight, not one a call.
            bare_loops = ", ".join(f"{opened} with {shape}" for shape, opened in calls["ceilings"])
            beside = f" (the ceiling's: {bare_loops})" if bare_loops else ""
            self.say(f"  engine connections: {calls['connections']}{beside}")
        if rate_limit is not None:
            made, limited = calls["requests"], calls["rate_limited"]
            answered = made - limited
            used = answered / (rate_limit * engine.seconds / benchmark.RATE_WINDOW_SECONDS) if engine.seconds else 0.0
            limited_share = limited / made if made else 0.0
            self.say(
                f"  engine made {made} calls in {engine.seconds:.1f} s under {rate_limit} per "
                f"{benchmark.RATE_WINDOW_SECONDS} s: {answered} answered, {limited} answered 429"
            )
            self.show_target(
                f"{used:.0%} of the limit used, {limited_share:.2%} 429",
                f"≥{LIMIT_USED_TARGET:.0%} used, <{LIMITED_TARGET:.0%} 429",
                used >= LIMIT_USED_TARGET and limited_share < LIMITED_TARGET,
            )

        self.say("")
        self.say("Checks")
        statuses = ", ".join(
            f"{status} {checks.statuses.get(status, 0)}" for status in ("delivered", "failed", "revoked")
        )
        self.show_check(
            f"subscriptions: {statuses}; pending {checks.pending}, missing {checks.missing}",
            not (checks.pending or checks.missing),
        )
        for reason, count in checks.reasons:
            self.say(f"       not delivered, {count}×: {reason or '(no reason recorded)'}")
        again = "saved or followed" if options["follow"] else "saved"
        self.show_check(f"duplicates: {checks.duplicates} fans {again} more than once", not checks.duplicates)
        missing = "never saved or never followed" if options["follow"] else "never saved"
        self.show_check(f"recorded delivered but {missing}: {checks.unsaved}", not checks.unsaved)
        self.show_check(f"saved but not recorded delivered: {checks.unrecorded}", not checks.unrecorded)

    def show_target(self, figure: str, target: str, met: bool | None) -> None:
        if met is None:
            verdict = "n/a: not run under the target's conditions"
        else:
            verdict = self.style.SUCCESS("PASS") if met else self.style.WARNING("MISS")
        self.say(f"  {figure:<34} target {target:<28} {verdict}")

    def show_check(self, text: str, ok: bool) -> None:
        self.say(f"  {self.style.SUCCESS('OK  ') if ok else self.style.ERROR('FAIL')} {text}")

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()


def round_share(ceiling: Phase | None, engine: Phase, by: str = "rate") -> float | None:
    """The engine's rate as a share of the ceiling's; `by="cpu"`: the ceiling's CPU time per fan as a share of
    the engine's (None when the ceiling was not run or measured nothing)."""
    if by == "cpu":
        costs = (ceiling.cpu_per_fan if ceiling else None, engine.cpu_per_fan)
        return costs[0] / costs[1] if all(costs) else None
    return engine.rate / ceiling.rate if ceiling and ceiling.rate else None


def cpu_note(phase: Phase) -> str:
    return f" ({phase.cpu_per_fan:.0f} µs CPU a fan)" if phase.cpu_per_fan is not None else ""
