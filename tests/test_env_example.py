""".env.example and the README's Settings table list exactly the environment variables the settings read."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "presave_site" / "settings.py"

# A read in settings.py: env.<type>("NAME", …) or env("NAME", …); secret("NAME", …) and env_or_file("NAME", …)
# also read NAME_FILE. The first argument of every such call is captured, literal or not.
READ = re.compile(r"(?<!def )\b(env(?:\.\w+)?|secret|env_or_file)\(\s*([^,)]*)")
READS_FILE_TOO = {"secret", "env_or_file"}
# Calls whose first argument is not a variable's name: django-environ's URL parser, and the helpers' own reads.
NOT_A_NAME = {
    ("env.email_url_config", "_email_url"),
    ("env.str", 'f"{name}_FILE"'),
    ("env.str", "name"),
    ("env_or_file", "name"),
}


def names_read_by_settings() -> set[str]:
    names = set()
    for call, argument in READ.findall(SETTINGS.read_text()):
        if (call, argument.strip()) in NOT_A_NAME:
            continue
        literal = re.fullmatch(r'"([A-Z][A-Z0-9_]*)"', argument.strip())
        assert literal, f"settings.py reads {call}({argument.strip()}, …): name the variable literally"
        names.add(literal[1])
        if call in READS_FILE_TOO:
            names.add(f"{literal[1]}_FILE")
    return names


def names_in_env_example() -> set[str]:
    """`NAME=value` and `# NAME=value` lines."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^(?:# ?)?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def names_in_readme_settings_table() -> set[str]:
    """The names in the first column of the table in the README's "## Settings" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split(" | ", 1)[0])}


def test_the_settings_reads_are_all_found():
    names = names_read_by_settings()
    assert {"ENV_FILE", "DEBUG", "Q_RETRY", "EMAIL_URL_FILE", "DEEZER_SECRET_FILE", "LOG_LEVEL"} <= names
    assert len(names) > 80


def test_env_example_lists_every_setting_and_nothing_else():
    read, listed = names_read_by_settings(), names_in_env_example()
    assert not read - listed, f"missing from .env.example: {sorted(read - listed)}"
    assert not listed - read, f"in .env.example but read by nothing: {sorted(listed - read)}"


def test_the_readme_settings_table_lists_every_setting_and_nothing_else():
    read, documented = names_read_by_settings(), names_in_readme_settings_table()
    assert not read - documented, f"missing from the README's Settings table: {sorted(read - documented)}"
    assert not documented - read, f"in the README's Settings table but read by nothing: {sorted(documented - read)}"


def settings_loaded_from(env_file: str) -> dict[str, str]:
    """Every upper-case setting, as repr, of presave_site.settings loaded with `env_file` (DEBUG on)."""
    script = (
        "import json, presave_site.settings as s; "
        "print(json.dumps({k: repr(sorted(v) if isinstance(v, (set, frozenset)) else v) "  # a set's order varies
        "for k, v in vars(s).items() if k.isupper()}))"
    )
    result = subprocess.run(  # noqa: S603 (our own settings)
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/tmp"),
            "ENV_FILE": env_file,
            "DEBUG": "true",
            "PYTHONHASHSEED": "0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_values_env_example_shows_are_the_defaults():
    """Its `NAME=value` lines say the default: loading the file changes no setting."""
    assert settings_loaded_from(str(ROOT / ".env.example")) == settings_loaded_from("/dev/null")
