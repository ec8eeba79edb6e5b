"""What the benchmark commands (bench_console, bench_delivery, bench_campaign_page) share: a positive-number
argument type, a free loopback port for a server they start, this database as a DATABASE_URL for it, a
stopwatch that also reads the machine's CPU time, and a tidy-up of the tables they fill and empty."""

from __future__ import annotations

import os
import socket
import time
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


class Stopwatch:
    """Wall time and the whole machine's CPU time between `start` and `stop`. On a machine whose every process
    serves the benchmark (its server, PostgreSQL, the phase timed), the CPU per unit of work says what a phase
    costs even when other work on a shared host makes its wall time drift."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.cpu_seconds: float | None = None

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), machine_cpu_seconds()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._wall
        cpu = machine_cpu_seconds()
        self.cpu_seconds = None if cpu is None or self._cpu is None else cpu - self._cpu


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
