"""Provider keys at rest: Fernet encryption and the hints shown instead of keys."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from apps.agents.crypto import SecretDecryptionError, decrypt_secret, encrypt_secret, mask_secret


def test_round_trip_and_the_token_hides_the_secret():
    token = encrypt_secret("sk-proj-very-secret-value")
    assert "very-secret" not in token
    assert decrypt_secret(token) == "sk-proj-very-secret-value"
    assert encrypt_secret("sk-proj-very-secret-value") != token  # a fresh IV every time


def test_empty_stays_empty():
    assert encrypt_secret("") == ""
    assert decrypt_secret("") == ""


def test_key_derived_from_secret_key_when_no_encryption_key(settings):
    settings.FIELD_ENCRYPTION_KEY = ""
    token = encrypt_secret("abc")
    settings.SECRET_KEY = "another-secret-key-entirely"
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(token)


def test_configured_key_and_rotation(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old
    token = encrypt_secret("sk-rotate-me")
    settings.FIELD_ENCRYPTION_KEY = f"{new},{old}"  # the first encrypts, all decrypt
    assert decrypt_secret(token) == "sk-rotate-me"
    settings.FIELD_ENCRYPTION_KEY = new
    with pytest.raises(SecretDecryptionError):
        decrypt_secret(token)


def test_a_malformed_encryption_key_is_a_configuration_error(settings):
    settings.FIELD_ENCRYPTION_KEY = "not-a-fernet-key"
    with pytest.raises(ImproperlyConfigured):
        encrypt_secret("x")


@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        ("sk-proj-abcdefghijklmnop3xYz", "sk-…3xYz"),
        ("sk-ant-api03-0123456789abcdef", "sk-…cdef"),
        ("plainlongsecretvalue", "…alue"),
        ("short1", "…1"),
        ("abc", "…"),
        ("", ""),
    ],
)
def test_masking_shows_at_most_four_trailing_characters(secret, hint):
    assert mask_secret(secret) == hint
    tail = hint.split("…")[-1]
    assert len(tail) <= 4
