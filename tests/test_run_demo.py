"""`manage.py run_demo`: the sandbox, a worker cluster and the web server together; a killed worker comes back."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from fans.vault import parse_keys
from presave_site.benchmarking import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def children_of(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                found.append((int(entry.name), command))
    return found


def test_a_worker_killed_mid_demo_is_started_again_and_the_demo_goes_on(worker_env):
    web_port, sandbox_port = free_port(), free_port()
    env = {**worker_env, "DEBUG": "true"}
    demo = subprocess.Popen(  # noqa: S603 (our own command)
        [sys.executable, "manage.py", "run_demo", "--web-port", str(web_port), "--sandbox-port", str(sandbox_port)],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(line.decode() for line in demo.stdout), daemon=True).start()

    def wait_for_output(words: str, seconds: float, times: int = 1) -> None:
        deadline = time.monotonic() + seconds
        while sum(words in line for line in output) < times:
            assert demo.poll() is None and time.monotonic() < deadline, "".join(output[-30:])
            time.sleep(0.2)

    try:
        wait_for_output("The pre-save demo is running", 60)
        time.sleep(11)  # a worker that exits as soon as it starts is not started again: this one ran a while
        ((worker, _),) = [(pid, cmd) for pid, cmd in children_of(demo.pid) if "qcluster" in cmd]
        clusters_started = sum("running." in line and "Q Cluster" in line for line in output)
        os.killpg(worker, signal.SIGKILL)  # the cluster and its workers, as `kill -9` of the whole worker

        wait_for_output("worker exited with code -9: starting it again", 30)
        wait_for_output("running.", 30, times=clusters_started + 1)  # the new cluster says it is up
        assert demo.poll() is None
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/health/", timeout=5) as answer:  # noqa: S310
            assert answer.status == 200
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)


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
    assert set(values) == {"DEBUG", "SECRET_KEY", "TOKEN_ENCRYPTION_KEYS", "DELIVERY_REPORT_EMAILS"}
    assert values["DEBUG"] == "true" and len(values["SECRET_KEY"]) >= 50
    ((kid, key),) = parse_keys(values["TOKEN_ENCRYPTION_KEYS"])  # fans.vault.new_key_spec made it
    assert kid == "demo"
