"""Settings from files: every <NAME>_FILE is read by one helper, and a file that can't be read stops the start
with one line naming the variable (EMAIL_URL_FILE used to end in pathlib's FileNotFoundError)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each variable, with what makes the settings read it (the services' secrets only once their id is set).
FILE_SETTINGS = {
    "SECRET_KEY_FILE": {},
    "TOKEN_ENCRYPTION_KEYS_FILE": {},
    "SPOTIFY_CLIENT_SECRET_FILE": {"SPOTIFY_CLIENT_ID": "an-app"},
    "DEEZER_SECRET_FILE": {"DEEZER_APP_ID": "100001"},
    "APPLE_MUSIC_PRIVATE_KEY_FILE": {"APPLE_MUSIC_KEY_ID": "ABC123DEFG", "APPLE_MUSIC_TEAM_ID": "TEAM123456"},
    "EMAIL_URL_FILE": {},
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """manage.py with only `env` (and PATH/HOME) as its environment, DEBUG on: no test settings leak in."""
    clean_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "ENV_FILE": "/dev/null"}
    return subprocess.run(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean_env, "DJANGO_SETTINGS_MODULE": "presave_site.settings", "DEBUG": "true", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("variable", FILE_SETTINGS)
def test_a_missing_file_stops_the_start_with_one_line_naming_the_variable(variable, tmp_path):
    missing = tmp_path / "nowhere"
    result = manage("check", **FILE_SETTINGS[variable], **{variable: str(missing)})
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line == (
        f"django.core.exceptions.ImproperlyConfigured: {variable}='{missing}' cannot be read: "
        "No such file or directory."
    )
    assert "pathlib" not in result.stderr
    assert "FileNotFoundError" not in result.stderr


def test_an_empty_file_stops_the_start_naming_the_variable(tmp_path):
    empty = tmp_path / "secret_key"
    empty.write_text("\n")
    result = manage("check", SECRET_KEY_FILE=str(empty))
    assert result.returncode != 0
    assert result.stderr.strip().endswith(f"ImproperlyConfigured: SECRET_KEY_FILE='{empty}' is empty.")


def test_a_file_wins_over_the_variable(tmp_path):
    (tmp_path / "email_url").write_text(f"filemail://{tmp_path}/mail\n")
    result = manage(
        "shell",
        "--verbosity=0",
        "-c",
        "from django.conf import settings; print(settings.EMAIL_BACKEND, settings.EMAIL_FILE_PATH)",
        EMAIL_URL="consolemail://",
        EMAIL_URL_FILE=str(tmp_path / "email_url"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.core.mail.backends.filebased.EmailBackend", f"{tmp_path}/mail"]
