"""What the benchmark commands (bench_console, bench_delivery, bench_campaign_page) share: a positive-number
argument type, a free loopback port for a server they start, this database as a DATABASE_URL for it, and a
tidy-up of the tables they fill and empty."""

from __future__ import annotations

import socket
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
