"""Run the whole demo in one terminal: the service sandbox, a django-q2 cluster and the web server.

The web server and worker talk to the sandbox for Spotify, Apple Music and Deezer. Apple Music's developer
token needs a MusicKit key: the demo makes its own (var/demo-musickit.p8, never a real key) and tells the sandbox
its public half; Spotify and Deezer use the sandbox's registered apps. This command is the one place the demo
points the site at the sandbox: bin/write-demo-env writes only the secrets, so another --sandbox-port or
--web-port is all it takes.

Each runs as a child process in its own process group, its output prefixed with its name. Ctrl-C (or SIGTERM)
stops them all; if one of them exits on its own, the others are stopped too and the command fails. Both ports are
checked before anything starts, and `--check` checks only (make demo runs it before seeding, which moves the demo's
release time). Each process's pid is written to var/demo/<name>.pid: should run_demo itself be
killed, its children (in their own groups) live on, and `run_demo --stop` (make stop) ends exactly those, never
another checkout's.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from delivery.sandbox import deezer as sandbox_deezer
from delivery.sandbox import server as sandbox_server

STARTUP_SECONDS = 60
DEMO_MUSICKIT_KEY_ID = "DEMOKEY001"
DEMO_MUSICKIT_TEAM_ID = "DEMOTEAM01"


def demo_musickit_key(directory: Path) -> tuple[Path, Path]:
    """The demo's MusicKit key pair (P-256; the private half as a .p8 holds it), made once in `directory`."""
    private_path, public_path = directory / "demo-musickit.p8", directory / "demo-musickit.pub.pem"
    if not (private_path.exists() and public_path.exists()):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        directory.mkdir(parents=True, exist_ok=True)
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private_path.chmod(0o600)
        public_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private_path, public_path


STOP_SECONDS = 10
RESTART_AFTER_SECONDS = 10  # a worker that exits sooner is not started again: it would only exit again
PID_DIR = "var/demo"  # under the project folder
DEMO = "run_demo"  # the name of run_demo's own pid file, beside its children's


def port(text: str) -> int:
    """argparse type: a TCP port number."""
    number = int(text)  # not a number: argparse says "invalid port value"
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port (1 to 65535)")
    return number


def port_problem(number: int) -> str | None:
    """Why the demo can't listen on 127.0.0.1:`number`, or None when it can. Bound and let go at once, with the
    SO_REUSEADDR our servers set: a port that a demo stopped a moment ago left in TIME_WAIT counts as free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", number))
        except OSError as exc:
            return "is in use" if exc.errno == errno.EADDRINUSE else f"can't be used ({exc.strerror})"
    return None


def next_free_port(after: int, taken: set[int]) -> int:
    """The first port above `after` that is free and not in `taken` (to suggest one that will work)."""
    for number in range(after + 1, min(after + 100, 65536)):
        if number not in taken and port_problem(number) is None:
            return number
    return after + 1


class PidFiles:
    """The demo's processes, one `<name>.pid` file each (var/demo/run_demo.pid, sandbox.pid, worker.pid,
    web.pid). A child leads its own process group, so its pid is also the group's id: `kill -9 -- -<pid>` ends
    a cluster together with its worker processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, name: str, pid: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / f"{name}.pid").write_text(f"{pid}\n")

    def read(self) -> dict[str, int]:
        pids = {}
        for path in sorted(self.directory.glob("*.pid")):
            with contextlib.suppress(OSError, ValueError):
                pids[path.stem] = int(path.read_text())
        return pids

    def clear(self) -> None:
        for path in self.directory.glob("*.pid"):
            path.unlink(missing_ok=True)

    def running(self) -> dict[str, list[int]]:
        """For each pid file, the live processes of this checkout's demo it stands for: run_demo itself, or the
        members of a child's process group (a cluster's worker processes too). A pid that has since gone to
        some other program (another checkout's demo, say) is left out: the children's command lines name this
        checkout's manage.py by its full path."""
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        table = processes()
        found = {}
        for name, pid in self.read().items():
            if name == DEMO:
                members = [p for p, _, command in table if p == pid and "manage.py" in command and DEMO in command]
            else:
                members = [p for p, group, command in table if group == pid and manage in command]
            if members:
                found[name] = members
        return found


def processes() -> list[tuple[int, int, str]]:
    """(pid, process group, command line) of every process, from ps (the same on Linux and macOS). -ww: whole
    command lines, where COLUMNS or a terminal's width would cut them short of the checkout's path."""
    argv = ["ps", "-ww", "-A", "-o", "pid=,pgid=,args="]
    listing = subprocess.run(argv, capture_output=True, text=True, check=True).stdout  # noqa: S603, S607 (fixed)
    table = []
    for line in listing.splitlines():
        fields = line.split(None, 2)
        if len(fields) == 3 and fields[0].isdigit() and fields[1].isdigit():
            table.append((int(fields[0]), int(fields[1]), fields[2]))
    return table


def signal_each(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def wait_until(done: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


class ChildExited(Exception):
    def __init__(self, child: Child) -> None:
        super().__init__(f"{child.name} exited with code {child.process.returncode}")
        self.child = child


class Child:
    """One child process whose output lines are copied to `write`, prefixed with its name."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        write: Callable[[str, str], None],
        pid_files: PidFiles,
        *,
        restart: bool = False,
    ) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.write = write
        self.pid_files = pid_files
        self.restart = restart  # started again when it exits after running a while (as a supervisor would)
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(  # noqa: S603 (our own manage.py commands)
            self.argv,
            cwd=settings.BASE_DIR,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            process_group=0,  # our own group: the terminal's Ctrl-C reaches only us, and we stop it in order
        )
        self.pid_files.write(self.name, self.process.pid)
        threading.Thread(target=self.pump, name=f"{self.name}-output", daemon=True).start()

    def pump(self) -> None:
        for raw in iter(self.process.stdout.readline, b""):
            self.write(self.name, raw.decode(errors="replace").rstrip("\n"))

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def terminate(self) -> None:
        """Ask the child to stop. Only the child itself: qcluster stops its own workers cleanly, but hangs if
        its workers are signalled at the same time."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def kill(self) -> None:
        """Kill the child's whole process group (qcluster's worker processes too)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def answers(url: str) -> bool:
    """Whether an HTTP server answers at `url` (any status counts)."""
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (a fixed http://127.0.0.1 URL)
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, urllib.error.URLError):
        return False


def raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the demo: the service sandbox, a django-q2 worker cluster and the web server, until Ctrl-C. "
        "The web server and worker are pointed at the sandbox (Spotify, Apple Music, Deezer) whatever the "
        "services' settings say."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--web-port", type=port, default=8000, help="Port of the web server (default 8000; make demo WEB_PORT=…)."
        )
        parser.add_argument(
            "--sandbox-port",
            type=port,
            default=sandbox_server.DEFAULT_PORT,
            help=f"Port of the service sandbox (default {sandbox_server.DEFAULT_PORT}; make demo SANDBOX_PORT=…).",
        )
        parser.add_argument(
            "--stop",
            action="store_true",
            help="Start nothing: stop this checkout's demo, or what a crashed one left running, by its pid files "
            "(make stop).",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="Start nothing: only check that the demo can start (no demo of this checkout running, both ports "
            "free), as make demo does before it seeds the database.",
        )
        parser.add_argument(
            "--pid-dir",
            type=Path,
            default=Path(PID_DIR),
            help=f"Where the demo's processes write their pid files (default {PID_DIR}, in the project folder).",
        )

    def handle(
        self, *args, web_port: int, sandbox_port: int, stop: bool, check: bool, pid_dir: Path, **options
    ) -> None:
        self.lock = threading.Lock()
        pid_files = PidFiles(Path(settings.BASE_DIR) / pid_dir)
        if stop:
            self.stop_running_demo(pid_files)
            return
        if not settings.DEBUG:
            raise CommandError(
                "run_demo points the site at the service sandbox (fake Spotify, Deezer and Apple Music), so it "
                "runs only with DEBUG on (bin/write-demo-env writes DEBUG=true)."
            )
        self.check_can_start(web_port, sandbox_port, pid_files)
        if check:
            self.say(f"The demo can start: ports {web_port} (web) and {sandbox_port} (sandbox) are free.")
            return
        web = f"http://127.0.0.1:{web_port}"
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        private_key, public_key = demo_musickit_key(Path(settings.BASE_DIR) / "var")
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            # The sandbox's registered apps (it is started with its defaults, below); a secret's *_FILE would win.
            # Every address comes from the two ports, whatever .env or the environment says (real environment
            # variables win over .env, and these are the children's): a .env from a demo on other ports, or one
            # written before run_demo took this over, can't send a fan's sign-in to the wrong place.
            "SPOTIFY_CLIENT_ID": sandbox_server.DEFAULT_CLIENT_ID,
            "SPOTIFY_CLIENT_SECRET": sandbox_server.DEFAULT_CLIENT_SECRET,
            "SPOTIFY_CLIENT_SECRET_FILE": "",
            "SPOTIFY_ENABLED": "true",
            "SPOTIFY_ACCOUNTS_URL": f"{sandbox}/spotify/accounts",
            "SPOTIFY_API_URL": f"{sandbox}/spotify/api",
            "DEEZER_APP_ID": sandbox_deezer.DEFAULT_APP_ID,
            "DEEZER_SECRET": sandbox_deezer.DEFAULT_SECRET,
            "DEEZER_SECRET_FILE": "",
            "DEEZER_CONNECT_URL": f"{sandbox}/deezer/connect",
            "DEEZER_API_URL": f"{sandbox}/deezer/api",
            "APPLE_MUSIC_KEY_ID": DEMO_MUSICKIT_KEY_ID,
            "APPLE_MUSIC_TEAM_ID": DEMO_MUSICKIT_TEAM_ID,
            "APPLE_MUSIC_PRIVATE_KEY_FILE": str(private_key),
            "APPLE_MUSIC_API_URL": f"{sandbox}/apple_music/api",
            "MUSICKIT_JS_URL": f"{sandbox}/apple_music/musickit.js",
            # OAuth redirect URIs and the links in emails are built from it; CSRF_TRUSTED_ORIGINS defaults to it.
            "PUBLIC_BASE_URL": web,
            # Browsers share a host's cookies across its ports: two demos side by side keep a console login each.
            "SESSION_COOKIE_NAME": f"sessionid_{web_port}",
            "CSRF_COOKIE_NAME": f"csrftoken_{web_port}",
        }
        sandbox_argv = [
            *("run_sandbox", "--port", str(sandbox_port)),
            *("--musickit-key-id", DEMO_MUSICKIT_KEY_ID, "--musickit-team-id", DEMO_MUSICKIT_TEAM_ID),
            *("--musickit-public-key", str(public_key)),
        ]
        manage, write = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")], self.write_line
        children = [
            Child("sandbox", [*manage, *sandbox_argv], env, write, pid_files),
            # A worker killed mid-delivery is started again, as production's supervisor would; the sandbox is
            # not (it keeps its fans' tokens in memory only), nor the web server.
            Child("worker", [*manage, "qcluster"], env, write, pid_files, restart=True),
            Child("web", [*manage, "runserver", f"127.0.0.1:{web_port}", "--noreload"], env, write, pid_files),
        ]
        signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
        signal.signal(signal.SIGHUP, raise_keyboard_interrupt)

        failure = None
        pid_files.write(DEMO, os.getpid())
        try:
            for child in children:
                child.start()
            self.wait_until_answers(f"{sandbox}/_sandbox/health", "sandbox", children)
            self.wait_until_answers(f"{web}/admin/login/", "web", children)
            self.banner(web, sandbox)
            while True:
                for child in children:
                    if child.exited():
                        self.restart_or_stop(child)
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.say("Stopping the demo…")
        except ChildExited as exc:
            failure = f"{exc}; stopped the others."
            self.say(self.style.ERROR(f"{exc}; stopping the others…"))
        except CommandError as exc:
            failure = str(exc)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
            self.stop(children)
            pid_files.clear()
        if failure:
            raise CommandError(failure)
        self.say("Demo stopped: sandbox, worker and web server have exited.")

    def check_can_start(self, web_port: int, sandbox_port: int, pid_files: PidFiles) -> None:
        """Fail in one line, before anything starts (or a banner points at someone else's server), when a demo of
        this checkout still runs or either port is taken."""
        if web_port == sandbox_port:
            raise CommandError(f"The web server and the sandbox need a port each; both were given {web_port}.")
        if running := pid_files.running():
            raise CommandError(
                f"A demo of this checkout is still running ({', '.join(running)}; pid files in "
                f"{pid_files.directory}): press Ctrl-C in its terminal, or run make stop (manage.py run_demo --stop)."
            )
        for number, what, variable, option in (
            (web_port, "the web server's", "WEB_PORT", "--web-port"),
            (sandbox_port, "the sandbox's", "SANDBOX_PORT", "--sandbox-port"),
        ):
            if problem := port_problem(number):
                other = next_free_port(number, {web_port, sandbox_port})
                raise CommandError(
                    f"Port {number} ({what}) {problem}: choose another, e.g. make demo {variable}={other} "
                    f"(manage.py run_demo {option} {other})."
                )

    def stop_running_demo(self, pid_files: PidFiles) -> None:
        """Stop this checkout's demo by its pid files: run_demo, if it still runs, stops its children itself (as
        on Ctrl-C); children that a killed run_demo left behind are asked to stop, then killed."""
        running = pid_files.running()
        if not running:
            pid_files.clear()
            self.say("No demo of this checkout is running.")
            return
        if DEMO in running:
            signal_each(running[DEMO], signal.SIGTERM)
            if not wait_until(lambda: DEMO not in pid_files.running(), STOP_SECONDS + 5):
                signal_each(running[DEMO], signal.SIGKILL)
        # Only a child's group leader is asked: qcluster stops its own workers, but hangs if they are signalled too.
        left = {name: members for name, members in pid_files.running().items() if name != DEMO}
        leaders = pid_files.read()
        signal_each([leaders[name] for name, members in left.items() if leaders[name] in members], signal.SIGTERM)
        if not wait_until(lambda: not pid_files.running(), STOP_SECONDS):
            for members in pid_files.running().values():
                signal_each(members, signal.SIGKILL)
            wait_until(lambda: not pid_files.running(), 5)
        pid_files.clear()
        stopped = ", ".join(name for name in (DEMO, "sandbox", "worker", "web") if name in running)
        self.say(f"Stopped the demo of this checkout ({stopped}).")

    def restart_or_stop(self, child: Child) -> None:
        """Start a restartable child again, unless it exited as soon as it started (a setting to put right): then,
        as for the others, the demo stops."""
        if not child.restart or time.monotonic() - child.started_at < RESTART_AFTER_SECONDS:
            raise ChildExited(child)
        self.say(
            self.style.WARNING(
                f"{child.name} exited with code {child.process.returncode}: starting it again (the fans it had "
                "claimed are taken up again when their lease runs out)."
            )
        )
        child.kill()  # what is left of its group: a cluster's workers
        child.process.wait()
        child.start()

    def wait_until_answers(self, url: str, name: str, children: list[Child]) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not answers(url):
            for child in children:
                if child.exited():
                    raise ChildExited(child)
            if time.monotonic() > deadline:
                raise CommandError(f"{name} did not answer at {url} within {STARTUP_SECONDS} s.")
            time.sleep(0.3)

    def stop(self, children: list[Child]) -> None:
        """SIGTERM every child still running (web first, sandbox last), then SIGKILL the groups left."""
        for child in reversed(children):
            child.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for child in reversed(children):
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{child.name} did not stop within {STOP_SECONDS} s: killing it.")
            child.kill()  # whatever is left in its group, e.g. workers of a cluster that crashed
            child.process.wait()

    def banner(self, web: str, sandbox: str) -> None:
        rows = [
            ("Campaign page", f"{web}/glass-harbour/"),
            ("Admin", f"{web}/admin/   (login admin / presave-demo)"),
            ("Sandbox", f"{sandbox}/_sandbox/   (fans: alice, bob, chloe; Spotify, Apple Music, Deezer)"),
        ]
        lines = ["", "The pre-save demo is running:"]
        lines += [f"  {label:<14} {url}" for label, url in rows]
        lines += ["Press Ctrl-C to stop.", ""]
        self.say(self.style.SUCCESS("\n".join(lines)))

    def say(self, text: str) -> None:
        with self.lock:
            self.stdout.write(text)
            self.stdout.flush()

    def write_line(self, name: str, line: str) -> None:
        with self.lock:
            self.stdout.write(f"{name:>7} | {line}")
            self.stdout.flush()
