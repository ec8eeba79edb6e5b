"""The token vault: envelope encryption bound to its row, key rotation, and no plaintext at rest."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from fans import privacy, vault
from fans.models import Credential, Fan, Subscription
from tests.conftest import make_campaign

TOKEN = "AQD-refresh-token-of-a-fan-0123456789abcdefghijklmnop"
OLD_KEYS = "test-a:YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="
NEW_KEYS = "test-c:Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2M=," + OLD_KEYS


def stored_credential(user_id: str = "alice", token: str = TOKEN) -> Credential:
    campaign = make_campaign(slug=f"camp-{user_id}")
    fan = Fan.objects.create(service="spotify", service_user_id=user_id)
    subscription = Subscription.objects.create(fan=fan, campaign=campaign)
    credential = Credential(subscription=subscription, authorized_at=timezone.now())
    credential.store(token)
    credential.save()
    return credential


def test_sealed_token_opens_with_its_row_only():
    sealed = vault.seal(TOKEN, aad=b"row-1")
    assert vault.unseal(sealed, aad=b"row-1") == TOKEN
    with pytest.raises(vault.VaultError):
        vault.unseal(sealed, aad=b"row-2")


def test_each_seal_uses_a_fresh_data_key_and_nonce():
    first, second = vault.seal(TOKEN, aad=b"r"), vault.seal(TOKEN, aad=b"r")
    assert first.wrapped_key != second.wrapped_key
    assert first.ciphertext != second.ciphertext


def test_tampered_ciphertext_does_not_open():
    sealed = vault.seal(TOKEN, aad=b"r")
    broken = vault.Sealed(sealed.kek_id, sealed.wrapped_key, sealed.ciphertext[:-1] + b"\x00")
    with pytest.raises(vault.VaultError):
        vault.unseal(broken, aad=b"r")


def test_sealed_text_opens_with_its_associated_data_only_and_damaged_text_is_a_vault_error():
    text = vault.seal_text("revoke-me", aad=b"fans.thanks:7")

    assert "revoke-me" not in text
    assert vault.unseal_text(text, aad=b"fans.thanks:7") == "revoke-me"
    for damaged, aad in [(text, b"fans.thanks:8"), (text[:-4] + "AAAA", b"fans.thanks:7"), ("no dots", b"x")]:
        with pytest.raises(vault.VaultError):
            vault.unseal_text(damaged, aad=aad)


def test_repr_never_shows_the_token():
    assert TOKEN not in repr(vault.seal(TOKEN, aad=b"r"))


@pytest.mark.parametrize(
    "spec, words",
    [
        ("", "no key"),
        ("nokey", "look like"),
        ("k:not-base64!!", "not valid base64"),
        ("k:c2hvcnQ=", "must be 32 bytes"),
        (
            "k:YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=,k:YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE=",
            "unique",
        ),
    ],
)
def test_bad_key_settings_get_a_clear_message(spec, words):
    with pytest.raises(ImproperlyConfigured, match=words):
        vault.parse_keys(spec)


KEY = "YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWE="


@pytest.mark.parametrize(
    "spec",
    [
        f"2026/07:{KEY}",  # passed, then every privacy link (the id is in its path) was a NoReverseMatch
        f"{KEY}:prod",  # the wrong way round: the error quoted the key as the "key id"
        f"prod:{KEY},{KEY[:-1]}:prod",
        f"{'k' * 33}:{KEY}",
        f"pr od:{KEY}",
        f"prod?:{KEY}",
    ],
    ids=["slash", "reversed", "second-reversed", "too-long", "space", "question-mark"],
)
def test_a_key_id_outside_the_safe_characters_is_refused_without_quoting_it(spec):
    with pytest.raises(ImproperlyConfigured, match="letters, digits") as refused:
        vault.parse_keys(spec)

    assert "item" in str(refused.value)
    assert KEY[:20] not in str(refused.value) and "2026/07" not in str(refused.value)


@pytest.mark.parametrize("kid", ["2026-07", "prod_2.b", "K" * 32])
def test_a_safe_key_id_makes_privacy_links(kid, settings):
    settings.TOKEN_ENCRYPTION_KEYS = f"{kid}:{KEY}"

    link = privacy.link_for_email("fan@example.test")

    assert privacy.subject_from(link.split("/")[2]).email == "fan@example.test"


@pytest.mark.django_db
def test_no_plaintext_token_in_the_database():
    credential = stored_credential()
    with connection.cursor() as cursor:
        cursor.execute("SELECT kek_id, wrapped_key, ciphertext FROM fans_credential")
        rows = cursor.fetchall()
    dump = repr(rows).encode() + b"".join(bytes(col) for row in rows for col in row[1:])
    assert TOKEN.encode() not in dump
    assert Credential.objects.get(pk=credential.pk).reveal() == TOKEN


@pytest.mark.django_db
def test_ciphertext_moved_to_another_row_does_not_open():
    alice, bob = stored_credential("alice"), stored_credential("bob", token="bobs-token")
    bob.kek_id, bob.wrapped_key, bob.ciphertext = alice.kek_id, alice.wrapped_key, alice.ciphertext
    bob.save()
    with pytest.raises(vault.VaultError):
        Credential.objects.get(pk=bob.pk).reveal()


@pytest.mark.django_db
def test_rewrap_moves_every_token_to_the_new_key(settings, capsys):
    settings.TOKEN_ENCRYPTION_KEYS = OLD_KEYS
    credentials = [stored_credential(user) for user in ("alice", "bob", "chloe")]
    assert {c.kek_id for c in credentials} == {"test-a"}

    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEYS
    call_command("rewrap_tokens", batch_size=2)
    assert "Re-wrapped 3 token(s)" in capsys.readouterr().out

    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEYS.split(",")[0]  # the old key is gone
    for credential in Credential.objects.all():
        assert credential.kek_id == "test-c"
        assert credential.reveal() == TOKEN


@pytest.mark.django_db
def test_rewrap_reports_tokens_whose_key_is_missing(settings, capsys):
    settings.TOKEN_ENCRYPTION_KEYS = "test-x:eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHg="
    stored_credential()
    settings.TOKEN_ENCRYPTION_KEYS = NEW_KEYS.split(",")[0]
    call_command("rewrap_tokens")
    captured = capsys.readouterr()
    assert "0 token(s)" in captured.out and "1 could not be opened" in captured.out
    assert "No key-encryption key with id 'test-x'" in captured.err
