"""`rewrap_tokens --check`: what a key rotation has left under old keys, before the old key may go."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.fans.test_vault import NEW_KEYS, OLD_KEYS, stored_credential


@pytest.mark.django_db
def test_check_counts_tokens_sealed_after_the_rewrap_by_a_process_still_on_the_old_key(settings, capsys):
    """README's rotation: the new key first, rewrap; a web process not yet restarted seals a new fan's token
    with the old key meanwhile. Removing the old key then would leave that fan waiting, and failing."""
    settings.TOKEN_ENCRYPTION_KEYS = OLD_KEYS
    stored_credential("alice")
    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEYS
    call_command("rewrap_tokens")
    settings.TOKEN_ENCRYPTION_KEYS = OLD_KEYS  # the web process not restarted yet
    stored_credential("bob")
    stored_credential("chloe")
    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEYS
    capsys.readouterr()

    with pytest.raises(CommandError, match=r"2 token\(s\) still sealed with old keys \('test-a': 2\)") as raised:
        call_command("rewrap_tokens", check=True)
    assert raised.value.returncode == 1

    call_command("rewrap_tokens")
    call_command("rewrap_tokens", check=True)
    assert "No token is sealed with an old key: all are under key 'test-c'." in capsys.readouterr().out


@pytest.mark.django_db
def test_check_names_an_old_key_already_taken_out(settings):
    settings.TOKEN_ENCRYPTION_KEYS = OLD_KEYS
    stored_credential("alice")
    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEYS.split(",")[0]

    with pytest.raises(CommandError, match=r"\('test-a': 1 \(not in TOKEN_ENCRYPTION_KEYS\)\)"):
        call_command("rewrap_tokens", check=True)
