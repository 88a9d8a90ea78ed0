"""Encryption of provider API keys at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from `FIELD_ENCRYPTION_KEY` (a Fernet key: 32 url-safe base64 bytes, as printed by
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
Several comma-separated keys rotate: the first encrypts, all of them decrypt, so old rows stay
readable until `manage.py rotate_field_encryption` re-encrypts them under the first key.

Unset, the key is derived from SECRET_KEY with HKDF-SHA256 and an info label of its own, so
the field key is separated from every other use of SECRET_KEY (sessions, signing) and a fresh
checkout works; rotating SECRET_KEY then makes stored keys unreadable, which is why production
sets FIELD_ENCRYPTION_KEY. Keys derived from SECRET_KEY (HKDF, and the plain SHA-256 of earlier
versions) always come last, decrypt-only, so rows written before FIELD_ENCRYPTION_KEY was set,
or before HKDF, stay readable until they are rotated.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# How a secret is shown once stored: a recognisable prefix and at most four trailing characters.
MAX_HINT_TAIL = 4
_PREFIX_RE = re.compile(r"^[A-Za-z]{2,4}-")
# The HKDF info label: a new label (v2) would be a new key, so it is part of the format.
HKDF_INFO = b"agentplatform field encryption v1"


class SecretDecryptionError(ValueError):
    """The stored value was not encrypted with any configured key (rotated or tampered)."""


def derived_key(secret_key: str) -> bytes:
    """The Fernet key derived from SECRET_KEY (HKDF-SHA256, no salt: the input is already a
    high-entropy secret, and the info label separates this use from any other)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


def legacy_derived_key(secret_key: str) -> bytes:
    """The derivation of earlier versions (SHA-256 of SECRET_KEY), kept only to decrypt old rows."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())


@functools.lru_cache(maxsize=4)
def _fernet_for(key_material: str, secret_key: str) -> MultiFernet:
    keys = [part.strip() for part in key_material.split(",") if part.strip()]
    try:
        configured = [Fernet(key.encode()) for key in keys]
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys (32 url-safe base64 bytes)."
        ) from exc
    # The first key encrypts; the SECRET_KEY-derived ones only ever decrypt when a key is configured.
    return MultiFernet([*configured, Fernet(derived_key(secret_key)), Fernet(legacy_derived_key(secret_key))])


def _fernet() -> MultiFernet:
    # Read on every call (cached by value) so tests and key rotation see the current settings.
    return _fernet_for(settings.FIELD_ENCRYPTION_KEY or "", settings.SECRET_KEY)


def encrypt_secret(plaintext: str) -> str:
    """A Fernet token (ASCII) for `plaintext`; empty stays empty so "no key" needs no decryption."""
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "The stored secret cannot be decrypted with the configured FIELD_ENCRYPTION_KEY; set it again."
        ) from exc


def rotate_secret(token: str) -> str:
    """`token` re-encrypted under the current first key (MultiFernet.rotate); empty stays empty."""
    if not token:
        return ""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("The stored secret cannot be decrypted with any configured key.") from exc


def mask_secret(secret: str) -> str:
    """A hint that identifies a key without revealing it, e.g. `sk-…3xYz`.

    Never more than four trailing characters, fewer for short secrets (a quarter of the length),
    and the vendor prefix only when the secret is long enough that it gives nothing away.
    """
    secret = (secret or "").strip()
    if not secret:
        return ""
    tail_length = min(MAX_HINT_TAIL, len(secret) // 4)
    prefix_match = _PREFIX_RE.match(secret) if len(secret) >= 16 else None
    prefix = prefix_match.group(0) if prefix_match else ""
    tail = secret[-tail_length:] if tail_length else ""
    return f"{prefix}…{tail}"
