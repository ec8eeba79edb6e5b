"""The token vault: AES-256-GCM envelope encryption of fans' service tokens.

Each token gets its own random 256-bit data key. The token is encrypted with the data key, and the data key
is wrapped by the current key-encryption key (KEK) from TOKEN_ENCRYPTION_KEYS. Both encryptions take the
row's identity as associated data, so a ciphertext copied into another row does not decrypt.
Rotating KEKs re-wraps only the data keys (`manage.py rewrap_tokens`); token ciphertexts stay as they are.
`seal_text` seals a secret kept in a JSON store the same way: the revoke token the session keeps for the
thank-you page (fans/authorization.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

NONCE_BYTES = 12
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")  # a key id: safe in a URL's path and in Credential.kek_id


class VaultError(Exception):
    """A sealed token could not be opened (wrong key, tampered data, or moved to another row)."""


class MissingKey(VaultError):
    """The key that sealed a token is not in TOKEN_ENCRYPTION_KEYS: a setting to put right, not a broken token."""


@dataclass(frozen=True)
class Sealed:
    kek_id: str
    wrapped_key: bytes  # nonce + AES-GCM(KEK, data key)
    ciphertext: bytes  # nonce + AES-GCM(data key, token)

    def __repr__(self) -> str:
        return f"Sealed(kek_id={self.kek_id!r})"


@functools.cache
def parse_keys(spec: str) -> tuple[tuple[str, bytes], ...]:
    """Parse "kid:base64key,kid2:base64key" into ((kid, key), …). Each key is 32 bytes (AES-256).

    A key id goes into links' paths (privacy.link_for_email) and the database (Credential.kek_id), so it is
    KEY_ID's characters only. Errors never quote what does not pass as a key id: it may be the key itself (an
    item written the wrong way round, "base64:kid"); they name the item by its place instead."""
    keys = []
    for place, item in enumerate(filter(None, (part.strip() for part in spec.split(","))), start=1):
        kid, sep, encoded = item.partition(":")
        if not sep or not kid:
            raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS items look like 'key-id:base64-of-32-bytes'.")
        if not KEY_ID.fullmatch(kid):
            raise ImproperlyConfigured(
                f"TOKEN_ENCRYPTION_KEYS: the key id of item {place} is not 1 to 32 letters, digits, '_', '.' or '-' "
                "(items look like 'key-id:base64-of-32-bytes', the id first)."
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ImproperlyConfigured(f"TOKEN_ENCRYPTION_KEYS: key {kid!r} is not valid base64.") from None
        if len(key) != 32:
            raise ImproperlyConfigured(f"TOKEN_ENCRYPTION_KEYS: key {kid!r} must be 32 bytes, not {len(key)}.")
        keys.append((kid, key))
    if not keys:
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS holds no key.")
    if len({kid for kid, _ in keys}) != len(keys):
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS: key ids must be unique.")
    return tuple(keys)


def current_kek() -> tuple[str, bytes]:
    return parse_keys(settings.TOKEN_ENCRYPTION_KEYS)[0]


def kek(kek_id: str) -> bytes:
    for kid, key in parse_keys(settings.TOKEN_ENCRYPTION_KEYS):
        if kid == kek_id:
            return key
    raise MissingKey(f"No key-encryption key with id {kek_id!r} is configured.")


def new_key_spec(kid: str) -> str:
    """A fresh KEK as a TOKEN_ENCRYPTION_KEYS item, "kid:base64-of-32-bytes" (bin/write-demo-env and .env.example
    use it; importing this module needs no Django set-up)."""
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise VaultError("The sealed token does not open with this key and row.") from None


def _wrap_aad(kek_id: str, aad: bytes) -> bytes:
    return b"kek:" + kek_id.encode() + b"|" + aad


def seal(token: str, *, aad: bytes) -> Sealed:
    kek_id, key = current_kek()
    data_key = AESGCM.generate_key(bit_length=256)
    return Sealed(
        kek_id=kek_id,
        wrapped_key=_encrypt(key, data_key, _wrap_aad(kek_id, aad)),
        ciphertext=_encrypt(data_key, token.encode(), aad),
    )


def unseal(sealed: Sealed, *, aad: bytes) -> str:
    data_key = _decrypt(kek(sealed.kek_id), sealed.wrapped_key, _wrap_aad(sealed.kek_id, aad))
    return _decrypt(data_key, sealed.ciphertext, aad).decode()


def seal_text(secret: str, *, aad: bytes) -> str:
    """`seal`, as one string (key id, wrapped key and ciphertext, URL-safe base64) for a JSON store: the session."""
    sealed = seal(secret, aad=aad)
    parts = (sealed.wrapped_key, sealed.ciphertext)
    return ".".join([sealed.kek_id, *(base64.urlsafe_b64encode(part).decode() for part in parts)])


def unseal_text(text: str, *, aad: bytes) -> str:
    try:
        kek_id, wrapped_key, ciphertext = text.rsplit(".", 2)
        sealed = Sealed(kek_id, base64.urlsafe_b64decode(wrapped_key), base64.urlsafe_b64decode(ciphertext))
    except (ValueError, binascii.Error):
        raise VaultError("The sealed text is damaged.") from None
    return unseal(sealed, aad=aad)


def rewrap(sealed: Sealed, *, aad: bytes) -> Sealed:
    """The same ciphertext with its data key wrapped by the current KEK."""
    new_id, new_key = current_kek()
    if sealed.kek_id == new_id:
        return sealed
    data_key = _decrypt(kek(sealed.kek_id), sealed.wrapped_key, _wrap_aad(sealed.kek_id, aad))
    return Sealed(new_id, _encrypt(new_key, data_key, _wrap_aad(new_id, aad)), sealed.ciphertext)
