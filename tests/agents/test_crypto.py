"""Provider keys at rest: Fernet encryption and the hints shown instead of keys."""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
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


# --- key derivation and rotation -----------------------------------------------------------------


def test_the_fallback_key_is_hkdf_not_the_plain_hash_of_secret_key(settings):
    from apps.agents.crypto import derived_key, legacy_derived_key

    settings.FIELD_ENCRYPTION_KEY = ""
    assert derived_key(settings.SECRET_KEY) != legacy_derived_key(settings.SECRET_KEY)
    token = encrypt_secret("sk-new-derivation")
    assert Fernet(derived_key(settings.SECRET_KEY)).decrypt(token.encode()) == b"sk-new-derivation"
    with pytest.raises(InvalidToken):
        Fernet(legacy_derived_key(settings.SECRET_KEY)).decrypt(token.encode())


def test_rows_written_under_the_old_derivation_still_decrypt(settings):
    from apps.agents.crypto import legacy_derived_key

    settings.FIELD_ENCRYPTION_KEY = ""
    old_token = Fernet(legacy_derived_key(settings.SECRET_KEY)).encrypt(b"sk-written-long-ago").decode()
    assert decrypt_secret(old_token) == "sk-written-long-ago"


@pytest.mark.django_db
def test_rotate_command_re_encrypts_every_stored_secret_under_the_first_key(settings, tenant):
    from django.core.management import call_command

    from apps.agents import services
    from apps.agents.crypto import legacy_derived_key
    from apps.agents.models import PlatformProvider, Provider
    from apps.tenancy.principal import Actor
    from apps.tools.models import Plugin

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old
    mine = services.provider_create(
        tenant=tenant, actor=Actor.system("test"), kind="openai", name="mine", api_key="sk-tenant-1234", models=[]
    )
    platform = services.platform_provider_save(
        actor=Actor.system("test"), platform_provider=None, name="gw", kind="openai", api_key="sk-platform-5678"
    )
    plugin = Plugin.objects.create(
        tenant=tenant, name="p", kind=Plugin.Kind.MCP, secrets_encrypted=encrypt_secret('{"t": "v"}')
    )
    # One row from before HKDF (no FIELD_ENCRYPTION_KEY then): it must come along too.
    ancient = services.provider_create(
        tenant=tenant, actor=Actor.system("test"), kind="openai", name="ancient", models=[]
    )
    Provider.objects.filter(pk=ancient.pk).update(
        api_key_encrypted=Fernet(legacy_derived_key(settings.SECRET_KEY)).encrypt(b"sk-ancient-0000").decode()
    )

    settings.FIELD_ENCRYPTION_KEY = f"{new},{old}"
    call_command("rotate_field_encryption", stdout=io.StringIO())
    settings.FIELD_ENCRYPTION_KEY = new  # the old key is gone now
    only_new = Fernet(new.encode())
    for token, plain in (
        (Provider.objects.get(pk=mine.pk).api_key_encrypted, b"sk-tenant-1234"),
        (PlatformProvider.objects.get(pk=platform.pk).api_key_encrypted, b"sk-platform-5678"),
        (Plugin.objects.get(pk=plugin.pk).secrets_encrypted, b'{"t": "v"}'),
        (Provider.objects.get(pk=ancient.pk).api_key_encrypted, b"sk-ancient-0000"),
    ):
        assert only_new.decrypt(token.encode()) == plain


@pytest.mark.django_db
def test_rotate_command_reports_rows_no_key_decrypts(settings, tenant):
    from django.core.management import CommandError, call_command

    from apps.agents import services
    from apps.agents.models import Provider
    from apps.tenancy.principal import Actor

    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    lost = services.provider_create(
        tenant=tenant, actor=Actor.system("test"), kind="openai", name="lost", api_key="sk-lost-1234", models=[]
    )
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(CommandError, match="1 secret"):
        call_command("rotate_field_encryption", stdout=io.StringIO(), stderr=io.StringIO())
    assert Provider.objects.get(pk=lost.pk).api_key_encrypted == lost.api_key_encrypted  # left alone
