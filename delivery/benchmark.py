"""The release-day benchmark behind `manage.py bench_delivery`.

The sandbox runs in its own process (the benchmark must not share a GIL with it). Three phases are timed on
separate sets of sandbox fans, because refresh tokens rotate and work once:

baseline  the simple sequential loop: `requests`, one fan after the other, refresh then save; no database;
ceiling   a bare concurrent loop: aiohttp with N requests in flight, refresh then save; no database, no
          encryption: as fast as this machine and the sandbox allow;
engine    the delivery task on a seeded campaign, in a real qcluster with K worker processes (or in this process).

With a follow (`bench_delivery --follow`), every phase also follows the artist after the save.

Then the engine's result is checked against the database and the sandbox's write log.

Models are imported inside the functions, so that this module imports before Django is set up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import itertools
import json
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import requests
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from delivery.gctuning import tuned_for_delivery
from delivery.sandbox import demo_catalog
from delivery.sandbox.client import SandboxClient
from delivery.sandbox.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from presave_site import benchmarking
from presave_site.benchmarking import Stopwatch, free_port

ALBUM_URI = f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}"
ARTIST_URI = f"spotify:artist:{demo_catalog.NOVA_LARK_ARTIST_ID}"
SCOPE = "user-library-modify"
MARKET = "GB"  # the benchmark's fans' country: their sandbox users', their Fan rows' and their pre-saves' market
FOLLOW_SCOPE = "user-library-modify user-follow-modify"
SEED_BATCH = 1000
STARTUP_SECONDS = 30
HTTP_TIMEOUT_SECONDS = 30
RATE_WINDOW_SECONDS = 30
MAX_429_RETRIES = 20
CLUSTER_POLL_SECONDS = 0.1  # the ORM broker's poll: how soon a queued task is picked up


class BenchmarkError(Exception):
    """The benchmark could not run (the sandbox did not start, an engine process died, …)."""


# --- The sandbox, in its own process ----------------------------------------------------------------------
class SandboxProcess(SandboxClient):
    """`python -m delivery.sandbox` on a free port; its output goes to a temporary file, shown if it fails."""

    def __init__(self, latency_ms: float) -> None:
        super().__init__()
        self.latency_ms = latency_ms
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open while the sandbox runs, closed by stop()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> SandboxProcess:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        argv = [sys.executable, "-m", "delivery.sandbox", "--port", str(port), "--latency-ms", str(self.latency_ms)]
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            argv, cwd=settings.BASE_DIR, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise BenchmarkError(f"The sandbox did not start at {self.url}:\n{output}")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def healthy(self) -> bool:
        try:
            return self.http.get(f"{self.url}/_sandbox/health", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        self.log.close()

    def output(self) -> str:
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def mint(self, user_ids: list[str], scope: str = SCOPE) -> dict[str, str]:
        """Create sandbox users and mint each a refresh token for `scope` (bulk, 1,000 per call): user id → token."""
        tokens = {}
        for chunk in batched(user_ids, SEED_BATCH):
            body = {"ids": chunk, "client_id": DEFAULT_CLIENT_ID, "scope": scope, "country": MARKET}
            minted = self.control("POST", "users/bulk-authorize", body)
            tokens.update({user_id: minted[user_id]["refresh_token"] for user_id in chunk})
        return tokens

    def counters(self) -> dict[str, Any]:
        return self.control("GET", "counters")


def library_writes(follow: bool) -> tuple[str, ...]:
    """The URIs each fan's library gets, in order, through PUT /v1/me/library (the engine's Spotify calls, with
    SPOTIFY_LIBRARY_API's default): the album, and with `follow` the artist (a follow is an artist's URI)."""
    return (ALBUM_URI, ARTIST_URI) if follow else (ALBUM_URI,)


def batched(items: list, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# --- Seeding the database ---------------------------------------------------------------------------------
def seed_campaign(slug: str, tokens: dict[str, str], *, follow: bool = False):
    """An artist, the sandbox's demo album (out since a minute ago) and a live campaign with one pending
    subscription in MARKET and sealed credential per fan in `tokens` (sandbox user id → refresh token), which
    saves the album and, with `follow`, follows the artist."""
    from fans.models import Credential, Fan, Subscription
    from releases.models import Artist, Campaign, Release

    released_at = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=1)
    with transaction.atomic():
        artist = Artist.objects.create(name="Nova Lark (benchmark)", spotify_uri=ARTIST_URI)
        release = Release.objects.create(
            artist=artist,
            title="Glass Harbour (benchmark)",
            kind=Release.Kind.ALBUM,
            upc=demo_catalog.NOVA_LARK_ALBUM_UPC,
            spotify_uri=ALBUM_URI,
            release_date=released_at.date(),
            release_time=released_at.time(),
            timezone="UTC",
        )
        campaign = Campaign.objects.create(
            release=release, slug=slug, status=Campaign.Status.LIVE, follow_artist=follow
        )
        for chunk in batched(list(tokens.items()), SEED_BATCH):
            fans = Fan.objects.bulk_create(
                Fan(service="spotify", service_user_id=user_id, display_name=user_id, country=MARKET)
                for user_id, _ in chunk
            )
            # In their market, as sign-up records it (fans.authorization): a blank one would be the campaign's
            # default market (US), and the engine would ask about the release there, not where the fans are.
            subscriptions = Subscription.objects.bulk_create(
                Subscription(fan=fan, campaign=campaign, market=MARKET) for fan in fans
            )
            credentials = []
            for subscription, (_, token) in zip(subscriptions, chunk, strict=True):
                credential = Credential(subscription=subscription, authorized_at=timezone.now())
                credential.store(token)
                credentials.append(credential)
            Credential.objects.bulk_create(credentials)
    # The benchmark runs the engine itself. The campaign's release-time schedule, made when the campaign was
    # committed (releases/signals.py) and due at once, would have the scheduler of whatever cluster runs on
    # this database deliver it too: a later round's campaign during an earlier round, say.
    drop_schedules(campaign.pk)
    return campaign


def drop_schedules(campaign_id: int) -> None:
    from django_q.models import Schedule

    from delivery import scheduling
    from fans import release_email

    names = [scheduling.schedule_name(campaign_id), release_email.schedule_name(campaign_id)]
    Schedule.objects.filter(name__in=names).delete()


def delete_campaign(campaign, fan_prefix: str) -> None:
    """Delete what seed_campaign made (subscriptions, credentials and delivery log go with the campaign)."""
    from fans.models import Fan, Subscription

    with transaction.atomic():
        Subscription.objects.filter(campaign=campaign).delete()
        drop_schedules(campaign.pk)
        release = campaign.release
        campaign.delete()
        release.delete()
        release.artist.delete()
        Fan.objects.filter(service="spotify", service_user_id__startswith=fan_prefix).delete()


CHURNED_TABLES = ("fans_fan", "fans_subscription", "fans_credential", "delivery_deliveryattempt")


# --- The phases -------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    fans: int
    seconds: float
    ok: int
    note: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    shape: str = ""  # the ceiling's: its processes and calls in flight
    watch: PhaseWatch | None = None  # what timed it: the machine's CPU and each process's meanwhile
    connections: int | None = None  # the TCP connections the sandbox saw it open (the ceiling's)

    @property
    def rate(self) -> float:
        return self.fans / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_seconds(self) -> float | None:
        """The whole machine's CPU time while the phase ran (see benchmarking.Stopwatch)."""
        return self.watch.cpu_seconds if self.watch else None

    @property
    def cpu_per_fan(self) -> float | None:
        """The machine's CPU time per fan, in microseconds."""
        return self.cpu_seconds / self.fans * 1e6 if self.cpu_seconds is not None and self.fans else None

    def cpu_per_fan_by_part(self, sandbox_pid: int) -> dict[str, float]:
        """Where the machine's CPU time went, in microseconds a fan: the client (this command and what it started:
        the bare loop's processes, the engine's cluster), PostgreSQL, the sandbox, and the rest of the machine."""
        if self.watch is None or not self.fans:
            return {}
        parts = self.watch.cpu_by_part(lambda pid, processes: self.part_of(pid, sandbox_pid))
        return {name: parts.get(name, 0.0) / self.fans * 1e6 for name in ("client", "PostgreSQL", "sandbox", "rest")}

    def part_of(self, pid: int, sandbox_pid: int) -> str | None:
        """The part of the machine process `pid` (alive when the phase ended) is in; None: the rest."""
        processes, me = self.watch.processes, os.getpid()
        if pid == sandbox_pid:
            return "sandbox"
        if processes[pid].name == "postgres":  # another database's backend: other work on the server, the rest
            return "PostgreSQL" if self.watch.postgres.get(pid, True) else None
        while pid not in (me, 0, 1) and pid in processes:  # the client: this process and its descendants
            pid = processes[pid].ppid
        return "client" if pid == me else None


class PhaseWatch(Stopwatch):
    """What times a phase; as it stops, it also reads which PostgreSQL processes are the benchmark's
    (`benchmark_postgres`), for `Phase.part_of`."""

    def __init__(self) -> None:
        super().__init__()
        self.postgres: dict[int, bool] = {}

    def stop(self) -> None:
        super().stop()
        self.postgres = benchmark_postgres()


def benchmark_postgres() -> dict[int, bool]:
    """PostgreSQL's processes by pid (pg_stat_activity), each with whether it is the benchmark's: a backend of
    its database, or one of no database (the checkpointer, walwriter, background writer, which every database
    shares); not another database's backend. Those it leaves out (the postmaster) are shared too. Empty on a
    database that is not PostgreSQL."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid, datname IS NULL OR datname = current_database() FROM pg_stat_activity")
        return dict(cursor.fetchall())


def run_baseline(sandbox: SandboxProcess, tokens: list[str], uris: tuple[str, ...] = (ALBUM_URI,)) -> Phase:
    """One fan after the other with `requests` (one kept-alive session): refresh, then put each of `uris` in the
    fan's library (the album; with a follow, the artist too)."""
    http = requests.Session()
    auth = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    ok = 0
    watch = PhaseWatch()
    watch.start()
    for token in tokens:
        form = {"grant_type": "refresh_token", "refresh_token": token}
        answer = _send(http, "POST", f"{sandbox.accounts_url}/api/token", data=form, auth=auth)
        if answer.status_code != 200:
            continue
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        for uri in uris:
            saved = _send(http, "PUT", f"{sandbox.api_url}/v1/me/library", params={"uris": uri}, headers=headers)
            if saved.status_code != 200:
                break
        else:
            ok += 1
    watch.stop()
    http.close()
    note = "requests, one fan at a time"
    return Phase("baseline", len(tokens), watch.seconds, ok, note, watch=watch)


def _send(http: requests.Session, method: str, url: str, **kwargs: Any) -> requests.Response:
    """A 429 is refused before anything happens (the token is not used up): wait Retry-After, send again."""
    for _ in range(MAX_429_RETRIES):
        response = http.request(method, url, timeout=HTTP_TIMEOUT_SECONDS, **kwargs)
        if response.status_code != 429:
            break
        time.sleep(float(response.headers.get("Retry-After", "1")))
    return response


BARE_LOOP_IN_FLIGHT = 64  # the bare loop of the issue's own figures: aiohttp, one process, 64 in flight


def ceiling_shapes(concurrency: int | None, workers: int) -> list[tuple[int, int]]:
    """The (processes, calls in flight) shapes of the bare loop that a round times, taking the faster as the
    machine's ceiling: one process with BARE_LOOP_IN_FLIGHT, and the engine's own shape (a process per worker,
    DELIVERY_CONCURRENCY per run). On two cores, shared with the sandbox and PostgreSQL, the first is the
    faster by a fifth or more: more processes and calls in flight only add switching. With `concurrency`,
    just the engine's shape with that many in flight."""
    processes = max(workers, 1)
    if concurrency:
        return [(processes, concurrency)]
    shapes = [(1, BARE_LOOP_IN_FLIGHT), (processes, settings.DELIVERY_CONCURRENCY * processes)]
    return list(dict.fromkeys(shapes))


def shape_words(processes: int, in_flight: int) -> str:
    return f"{processes} process{'es' if processes > 1 else ''} × {in_flight} in flight"


def run_ceiling(
    sandbox: SandboxProcess,
    tokens: list[str],
    concurrency: int,
    processes: int = 1,
    uris: tuple[str, ...] = (ALBUM_URI,),
) -> Phase:
    """`concurrency` fans in flight with aiohttp, each refreshed then given each of `uris` (the album; with a
    follow, the artist too); nothing else. In `processes`
    processes (the fans and the calls in flight shared between them), to compare like with like with an engine
    that runs in that many worker processes."""
    urls = (sandbox.accounts_url, sandbox.api_url)
    watch = PhaseWatch()
    if processes == 1:
        with tuned_for_delivery():  # the engine's collector settings, as in ceiling_process
            watch.start()
            ok = asyncio.run(_ceiling(*urls, tokens, concurrency, uris))
            watch.stop()
    else:
        ok = _ceiling_in_processes(urls, tokens, concurrency, processes, watch, uris)
    shape = shape_words(processes, concurrency)
    note = f"aiohttp, {shape}, no DB, no encryption"
    return Phase("ceiling", len(tokens), watch.seconds, ok, note, shape=shape, watch=watch)


def _ceiling_in_processes(
    urls: tuple[str, str], tokens: list[str], concurrency: int, processes: int, watch: PhaseWatch, uris: tuple[str, ...]
) -> int:
    """Spawned processes each take their share of the fans, report ready, and start together on a signal."""
    context = multiprocessing.get_context("spawn")
    go, messages = context.Event(), context.Queue()
    children = [
        context.Process(
            target=ceiling_process,
            args=(*urls, tokens[i::processes], max(1, concurrency // processes), go, messages, uris),
            daemon=True,
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    try:
        _collect(messages, children, "ready")
        watch.start()
        go.set()
        delivered = _collect(messages, children, "done")
        watch.stop()
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    return sum(delivered)


def _collect(messages, children: list, kind: str) -> list:
    received = []
    while len(received) < len(children):
        try:
            message_kind, payload = messages.get(timeout=1)
        except queue.Empty:
            if not any(child.is_alive() for child in children):
                raise BenchmarkError("Every ceiling process exited before reporting.") from None
            continue
        if message_kind == "error":
            raise BenchmarkError(f"A ceiling process failed:\n{payload}")
        if message_kind == kind:
            received.append(payload)
    return received


def ceiling_process(
    accounts_url: str, api_url: str, tokens: list[str], concurrency: int, go, messages, uris: tuple[str, ...]
) -> None:
    """One process of the ceiling (the target of a spawned multiprocessing.Process)."""
    try:
        messages.put(("ready", None))
        go.wait()
        with tuned_for_delivery():  # the engine's collector settings: like for like
            messages.put(("done", asyncio.run(_ceiling(accounts_url, api_url, tokens, concurrency, uris))))
    except BaseException:
        messages.put(("error", traceback.format_exc()))


async def _ceiling(
    accounts_url: str, api_url: str, tokens: list[str], concurrency: int, uris: tuple[str, ...] = (ALBUM_URI,)
) -> int:
    """Deliver `tokens`' fans with `concurrency` in flight, each of `uris` in turn; how many got them all."""
    secret = base64.b64encode(f"{DEFAULT_CLIENT_ID}:{DEFAULT_CLIENT_SECRET}".encode()).decode()
    client = {"Authorization": f"Basic {secret}", "Content-Type": "application/x-www-form-urlencoded"}
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS)
    pending = iter(tokens)  # one iterator shared by every worker of this one event loop
    delivered = 0

    async def send(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, bytes]:
        """Like _send: wait out a 429 and send again."""
        for _ in range(MAX_429_RETRIES):
            async with http.request(method, url, **kwargs) as response:
                status, body = response.status, await response.read()
                retry_after = float(response.headers.get("Retry-After", "1"))
            if status != 429:
                break
            await asyncio.sleep(retry_after)
        return status, body

    async def work(http: aiohttp.ClientSession) -> None:
        nonlocal delivered
        for token in pending:
            form = urlencode({"grant_type": "refresh_token", "refresh_token": token}).encode()  # as the engine does
            status, body = await send(http, "POST", f"{accounts_url}/api/token", data=form, headers=client)
            if status != 200:
                continue
            headers = {"Authorization": f"Bearer {json.loads(body)['access_token']}"}
            url = f"{api_url}/v1/me/library"
            for uri in uris:
                status, _ = await send(http, "PUT", url, params={"uris": uri}, headers=headers)
                if status != 200:
                    break
            else:
                delivered += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(work(http) for _ in range(concurrency)))
    return delivered


def run_engine(campaign_id: int, workers: int, environment: dict[str, str]) -> Phase:
    """The engine as production runs it: a real `manage.py qcluster` with `workers` worker processes, fed the
    task Deliver now queues (`deliver_campaign`, which queues helper runs for the other workers); timed from
    queueing to the last fan settled. With `workers=0`, `deliver_campaign` runs here, in this process."""
    from fans.models import Subscription

    subscriptions = Subscription.objects.filter(campaign_id=campaign_id)
    fans = subscriptions.count()
    watch = PhaseWatch()
    if workers == 0:
        from delivery.engine import deliver_campaign

        watch.start()
        report = deliver_campaign(campaign_id, fan_out=False)
        watch.stop()
        counts = dict(report.counts)
        note = "deliver_campaign, in this process (1 run)"
    else:
        with Cluster(environment, workers) as cluster:
            watch.start()
            cluster.deliver(campaign_id)
            watch.stop()
        counts = dict(Counter(subscriptions.values_list("status", flat=True)))
        note = f"qcluster, {workers} worker processes, a run each"
    return Phase("engine", fans, watch.seconds, counts.get("delivered", 0), note, counts, watch=watch)


class Cluster:
    """`manage.py qcluster` on the benchmark's database (its cluster name, the broker's queue, is this process's:
    django-q2 signs tasks with it)."""

    def __init__(self, environment: dict[str, str], workers: int) -> None:
        self.env = {
            **os.environ,
            **environment,
            "DATABASE_URL": database_url(),
            "Q_WORKERS": str(workers),
            "Q_POLL": str(CLUSTER_POLL_SECONDS),
            "DELIVERY_PARALLEL_RUNS": str(workers),
            "CONN_MAX_AGE": "60",  # persistent connections, as in production (README: Production)
        }
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - kept open while the cluster runs, closed by stop()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Cluster:
        self.process = subprocess.Popen(  # noqa: S603 - our own command, fixed arguments
            [sys.executable, "manage.py", "qcluster"],
            cwd=settings.BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_for(self.queue("delivery.benchmark.warm_up"), STARTUP_SECONDS, "start")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM (the sentinel stops its workers), then SIGKILL whatever of the cluster is left: a cluster left
        running would go on sweeping the database's campaigns with this run's sandbox address."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def queue(self, func: str, *args: Any, **kwargs: Any) -> str:
        from django_q.tasks import async_task

        return async_task(func, *args, **kwargs)

    def deliver(self, campaign_id: int) -> None:
        """Queue the delivery task and return when no fan of the campaign is pending any more.

        The wait shares the cores with the phase it times, so it costs as little as it can: one plain query
        every 50 ms, and the task's state read once a second. (Two ORM queries at each turn took ~0.6 ms of
        Python each time: ~15 µs a fan of the engine's phase, as much as a fifth of what the run thread costs.)
        """
        from delivery.scheduling import DELIVER_TASK
        from fans.models import Subscription

        task_id = self.queue(DELIVER_TASK, campaign_id, reopen=True)  # as Deliver now queues it
        table = connection.ops.quote_name(Subscription._meta.db_table)
        any_pending = f"SELECT 1 FROM {table} WHERE campaign_id = %s AND status = %s LIMIT 1"  # noqa: S608
        checked = time.monotonic()
        with connection.cursor() as cursor:
            while True:
                cursor.execute(any_pending, [campaign_id, Subscription.Status.PENDING])
                if cursor.fetchone() is None:
                    return
                if time.monotonic() - checked >= 1:
                    self.check(task_id, "deliver")
                    checked = time.monotonic()
                time.sleep(0.05)

    def wait_for(self, task_id: str, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not self.check(task_id, what):
            if time.monotonic() > deadline:
                raise BenchmarkError(f"The benchmark's qcluster did not {what} in {seconds} s:\n{self.output()}")
            time.sleep(0.1)

    def check(self, task_id: str, what: str) -> bool:
        """Whether the task is done; raises if it failed or the cluster died."""
        from django_q.models import Task

        task = Task.objects.filter(id=task_id).only("success", "result").first()
        if task is not None and not task.success:
            raise BenchmarkError(f"The benchmark's qcluster failed to {what}:\n{task.result}")
        if self.process.poll() is not None:
            raise BenchmarkError(f"The benchmark's qcluster exited:\n{self.output()}")
        return task is not None

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]


def warm_up() -> str:
    """A task that does nothing: its result shows the benchmark's cluster is taking work."""
    return "ready"


def database_url() -> str:
    """This process's database as a DATABASE_URL (the test database's, under pytest)."""
    if connection.vendor != "postgresql":
        raise BenchmarkError("The engine's workers need PostgreSQL; use --workers 0 to run the engine in process.")
    return benchmarking.database_url()


def wait_for_empty_window(sandbox: SandboxProcess) -> None:
    """Let earlier phases' calls leave the rate-limit window, so the engine starts with all of it."""
    deadline = time.monotonic() + RATE_WINDOW_SECONDS + 5
    while sandbox.counters()["window_used"] and time.monotonic() < deadline:
        time.sleep(0.5)


# --- Checks -----------------------------------------------------------------------------------------------
@dataclass
class Checks:
    seeded: int
    statuses: dict[str, int]
    duplicates: int  # fans saved (or that followed) more than once
    unsaved: int  # recorded delivered, but the sandbox saw no save (or no follow, when the campaign follows)
    unrecorded: int  # saved in the sandbox, but not recorded delivered
    reasons: list[tuple[str, int]] = field(default_factory=list)  # the commonest reasons fans were not delivered

    @classmethod
    def combined(cls, checks: list[Checks]) -> Checks:
        """The checks of several campaigns (rounds) as one."""
        statuses, reasons = Counter(), Counter()
        for check in checks:
            statuses.update(check.statuses)
            reasons.update(dict(check.reasons))
        return cls(
            seeded=sum(check.seeded for check in checks),
            statuses=dict(statuses),
            duplicates=sum(check.duplicates for check in checks),
            unsaved=sum(check.unsaved for check in checks),
            unrecorded=sum(check.unrecorded for check in checks),
            reasons=reasons.most_common(3),
        )

    @property
    def pending(self) -> int:
        return self.statuses.get("pending", 0)

    @property
    def missing(self) -> int:
        return self.seeded - sum(self.statuses.values())

    @property
    def failures(self) -> list[str]:
        problems = {
            "subscriptions still pending": self.pending,
            "subscriptions lost": self.missing,
            "fans saved more than once": self.duplicates,
            "subscriptions recorded delivered without a save": self.unsaved,
            "fans saved but not recorded delivered": self.unrecorded,
        }
        return [f"{count} {what}" for what, count in problems.items() if count]


def check_engine(
    sandbox: SandboxProcess, campaign_id: int, seeded: int, uris: tuple[str, ...] = (ALBUM_URI,)
) -> Checks:
    """The campaign's outcomes against the sandbox's write log: each fan recorded delivered got each of `uris`
    (`library_writes`) once, and no other fan got any."""
    from fans.models import Subscription

    subscriptions = Subscription.objects.filter(campaign_id=campaign_id)
    statuses = Counter(subscriptions.values_list("status", flat=True))
    fans = dict(subscriptions.values_list("fan__service_user_id", "status"))
    writes = Counter(
        (write["user_id"], write["uri"]) for write in sandbox.control("GET", "writes") if write["user_id"] in fans
    )
    written = {user_id for user_id, _ in writes}
    complete = {user_id for user_id in written if all((user_id, uri) in writes for uri in uris)}
    delivered = {user_id for user_id, status in fans.items() if status == Subscription.Status.DELIVERED}
    return Checks(
        seeded=seeded,
        statuses=dict(statuses),
        duplicates=len({user_id for (user_id, _), count in writes.items() if count > 1}),
        unsaved=len(delivered - complete),
        unrecorded=len(written - delivered),
        reasons=Counter(
            subscriptions.exclude(status=Subscription.Status.DELIVERED).values_list("last_error", flat=True)
        ).most_common(3),
    )
