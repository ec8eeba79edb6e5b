"""`manage.py run_demo` (and `make demo` / `make stop`): the sandbox, a worker cluster and the web server together,
on the ports asked for; a killed worker comes back; Ctrl-C, or make stop after a crash, leaves nothing running."""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
import requests
from django.conf import settings

from delivery.management.commands.run_demo import processes
from fans.models import Subscription
from fans.vault import parse_keys
from presave_site.benchmarking import free_port
from tests.conftest import make_campaign
from tests.fans.test_oauth_callback import LoginForm

pytestmark = pytest.mark.django_db(transaction=True)

# Start run_demo with SIGINT at its default, as a terminal's foreground job has it, even when pytest itself was
# started where SIGINT is ignored (a background job): an ignored signal stays ignored across exec.
AS_IN_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


class Demo:
    """A `manage.py run_demo` process, in its own session as a terminal's job is, with its output collected."""

    def __init__(self, env: dict[str, str], pid_dir: Path, web_port: int = 0, sandbox_port: int = 0) -> None:
        self.web_port, self.sandbox_port = web_port or free_port(), sandbox_port or free_port()
        self.pid_dir = pid_dir
        argv = [
            *(sys.executable, "-c", AS_IN_A_TERMINAL, sys.executable, "manage.py", "run_demo"),
            *("--web-port", str(self.web_port), "--sandbox-port", str(self.sandbox_port), "--pid-dir", str(pid_dir)),
        ]
        self.process = subprocess.Popen(  # noqa: S603 (our own command)
            argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output: list[str] = []
        self.reader = threading.Thread(
            target=lambda: self.output.extend(line.decode() for line in self.process.stdout), daemon=True
        )
        self.reader.start()

    def wait_for_output(self, words: str, seconds: float, times: int = 1) -> None:
        deadline = time.monotonic() + seconds
        while sum(words in line for line in self.output) < times:
            assert self.process.poll() is None and time.monotonic() < deadline, "".join(self.output[-30:])
            time.sleep(0.2)

    def finish(self, seconds: float = 30) -> int:
        """Wait for run_demo to exit on its own; its exit code, with every line it wrote read."""
        self.process.wait(timeout=seconds)
        self.reader.join(timeout=5)
        return self.process.returncode

    def pid(self, name: str) -> int:
        return int((self.pid_dir / f"{name}.pid").read_text())

    def groups(self) -> set[int]:
        """The process groups of its sandbox, worker and web server (each child leads its own)."""
        return {self.pid(name) for name in ("sandbox", "worker", "web")}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.finish()


def left_in(groups: set[int]) -> list[str]:
    """The command lines of the processes still running in `groups` (an exited one that no parent has reaped yet,
    "<defunct>", runs nothing)."""
    return [command for _, group, command in processes() if group in groups and not command.endswith("<defunct>")]


@pytest.fixture
def demo_env(worker_env) -> dict[str, str]:
    return {**worker_env, "DEBUG": "true"}


def make_demo_lines(*variables: str) -> list[str]:
    dry_run = subprocess.run(  # noqa: S603, S607 (make, printing the commands it would run)
        ["make", "-n", "demo", *variables], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True
    )
    return dry_run.stdout.splitlines()


def test_make_demo_passes_the_ports_it_is_given_to_run_demo():
    def run_demo_line(*variables: str) -> str:
        (line,) = [line for line in make_demo_lines(*variables) if "manage.py run_demo --web-port" in line]
        return line

    assert run_demo_line().endswith("manage.py run_demo --web-port 8000 --sandbox-port 8765")  # run_demo's defaults
    assert run_demo_line("WEB_PORT=8001", "SANDBOX_PORT=8766").endswith("--web-port 8001 --sandbox-port 8766")


def test_make_demo_checks_the_ports_before_it_seeds():
    """seed_demo moves the demo's release time: a demo that can't start must not have moved it."""
    lines = make_demo_lines("WEB_PORT=8001", "SANDBOX_PORT=8766")
    (check,) = [n for n, line in enumerate(lines) if "manage.py run_demo --check" in line]
    (seed,) = [n for n, line in enumerate(lines) if "manage.py seed_demo" in line]
    assert check < seed
    assert lines[check].endswith("run_demo --check --web-port 8001 --sandbox-port 8766")


@pytest.mark.parametrize("taken", ["web", "sandbox"])
def test_run_demo_check_fails_in_one_line_on_a_port_in_use_and_starts_nothing(demo_env, tmp_path, taken):
    other = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    busy, free = other.server_address[1], free_port()
    web_port, sandbox_port = (busy, free) if taken == "web" else (free, busy)

    def check() -> subprocess.CompletedProcess:
        argv = [sys.executable, "manage.py", "run_demo", "--check", "--pid-dir", str(tmp_path / "pids")]
        argv += ["--web-port", str(web_port), "--sandbox-port", str(sandbox_port)]
        return subprocess.run(  # noqa: S603 (our own command)
            argv, cwd=settings.BASE_DIR, env=demo_env, capture_output=True, text=True, timeout=60
        )

    try:
        refused = check()
    finally:
        other.server_close()
    freed = check()

    assert refused.returncode == 1 and refused.stdout == ""
    assert f"Port {busy} " in refused.stderr and "is in use" in refused.stderr and "make demo" in refused.stderr
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr
    assert freed.returncode == 0, freed.stderr
    assert freed.stdout == f"The demo can start: ports {web_port} (web) and {sandbox_port} (sandbox) are free.\n"
    assert not (tmp_path / "pids").exists()


@pytest.mark.parametrize("check", [True, False], ids=["check", "start"])
def test_run_demo_refuses_to_start_with_debug_off(demo_env, tmp_path, check):
    """The demo points the site at the sandbox: never under production settings (as seed_demo refuses)."""
    argv = [sys.executable, "manage.py", "run_demo", "--pid-dir", str(tmp_path / "pids")]
    argv += ["--web-port", "8610", "--sandbox-port", "8611"] + (["--check"] if check else [])

    try:
        refused = subprocess.run(  # noqa: S603 (our own command)
            argv, cwd=settings.BASE_DIR, env={**demo_env, "DEBUG": "false"}, capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:  # it started: end what it left running, then fail
        stop = [sys.executable, "manage.py", "run_demo", "--stop", "--pid-dir", str(tmp_path / "pids")]
        subprocess.run(stop, cwd=settings.BASE_DIR, env=demo_env, capture_output=True, timeout=60)  # noqa: S603
        raise

    assert refused.returncode == 1 and refused.stdout == ""
    assert "runs only with DEBUG on" in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "pids").exists(), "nothing was started"


def test_a_demo_on_other_ports_signs_fans_in_through_its_own_sandbox_whatever_env_says(demo_env, tmp_path):
    """Everything the ports make (PUBLIC_BASE_URL and the redirect URI built from it, the sandbox's URLs) follows
    the ports run_demo is given, over a .env written for the default ports and stale environment variables."""
    make_campaign(slug="glass-harbour")
    old_env = tmp_path / "old.env"
    old_env.write_text(  # what bin/write-demo-env wrote for the default ports before run_demo set the addresses
        "PUBLIC_BASE_URL=http://127.0.0.1:8000\n"
        "SPOTIFY_ACCOUNTS_URL=http://127.0.0.1:8765/spotify/accounts\n"
        "SPOTIFY_API_URL=http://127.0.0.1:8765/spotify/api\n"
    )
    env = {**demo_env, "ENV_FILE": str(old_env), "PUBLIC_BASE_URL": "http://127.0.0.1:8000"}
    del env["SPOTIFY_API_URL"]  # the environment's SPOTIFY_ACCOUNTS_URL stays: the tests' own sandbox, elsewhere
    demo = Demo(env, tmp_path / "pids")
    web, sandbox = f"http://127.0.0.1:{demo.web_port}", f"http://127.0.0.1:{demo.sandbox_port}"
    try:
        demo.wait_for_output("The pre-save demo is running", 60)
        fan = requests.Session()
        page = fan.get(f"{web}/glass-harbour/", timeout=10)
        token_url = re.search(r'data-token-url="([^"]+)"', page.text)[1]  # what the page's script fetches
        csrf = fan.get(f"{web}{token_url}", timeout=10).json()["token"]

        pressed = fan.post(
            f"{web}/glass-harbour/presave/spotify/",
            data={"csrfmiddlewaretoken": csrf},
            allow_redirects=False,
            timeout=10,
        )
        authorize = pressed.headers["Location"]
        assert authorize.startswith(f"{sandbox}/spotify/accounts/authorize?")
        assert dict(parse_qsl(urlsplit(authorize).query))["redirect_uri"] == f"{web}/oauth/spotify/callback/"

        login = LoginForm()
        login.feed(requests.get(authorize, timeout=10).text)
        agreed = requests.post(
            urljoin(authorize, login.action),
            data={**login.hidden, "user": "alice", "decision": "agree"},
            allow_redirects=False,
            timeout=10,
        )
        callback = agreed.headers["Location"]
        assert callback.startswith(f"{web}/oauth/spotify/callback/?code=")
        thanks = fan.get(callback, timeout=10)  # our web server swaps the code at the demo's own sandbox
        assert thanks.status_code == 200 and thanks.url == f"{web}/glass-harbour/thanks/"
        assert Subscription.objects.get().status == Subscription.Status.PENDING
    finally:
        demo.stop()


def test_a_demo_names_its_cookies_after_its_port_so_the_demo_beside_it_stays_signed_in(
    demo_env, tmp_path, django_user_model
):
    """Browsers keep a host's cookies whatever the port: under Django's own names, signing in to one demo's
    console replaced the session (and CSRF) cookie of a demo on another port, which was signed out."""
    django_user_model.objects.create_superuser("lena", "lena@label.test", "presave-demo")
    demo = Demo(demo_env, tmp_path / "pids")
    web = f"http://127.0.0.1:{demo.web_port}"
    try:
        demo.wait_for_output("The pre-save demo is running", 60)
        browser = requests.Session()  # its cookie jar, as a browser's, ignores ports
        beside = {"sessionid": "the-other-demo-s-session", "csrftoken": "TheOtherDemo0sCsrfSecret00000032"}
        for name, value in beside.items():  # what the console of a demo on another port left in the browser
            browser.cookies.set(name, value, domain="127.0.0.1", path="/")

        page = browser.get(f"{web}/admin/login/?next=/admin/", timeout=10)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        signed_in = browser.post(
            f"{web}/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": csrf, "username": "lena", "password": "presave-demo", "next": "/admin/"},
            timeout=10,
        )

        assert signed_in.status_code == 200 and signed_in.url == f"{web}/admin/", signed_in.text[:500]
        jar = {cookie.name: cookie.value for cookie in browser.cookies}
        assert {f"sessionid_{demo.web_port}", f"csrftoken_{demo.web_port}"} <= set(jar)
        assert {name: jar[name] for name in beside} == beside, "the other demo's cookies are left alone"
    finally:
        demo.stop()


@pytest.mark.parametrize(("taken", "advice"), [("web", "make demo WEB_PORT="), ("sandbox", "make demo SANDBOX_PORT=")])
def test_a_port_in_use_stops_run_demo_in_one_line_before_it_starts_anything(demo_env, tmp_path, taken, advice):
    """Another server on the port (another checkout's demo, say) would answer the start-up checks: run_demo
    printed its banner pointing at it, then failed with the web server's own error."""
    other = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    busy = other.server_address[1]
    ports = {"web_port": busy} if taken == "web" else {"sandbox_port": busy}
    try:
        demo = Demo(demo_env, tmp_path / "pids", **ports)
        assert demo.finish() == 1
    finally:
        other.shutdown()
        other.server_close()

    output = "".join(demo.output)
    assert output.count("\n") == 1, output
    assert f"Port {busy} " in output and "is in use" in output and advice in output
    assert "Traceback" not in output and "running" not in output and not (tmp_path / "pids").exists()


def test_ctrl_c_stops_the_sandbox_the_whole_cluster_and_the_web_server(demo_env, tmp_path):
    demo = Demo(demo_env, tmp_path / "pids")
    try:
        demo.wait_for_output("The pre-save demo is running", 60)
        groups = demo.groups()
        assert sum("qcluster" in command for command in left_in(groups)) > 1  # the cluster and its workers

        os.killpg(demo.process.pid, signal.SIGINT)  # a terminal's Ctrl-C: the foreground job's group
        assert demo.finish() == 0, "".join(demo.output[-30:])
    finally:
        demo.stop()

    assert "Demo stopped: sandbox, worker and web server have exited." in "".join(demo.output)
    assert left_in(groups) == []
    assert list((tmp_path / "pids").iterdir()) == []


def test_make_stop_ends_exactly_what_a_killed_run_demo_left_running(demo_env, tmp_path):
    demo, groups = Demo(demo_env, tmp_path / "pids"), set()
    try:
        demo.wait_for_output("The pre-save demo is running", 60)
        groups = demo.groups()
        demo.process.kill()  # run_demo dies at once; its children lead their own groups and live on
        demo.process.wait(timeout=10)
        time.sleep(1)
        assert len(left_in(groups)) > 3

        again = Demo(demo_env, tmp_path / "pids")  # on free ports: only the pid files stand in its way
        assert again.finish() == 1
        assert "A demo of this checkout is still running" in "".join(again.output)
        assert "make stop" in "".join(again.output)

        stop = subprocess.run(  # noqa: S603 (our own command)
            [sys.executable, "manage.py", "run_demo", "--stop", "--pid-dir", str(tmp_path / "pids")],
            cwd=settings.BASE_DIR,
            env=demo_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stop.returncode == 0, stop.stderr
        assert stop.stdout == "Stopped the demo of this checkout (sandbox, worker, web).\n"
        assert left_in(groups) == []
        assert list((tmp_path / "pids").iterdir()) == []
    finally:
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def test_a_worker_killed_mid_demo_is_started_again_and_the_demo_goes_on(demo_env, tmp_path):
    demo = Demo(demo_env, tmp_path / "pids")
    try:
        demo.wait_for_output("The pre-save demo is running", 60)
        time.sleep(11)  # a worker that exits as soon as it starts is not started again: this one ran a while
        worker = demo.pid("worker")
        clusters_started = sum("running." in line and "Q Cluster" in line for line in demo.output)
        os.killpg(worker, signal.SIGKILL)  # the cluster and its workers: the README's kill -9 -- -$(cat …)

        demo.wait_for_output("worker exited with code -9: starting it again", 30)
        demo.wait_for_output("running.", 30, times=clusters_started + 1)  # the new cluster says it is up
        assert demo.process.poll() is None
        assert demo.pid("worker") != worker  # the README's command reaches the new one too
        with urllib.request.urlopen(f"http://127.0.0.1:{demo.web_port}/health/", timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
    finally:
        demo.stop()


def test_the_demo_env_holds_fresh_secrets_and_leaves_the_services_to_run_demo(tmp_path):
    """bin/write-demo-env writes secrets only: where the sandbox and the site live is run_demo's to say (its
    --sandbox-port and --web-port), where the .env's Spotify addresses and PUBLIC_BASE_URL were overridden."""
    (tmp_path / "bin").mkdir()
    shutil.copy(settings.BASE_DIR / "bin" / "write-demo-env", tmp_path / "bin")
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    subprocess.run(  # noqa: S603 (our own script), S607
        ["bash", str(tmp_path / "bin" / "write-demo-env")],
        env={**os.environ, "PYTHONPATH": str(settings.BASE_DIR)},  # the project's packages, as from its folder
        check=True,
        capture_output=True,
    )

    lines = (tmp_path / ".env").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert set(values) == {
        "DEBUG",
        "SECRET_KEY",
        "TOKEN_ENCRYPTION_KEYS",
        "DELIVERY_REPORT_EMAILS",
        "PRIVACY_CONTROLLER",  # the privacy notice's: a made-up label, said to be one
        "PRIVACY_CONTACT_EMAIL",
    }
    assert "made-up label" in values["PRIVACY_CONTROLLER"] and values["PRIVACY_CONTACT_EMAIL"].endswith(".test")
    assert values["DEBUG"] == "true" and len(values["SECRET_KEY"]) >= 50
    ((kid, key),) = parse_keys(values["TOKEN_ENCRYPTION_KEYS"])  # fans.vault.new_key_spec made it
    assert kid == "demo"
