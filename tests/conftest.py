"""Shared fixtures: the service sandbox over HTTP, real django-q2 workers, Chromium, and a few personas.

Nothing here mocks the project's code: tests talk to PostgreSQL, to the sandbox over HTTP, to a qcluster
process, and to Debian's Chromium through Playwright.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.utils import timezone

from delivery.sandbox import deezer, server
from delivery.sandbox.client import SandboxClient

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
DEEZER_APP_ID, DEEZER_SECRET = deezer.DEFAULT_APP_ID, deezer.DEFAULT_SECRET  # the sandbox's registered Deezer app
MUSICKIT_KEY_ID, MUSICKIT_TEAM_ID = "SANDBOXKEY", "SANDBOXTEAM"  # a MusicKit key made for this test session


def _musickit_key() -> tuple[str, str]:
    """A fresh P-256 key pair as a .p8 file holds it (PKCS#8 PEM), and its public half for the sandbox."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


MUSICKIT_PRIVATE_KEY, MUSICKIT_PUBLIC_KEY = _musickit_key()
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Browser tests last: Playwright's sync API keeps an event loop in the main thread for the rest of the
    session, and later tests that start their own loop (asyncio.run) would fail. After pytest-django's
    ordering (trylast), so it is the final word."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


class Sandbox(SandboxClient):
    """The running sandbox, with the control calls tests use most."""

    spotify_client = (server.DEFAULT_CLIENT_ID, server.DEFAULT_CLIENT_SECRET)  # its registered Spotify app

    def faults(self, **switches) -> dict:
        return self.control("POST", "faults", switches)

    def library(self, user_id: str) -> dict:
        return self.control("GET", f"users/{user_id}/library")

    def playlists(self, user_id: str) -> list:
        """The Spotify playlists the user made, oldest first, each with its items."""
        return self.control("GET", f"users/{user_id}/playlists")

    def writes(self, user_id: str | None = None) -> list:
        return self.control("GET", "writes" + (f"?user={user_id}" if user_id else ""))

    def authorize(self, user_id: str, scope: str = "user-library-modify user-follow-modify") -> dict:
        """Mint tokens for a sandbox user directly (no login page), as a fan who pre-saved earlier."""
        return self.control("POST", f"users/{user_id}/authorize", {"client_id": self.spotify_client[0], "scope": scope})

    def authorize_deezer(self, user_id: str, perms: str = "basic_access,offline_access,manage_library") -> str:
        """A lasting Deezer token for a sandbox user, as a fan who pre-saved earlier."""
        return self.control("POST", f"deezer/users/{user_id}/authorize", {"perms": perms})["access_token"]

    def authorize_apple_music(self, user_id: str) -> str:
        """A Music-User-Token for a sandbox user, as a fan who pre-added earlier."""
        return self.control("POST", f"apple_music/users/{user_id}/authorize")["music_user_token"]

    @property
    def apple_music_api_url(self) -> str:
        return f"{self.url}/apple_music/api"

    @property
    def musickit_js_url(self) -> str:
        return f"{self.url}/apple_music/musickit.js"

    def environment(self) -> dict[str, str]:
        return {
            "APPLE_MUSIC_KEY_ID": MUSICKIT_KEY_ID,
            "APPLE_MUSIC_TEAM_ID": MUSICKIT_TEAM_ID,
            "APPLE_MUSIC_PRIVATE_KEY": MUSICKIT_PRIVATE_KEY,
            "APPLE_MUSIC_API_URL": self.apple_music_api_url,
            "MUSICKIT_JS_URL": self.musickit_js_url,
            "SPOTIFY_ACCOUNTS_URL": self.accounts_url,
            "SPOTIFY_API_URL": self.api_url,
            "DEEZER_APP_ID": DEEZER_APP_ID,
            "DEEZER_SECRET": DEEZER_SECRET,
            "DEEZER_CONNECT_URL": self.deezer_connect_url,
            "DEEZER_API_URL": self.deezer_api_url,
        }


@pytest.fixture(scope="session")
def sandbox_server():
    url, stop = server.start_in_thread(
        host="127.0.0.1",
        port=0,
        musickit_key_id=MUSICKIT_KEY_ID,
        musickit_team_id=MUSICKIT_TEAM_ID,
        musickit_public_key=MUSICKIT_PUBLIC_KEY,
    )
    yield Sandbox(url)
    stop()


@pytest.fixture
def sandbox(sandbox_server: Sandbox, settings) -> Sandbox:
    """A sandbox reset to its demo world, and the app's service clients pointed at it (Deezer and Apple Music
    switched on)."""
    sandbox_server.control("POST", "reset")
    settings.SPOTIFY_ACCOUNTS_URL = sandbox_server.accounts_url
    settings.SPOTIFY_API_URL = sandbox_server.api_url
    settings.DEEZER_APP_ID, settings.DEEZER_SECRET, settings.DEEZER_ENABLED = DEEZER_APP_ID, DEEZER_SECRET, True
    settings.DEEZER_CONNECT_URL = sandbox_server.deezer_connect_url
    settings.DEEZER_API_URL = sandbox_server.deezer_api_url
    settings.APPLE_MUSIC_KEY_ID, settings.APPLE_MUSIC_TEAM_ID = MUSICKIT_KEY_ID, MUSICKIT_TEAM_ID
    settings.APPLE_MUSIC_PRIVATE_KEY, settings.APPLE_MUSIC_ENABLED = MUSICKIT_PRIVATE_KEY, True
    settings.APPLE_MUSIC_API_URL = sandbox_server.apple_music_api_url
    settings.MUSICKIT_JS_URL = sandbox_server.musickit_js_url
    return sandbox_server


class Worker:
    """A real `manage.py qcluster` process on the test database."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log_path = ROOT / "var" / f"qcluster-{os.getpid()}-{time.monotonic_ns()}.log"

    def start(self) -> Worker:
        self.log_path.parent.mkdir(exist_ok=True)
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        """SIGKILL the whole cluster (sentinel and workers): a crash, not a shutdown."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the sentinel stops its own workers
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker_env(sandbox: Sandbox, settings) -> dict[str, str]:
    """Environment for a worker process: the test database and the sandbox."""
    db = connection.settings_dict
    env = dict(os.environ)
    env.update(sandbox.environment())
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
        }
    )
    return env


@pytest.fixture
def start_worker(worker_env):
    """Start real django-q2 clusters: `start_worker()` or `start_worker(Q_CLUSTER_NAME="b")`."""
    workers: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        worker = Worker({**worker_env, **extra_env}).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py with only `env` (and PATH/HOME) as its environment: no test settings leak in."""
    clean_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV_FILE": "/dev/null"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean_env, "DJANGO_SETTINGS_MODULE": "presave_site.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"):
    """Poll until `predicate()` is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {message}")


def waiting_for_a_lock() -> bool:
    """Whether a connection to the test database waits for a lock another holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@contextlib.contextmanager
def held_in_another_transaction(work, *, holding: str, until=waiting_for_a_lock, waiter: str = "the code under test"):
    """Run `work` in a transaction on a connection of its own (a thread), and keep that transaction open until
    `until()` (another connection waits for a lock: the code under test, run in the block, meets what `work`
    holds); then commit. Yields `work`'s result once it ran. For tests with `django_db(transaction=True)`."""
    done = []

    def run() -> None:
        try:
            with transaction.atomic():
                done.append(work())
                wait_for(until, 10, interval=0.05, message=f"{waiter} to wait for a lock")
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: done, 10, interval=0.05, message=holding)
        yield done[0]
    finally:
        thread.join()


# --- Browser ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


ARTIFACTS = ROOT / "tests" / "artifacts"  # the browser tests' screenshots
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(django_db_setup, live_server, sandbox, settings) -> str:
    """Our live server's URL, with PUBLIC_BASE_URL pointing at it and the sandbox ready.

    Playwright's sync API keeps an event loop running in this thread, and Django refuses ORM calls there
    unless DJANGO_ALLOW_ASYNC_UNSAFE is set (Playwright's own advice for Django). Asking for
    django_db_setup creates the test database before the loop starts: list `site` before `page`.
    """
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.PUBLIC_BASE_URL = live_server.url
    ARTIFACTS.mkdir(exist_ok=True)
    return live_server.url


# --- Personas and objects ----------------------------------------------------------------------------------
@pytest.fixture
def label_staff(db):
    """A member of the "Label staff" role, with exactly the permissions the roles migration grants it."""
    from tests.releases.personas import member_of

    return member_of("Label staff", "lena")


@pytest.fixture
def manager(db):
    """A member of the "Manager" role: label staff's permissions, the export and the audit log."""
    from tests.releases.personas import member_of

    return member_of("Manager", "mo")


@pytest.fixture
def superuser(django_user_model):
    """Every permission: for what neither role may do (deleting a campaign, say)."""
    return django_user_model.objects.create_superuser("sam", "sam@label.test", "superuser-password-1")


def make_campaign(
    *,
    slug: str = "first-light",
    release_in: dt.timedelta = dt.timedelta(days=14),
    follow_artist: bool = False,
    status: str = "live",
    **campaign_fields,
):
    """An artist, a release of the sandbox's demo album, and a campaign for it."""
    from delivery.sandbox import demo_catalog
    from releases.models import Artist, Campaign, Release

    artist = Artist.objects.create(name="Nova Lark", spotify_uri=f"spotify:artist:{demo_catalog.NOVA_LARK_ARTIST_ID}")
    release_at = timezone.now() + release_in
    release = Release.objects.create(
        artist=artist,
        title="First Light",
        kind="album",
        upc=demo_catalog.NOVA_LARK_ALBUM_UPC,
        spotify_uri=f"spotify:album:{demo_catalog.NOVA_LARK_ALBUM_ID}",
        release_date=release_at.date(),
        release_time=release_at.time().replace(microsecond=0),
        timezone="UTC",
    )
    return Campaign.objects.create(
        release=release, slug=slug, follow_artist=follow_artist, status=status, **campaign_fields
    )


@pytest.fixture
def staff_client(client, label_staff):
    """The Django test client, logged in as label staff."""
    client.force_login(label_staff)
    return client


@pytest.fixture
def campaign(db):
    return make_campaign()


def make_subscription(campaign, sandbox: Sandbox, user_id: str, *, scope: str | None = None):
    """A fan who pre-saved `campaign` as sandbox user `user_id`: Fan, pending Subscription, sealed token."""
    from fans.models import Credential, Fan, Subscription

    scopes = scope or ("user-library-modify user-follow-modify" if campaign.follow_artist else "user-library-modify")
    tokens = sandbox.authorize(user_id, scopes)
    fan, _ = Fan.objects.get_or_create(
        service="spotify", service_user_id=user_id, defaults={"display_name": user_id.title()}
    )
    subscription = Subscription.objects.create(fan=fan, campaign=campaign)
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(tokens["refresh_token"])
    credential.save()
    return subscription


def make_consent(subscription, **fields):
    """The ConsentRecord a fan's pre-save of `subscription` leaves (wording v1 unless `fields` say otherwise),
    with its revoke token issued."""
    from fans.models import ConsentRecord

    fan = subscription.fan
    record = ConsentRecord(
        subscription=subscription,
        campaign=subscription.campaign,
        service=fan.service,
        service_user_id=fan.service_user_id,
        **{"wording_version": "v1", **fields},
    )
    record.issue_revoke_token()
    record.save()
    return record
