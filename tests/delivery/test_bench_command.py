"""`manage.py bench_delivery` end to end with tiny numbers: a correctness check, never a timing one."""

import datetime as dt
import io
import os
import time

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django_q.models import Schedule

from delivery import benchmark, engine
from delivery.models import DeliveryAttempt
from delivery.sandbox import demo_catalog
from delivery.sandbox.server import DEFAULT_CLIENT_ID
from fans.models import Fan, Subscription
from presave_site.benchmarking import Stopwatch
from releases.models import Campaign
from tests.conftest import make_campaign


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("workers", "rounds"), [(2, 1), (0, 2)], ids=["real-qcluster-workers", "in-process-two-rounds"]
)
def test_benchmark_delivers_every_fan_once_and_cleans_up(workers, rounds):
    out = io.StringIO()

    call_command("bench_delivery", fans=30, baseline_fans=5, latency_ms=0, workers=workers, rounds=rounds, stdout=out)

    output = out.getvalue()
    delivered = 30 * rounds
    assert f"OK   subscriptions: delivered {delivered}, failed 0, revoked 0; pending 0, missing 0" in output
    assert "OK   duplicates: 0 fans saved more than once" in output
    assert "FAIL" not in output
    for phase in ("baseline", "ceiling", "engine"):
        assert f"  {phase:<10}" in output
    assert "checks passed" in output.splitlines()[-1]
    if rounds > 1:  # the target is judged by the rounds' own engine/ceiling shares
        assert "rounds' engine/ceiling: " in output and "of ceiling, median round" in output
        # …and each round's CPU per fan is shown beside it (the machine's, from /proc/stat)
        assert output.count("µs CPU a fan") == 2 * rounds and "by CPU a fan, ceiling/engine: " in output
        # …against the faster of the bare loop's shapes, both timed in every round (workers=0: one process)
        rounds_lines = [line for line in output.splitlines() if line.startswith("  round ")]
        assert all("1 process × 64 in flight" in line and "1 process × 128 in flight" in line for line in rounds_lines)
        assert len(rounds_lines) == rounds
    assert "CPU µs/fan" in output
    # Two calls a fan, as the bare loop makes, and a few a run (the release's availability in the fans' market,
    # the app's own token): never a call more per fan.
    calls = float(output.split("engine calls a fan: ")[1].split()[0])
    assert "(the ceiling's: 2)" in output and 2 <= calls <= 2 + 4 / 30
    # Connections kept alive: one per call in flight at most (30 fans: 30 refreshes at once), and a few a run for
    # the release's lookups; a connection opened a call would be ~60. The bare loop's, beside them, likewise.
    connections = output.split("engine connections: ")[1]
    assert 1 <= int(connections.split()[0]) <= 30 + 4
    assert "the ceiling's: " in connections.splitlines()[0] and "1 process × 64 in flight" in connections
    assert "engine CPU µs a fan by part: client " in output and "ceiling CPU µs a fan by part: client " in output
    assert not Campaign.objects.exists() and not Subscription.objects.exists() and not Fan.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_benchmark_with_a_follow_follows_the_artist_in_every_phase():
    """--follow: each fan costs a refresh, a save and a follow, in the baseline and the ceiling as in the engine,
    and the checks count each fan's follow as they count its save."""
    out = io.StringIO()

    call_command(
        "bench_delivery",
        fans=20,
        baseline_fans=3,
        latency_ms=0,
        workers=0,
        rounds=2,
        follow=True,
        keep=True,
        stdout=out,
    )

    output = out.getvalue()
    assert "20 fans (refresh, save, follow)" in output
    assert "engine calls a fan: 3." in output and "(the ceiling's: 3)" in output
    assert "not delivered" not in output  # the bare loops got the follow scope and followed every fan
    assert "OK   subscriptions: delivered 40, failed 0, revoked 0; pending 0, missing 0" in output
    assert "OK   duplicates: 0 fans saved or followed more than once" in output
    assert "OK   recorded delivered but never saved or never followed: 0" in output
    assert "checks passed" in output.splitlines()[-1]
    kept = Campaign.objects.filter(slug__startswith="bench-")
    assert kept.count() == 2 and all(campaign.follow_artist for campaign in kept)
    # The engine's last call for each fan was the follow, after the save: both went out.
    delivered = DeliveryAttempt.objects.filter(outcome=DeliveryAttempt.Outcome.DELIVERED)
    assert delivered.count() == 40 and set(delivered.values_list("call", flat=True)) == {"follow"}


@pytest.mark.django_db(transaction=True)
def test_benchmark_warns_of_campaigns_already_delivering(campaign):
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.DELIVERING)
    out, err = io.StringIO(), io.StringIO()

    call_command("bench_delivery", fans=5, baseline_fans=2, latency_ms=0, workers=0, stdout=out, stderr=err)

    assert f"Warning: 1 campaign(s) in this database are delivering or due to ({campaign.slug})" in err.getvalue()
    assert "checks passed" in out.getvalue().splitlines()[-1]


def test_stopwatch_counts_the_machines_cpu_time():
    watch = Stopwatch()
    watch.start()
    spin_until = time.thread_time() + 0.3
    while time.thread_time() < spin_until:  # this process's own CPU: the machine's is at least that
        pass
    watch.stop()

    assert watch.seconds >= 0.3
    assert watch.cpu_seconds >= 0.25  # /proc/stat counts in clock ticks (10 ms)
    # …and what each process used meanwhile: this one spun, and its share is told apart from the rest
    assert watch.processes[os.getpid()].seconds >= 0.25
    parts = watch.cpu_by_part(lambda pid, processes: "me" if pid == os.getpid() else None)
    assert parts["me"] >= 0.25 and parts["rest"] >= 0
    assert parts["me"] + parts["rest"] == pytest.approx(watch.cpu_seconds, abs=0.05)  # read a tick apart


@pytest.mark.django_db
def test_postgresql_s_part_of_the_cpu_is_the_benchmark_database_s_not_another_s():
    """PostgreSQL's part is the backends of the benchmark's database and the server's shared processes (the
    postmaster, checkpointer, walwriter…): a backend of another database on the same server, another engineer's
    tests say, is other work on the machine, in the rest."""
    burn = "SELECT count(*) FROM generate_series(1, 3000000)"
    db = connection.settings_dict
    server = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"]}
    with psycopg.connect(**server, password=db["PASSWORD"] or None, dbname="postgres") as elsewhere:
        other = elsewhere.execute("SELECT pg_backend_pid()").fetchone()[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            own = cursor.fetchone()[0]
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
            checkpointer = cursor.fetchone()[0]
        watch = benchmark.PhaseWatch()
        watch.start()
        elsewhere.execute(burn)
        with connection.cursor() as cursor:
            cursor.execute(burn)
        watch.stop()
    phase = benchmark.Phase("engine", 1, watch.seconds, 1, watch=watch)

    postmaster = watch.processes[own].ppid
    assert watch.processes[postmaster].name == watch.processes[other].name == "postgres"
    assert [phase.part_of(pid, sandbox_pid=0) for pid in (own, checkpointer, postmaster)] == ["PostgreSQL"] * 3
    assert phase.part_of(other, sandbox_pid=0) is None
    # …so its CPU time is in the rest of the machine's (µs: one fan), not in PostgreSQL's
    spent = watch.processes[other].seconds * 1e6
    parts = phase.cpu_per_fan_by_part(sandbox_pid=0)
    assert spent >= 100_000 and parts["rest"] >= spent - 20_000  # /proc's clock ticks: 10 ms


@pytest.mark.django_db(transaction=True)
def test_a_seeded_campaign_has_no_schedule_a_running_cluster_would_fire():
    """The benchmark times the engine itself: a release-time schedule (due at once) would let any cluster on
    the database deliver the campaign meanwhile."""
    campaign = benchmark.seed_campaign("bench-seeded", {"fan-a": "token-a", "fan-b": "token-b"})

    assert campaign.status == Campaign.Status.LIVE and campaign.subscriptions.count() == 2
    assert not Schedule.objects.filter(name__endswith=f"-{campaign.pk}").exists()


@pytest.mark.django_db
def test_the_seeded_fans_are_judged_in_their_own_market_as_fans_who_signed_up_there(sandbox):
    """The benchmark's fans are in GB (their sandbox users and Fan rows): their pre-saves are too, as sign-up
    records a fan's market, so the engine asks whether the release is out in GB, not in the campaign's default
    market (US), which would deliver them, or make them wait, on the strength of another market."""
    ids = ["bench-gb-1", "bench-gb-2"]
    body = {"ids": ids, "client_id": DEFAULT_CLIENT_ID, "scope": benchmark.SCOPE, "country": benchmark.MARKET}
    minted = sandbox.control("POST", "users/bulk-authorize", body)
    campaign = benchmark.seed_campaign("bench-in-gb", {user: minted[user]["refresh_token"] for user in ids})
    assert campaign.default_market == "US"
    album_markets = f"catalog/albums/{demo_catalog.NOVA_LARK_ALBUM_ID}/markets"
    sandbox.control("POST", album_markets, {"available_markets": ["GB"]})

    engine.deliver_campaign(campaign.pk)

    assert set(campaign.subscriptions.values_list("market", "status")) == {("GB", "delivered")}


@pytest.mark.django_db(transaction=True)
def test_benchmark_warns_of_a_live_campaign_whose_delivery_is_due():
    campaign = make_campaign(slug="left-live", release_in=dt.timedelta(minutes=-5))  # its schedule: due
    make_campaign(slug="weeks-away")  # due in two weeks: no warning
    assert Schedule.objects.filter(name__endswith=f"-{campaign.pk}", repeats=1).exists()
    out, err = io.StringIO(), io.StringIO()

    call_command("bench_delivery", fans=5, baseline_fans=2, latency_ms=0, workers=0, stdout=out, stderr=err)

    assert "Warning: 1 campaign(s) in this database are delivering or due to (left-live)" in err.getvalue()


def test_the_ceiling_is_the_faster_of_the_bare_loop_and_the_engine_s_own_shape(settings):
    settings.DELIVERY_CONCURRENCY = 128
    assert benchmark.ceiling_shapes(None, workers=2) == [(1, 64), (2, 256)]
    assert benchmark.ceiling_shapes(None, workers=0) == [(1, 64), (1, 128)]
    settings.DELIVERY_CONCURRENCY = 64
    assert benchmark.ceiling_shapes(None, workers=1) == [(1, 64)]  # one shape, timed once
    assert benchmark.ceiling_shapes(300, workers=2) == [(2, 300)]  # --concurrency: the engine's shape only
