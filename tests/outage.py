"""A database outage on demand: a TCP proxy in front of PostgreSQL that can cut every connection through it and
refuse new ones for a while, as a restart or a failover does. Only connections pointed at it (`through`) see
the outage; the rest of the test keeps its database."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

from django.db import connection


class DatabaseProxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            if time.monotonic() < self.down_until:
                client.close()  # the client sees the server close the connection: no SQLSTATE, as in an outage
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:  # PostgreSQL itself unreachable: the client sees its connection close
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    def cut(self, seconds: float) -> None:
        """Drop every connection through the proxy now, and refuse new ones for `seconds`."""
        self.down_until = time.monotonic() + seconds
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.cut(0)
        self.listener.close()


def pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def through(proxy: DatabaseProxy) -> Iterator[None]:
    """Point this thread's database connection at `proxy` (other threads keep theirs)."""
    original = connection.settings_dict
    connection.close()
    connection.settings_dict = {**original, "HOST": "127.0.0.1", "PORT": str(proxy.port)}
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict = original


@contextlib.contextmanager
def database_proxy() -> Iterator[DatabaseProxy]:
    settings = connection.settings_dict
    proxy = DatabaseProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    try:
        yield proxy
    finally:
        proxy.close()
