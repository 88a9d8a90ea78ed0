"""Encryption of provider API keys at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from `FIELD_ENCRYPTION_KEY` (a Fernet key: 32 url-safe base64 bytes, as printed by
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
Several comma-separated keys rotate: the first encrypts, all of them decrypt, so old rows stay
readable until they are re-saved. Unset, the key is derived from SECRET_KEY (SHA-256, url-safe
base64) so a fresh checkout works; rotating SECRET_KEY then makes stored keys unreadable,
which is why production sets FIELD_ENCRYPTION_KEY.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# How a secret is shown once stored: a recognisable prefix and at most four trailing characters.
MAX_HINT_TAIL = 4
_PREFIX_RE = re.compile(r"^[A-Za-z]{2,4}-")


class SecretDecryptionError(ValueError):
    """The stored value was not encrypted with any configured key (rotated or tampered)."""


@functools.lru_cache(maxsize=4)
def _fernet_for(key_material: str, secret_key: str) -> MultiFernet:
    keys = [part.strip() for part in key_material.split(",") if part.strip()]
    if not keys:
        derived = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())
        return MultiFernet([Fernet(derived)])
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys (32 url-safe base64 bytes)."
        ) from exc


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
