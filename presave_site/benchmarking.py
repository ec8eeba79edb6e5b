"""What the benchmark commands (bench_console, bench_delivery, bench_campaign_page) share: a positive-number
argument type, a free loopback port for a server they start, this database as a DATABASE_URL for it, a
stopwatch that also reads the machine's CPU time, and a tidy-up of the tables they fill and empty."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import quote

from django.db import connection


def positive(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    number = int(value)
    if number < 1:
        raise ValueError("must be at least 1")
    return number


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def machine_cpu_seconds() -> float | None:
    """The CPU time every process of the machine has used so far, all cores together (Linux's /proc/stat: user,
    nice, system, irq and softirq), in seconds; None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:8]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = ticks
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class ProcessCPU(NamedTuple):
    ppid: int
    name: str  # the executable's (Linux's comm: "postgres" for every PostgreSQL backend)
    seconds: float  # user + system, all its threads


def processes_cpu() -> dict[int, ProcessCPU]:
    """Every live process's CPU time so far, by pid (Linux's /proc/<pid>/stat); empty where there is none."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    line = stat.read()
            except OSError:  # ended meanwhile
                continue
            fields = line[line.rindex(")") + 2 :].split()  # state, ppid, …, utime (12th), stime (13th)
            name = line[line.index("(") + 1 : line.rindex(")")]
            found[int(entry.name)] = ProcessCPU(int(fields[1]), name, (int(fields[11]) + int(fields[12])) / tick)
    return found


class Stopwatch:
    """Wall time and the whole machine's CPU time between `start` and `stop`. On a machine whose every process
    serves the benchmark (its server, PostgreSQL, the phase timed), the CPU per unit of work says what a phase
    costs even when other work on a shared host makes its wall time drift. `processes` holds what each process
    alive at `stop` used meanwhile, to tell which part of the machine's CPU went where."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds: float | None = None
        self.processes: dict[int, ProcessCPU] = {}

    def start(self) -> None:
        self._processes = processes_cpu()
        self._wall, self._cpu = time.perf_counter(), machine_cpu_seconds()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._wall
        cpu = machine_cpu_seconds()
        self.cpu_seconds = None if cpu is None or self._cpu is None else cpu - self._cpu
        before = self._processes
        self.processes = {
            pid: p._replace(seconds=p.seconds - (before[pid].seconds if pid in before else 0.0))
            for pid, p in processes_cpu().items()
        }

    def cpu_by_part(self, part: Callable[[int, dict[int, ProcessCPU]], str | None]) -> dict[str, float]:
        """The machine's CPU time between start and stop, split by `part(pid, processes)` (None: the rest of
        the machine, which also holds processes that ended before `stop`, and the kernel's own work)."""
        parts: dict[str, float] = defaultdict(float)
        for pid, process in self.processes.items():
            name = part(pid, self.processes)
            if name is not None:
                parts[name] += process.seconds
        if self.cpu_seconds is not None:
            parts["rest"] = max(self.cpu_seconds - sum(parts.values()), 0.0)
        return dict(parts)


def database_url() -> str:
    """This process's database as a DATABASE_URL (the test database's, under pytest), for child processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = quote(db["USER"] or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def tidy(tables: tuple[str, ...]) -> None:
    """VACUUM and ANALYZE tables a benchmark filled, changed and emptied (PostgreSQL, outside a transaction), as
    autovacuum does in production: without it each run's dead rows slow the next run down, and the planner
    judges freshly seeded rows by stale statistics."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
