"""What the benchmark commands (bench_console, bench_delivery, bench_campaign_page) share: a positive-number
argument type, a free loopback port for a server they start, and this database as a DATABASE_URL for it."""

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
