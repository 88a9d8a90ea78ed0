"""Secret redaction. The fake secrets are assembled from pieces so that secret scanners run on
this repository do not flag the test file itself."""

from __future__ import annotations

import json

import pytest
from detect_secrets.plugins.keyword import DENYLIST

from apps.core.redaction import _KEYWORD_HINTS, redact_secrets

AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
GITHUB_CLASSIC = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" + "K1l2M3n4O5p6Q7r8"
GITHUB_FINE = "github_pat_" + "11ABCDEFG0123456789_" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"
GITLAB = "glpat-" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn"
SLACK = "xoxb-" + "1234567890-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
OPENAI_LEGACY = "sk-" + "Ab12Cd34Ef56Gh78Ij90" + "T3BlbkFJ" + "Kl12Mn34Op56Qr78St90"
OPENAI_PROJECT = "sk-" + "proj-" + "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90_uv-WX"
ANTHROPIC = "sk-" + "ant-api03-" + "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx34Yz56-AbCdEfAA"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PLATFORM_KEY = "ap_" + "AbCd1234" + "." + "0123456789abcdefghij0123456789ABCDEFGHIJ"
PEM_BODY = "MIIEpAIBAAKCAQEA1c3fXyZ7rK9QmW2vN8pL4tH6sJ0uY3bE5gR1oT7iV9wX2zC4\nAg=="
PRIVATE_KEY = "-----BEGIN RSA " + "PRIVATE KEY-----\n" + PEM_BODY + "\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    ("text", "secret", "kind"),
    [
        (f"my key id is {AWS_KEY_ID} ok", AWS_KEY_ID, "aws_access_key"),
        (f'aws_secret_access_key = "{AWS_SECRET}"', AWS_SECRET, "aws_access_key"),
        (f"token {GITHUB_CLASSIC} done", GITHUB_CLASSIC, "github_token"),
        (f"fine-grained: {GITHUB_FINE}", GITHUB_FINE, "github_token"),
        (f"gitlab {GITLAB}", GITLAB, "gitlab_token"),
        (f"slack says {SLACK}.", SLACK, "slack_token"),
        (f"stripe {STRIPE}", STRIPE, "stripe_access_key"),
        (f"old openai {OPENAI_LEGACY}", OPENAI_LEGACY, "openai_token"),
        (f"OPENAI_API_KEY={OPENAI_PROJECT}", OPENAI_PROJECT, "model_provider_key"),
        (f"claude key: {ANTHROPIC} thanks", ANTHROPIC, "model_provider_key"),
        (f"Authorization: {JWT} now", JWT, "json_web_token"),
        (f"use {PLATFORM_KEY} please", PLATFORM_KEY, "platform_api_key"),
        ("connect to https://admin:s3cr3tP4ss@db.example.com/x", "s3cr3tP4ss", "basic_auth_credentials"),
        ("postgres://app:p4ss!w0rd$@db.internal:5432/app", "p4ss!w0rd$", "basic_auth_credentials"),
        ('password = "Xk9#mQ2vLp8!"', "Xk9#mQ2vLp8!", "secret_keyword"),
        ("DB_PASSWORD=Xk9mQ2vLp8wz and then more", "Xk9mQ2vLp8wz", "secret_keyword"),
        ('{"client_secret": "aB3dE5fG7hJ9kL1m"}', "aB3dE5fG7hJ9kL1m", "secret_keyword"),
        ("callback?access_token=ya29.A0ARrdaM8x9Yz1Bc2De3&state=1", "ya29.A0ARrdaM8x9Yz1Bc2De3", "secret_keyword"),
        ("curl -H 'Authorization: Bearer abc123DEF456ghi789JKL0' https://x", "abc123DEF456ghi789JKL0", "bearer_token"),
        (f"here it is:\n{PRIVATE_KEY}\nthanks", PRIVATE_KEY, "private_key"),
    ],
)
def test_each_kind_of_secret_is_redacted(text, secret, kind):
    redaction = redact_secrets(text)
    assert redaction.redacted
    assert secret not in redaction.text
    assert f"[REDACTED:{kind}]" in redaction.text
    assert [(f["type"], text[f["start"] : f["end"]]) for f in redaction.findings] == [(kind, secret)]


def test_only_the_secret_is_replaced():
    redaction = redact_secrets(f"Deploy with {GITHUB_CLASSIC} and then run the tests.")
    assert redaction.text == "Deploy with [REDACTED:github_token] and then run the tests."


def test_several_secrets_keep_their_positions_in_the_original_text():
    text = f"aws {AWS_KEY_ID}, stripe {STRIPE}, platform {PLATFORM_KEY}."
    redaction = redact_secrets(text)
    assert (
        redaction.text
        == "aws [REDACTED:aws_access_key], stripe [REDACTED:stripe_access_key], platform [REDACTED:platform_api_key]."
    )
    assert [text[f["start"] : f["end"]] for f in redaction.findings] == [AWS_KEY_ID, STRIPE, PLATFORM_KEY]


@pytest.mark.parametrize(
    "key",
    [
        PRIVATE_KEY,
        PRIVATE_KEY.replace("\n", "\r\n"),
        PRIVATE_KEY.replace("\n", " "),  # line breaks lost in the paste
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n"
        "-----END ENCRYPTED PRIVATE KEY-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGBxYz0BCADKd7Qs9fYr3Hc2pV8mN1\n"
        "-----END PGP PRIVATE KEY BLOCK-----",
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAi4AAAA3aWYtbW9kbjtvcHRpb25zOnt9\n"
        "---- END SSH2 ENCRYPTED PRIVATE KEY ----",
        (
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,2AF25325A9B318F3\n\n"
            + PEM_BODY
            + "\n-----END RSA PRIVATE KEY-----"
        ),
    ],
)
def test_private_key_blocks_are_redacted_whole(key):
    redaction = redact_secrets(f"My key:\n{key}\nWhat is wrong with it?")
    assert redaction.text == "My key:\n[REDACTED:private_key]\nWhat is wrong with it?"


def test_a_json_escaped_private_key_is_redacted_whole():
    text = json.dumps({"type": "service_account", "private_key": PRIVATE_KEY + "\n", "client_id": "1234"})
    redaction = redact_secrets(text)
    assert json.loads(redaction.text) == {
        "type": "service_account",
        "private_key": "[REDACTED:private_key]\n",
        "client_id": "1234",
    }


def test_a_private_key_pasted_without_its_end_line_is_redacted():
    redaction = redact_secrets("-----BEGIN RSA PRIVATE KEY-----\n" + PEM_BODY.split("\n")[0] + "\n\nis this enough?")
    assert redaction.text == "[REDACTED:private_key]\n\nis this enough?"


@pytest.mark.parametrize(
    "text",
    [
        "Could you review the deployment logs for the platform service? The rollout went fine yesterday.",
        "Request 3f2504e0-4f89-11d3-9a0c-0305e82c3301 failed; see trace 7d444840-9dc0-11d1-b245-5ffdce74fad2.",
        "The bug was introduced in commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 and fixed in 4b825dc.",
        "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "The password: must contain at least 12 characters and a digit.",
        "The secret: Consistency. The key: patience.",
        "Reset your password = easy, just click the link.",
        "Set api_key=YOUR_API_KEY and token=<your-token> in the config.",
        "Connect with https://user:<password>@db.example.com or https://user:${DB_PASS}@host or https://u:****@h",
        "password: ${DB_PASSWORD}",
        "We use sk-learn-and-friends-for-classic-ml-models a lot.",
        "He was the bearer of bad news, and the token economy is broken.",
        "Use max_tokens: 4096 and a tokenizer: cl100k_base.",
        "Files start with -----BEGIN RSA PRIVATE KEY----- and end with an END line.",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----",
        "Our office is at 10.0.0.1 and the public site at 93.184.216.34.",
        "ssh git@github.com:org/repo.git and https://github.com/org/repo/pull/42",
        "Call me at +1 (555) 010-9999 or email jane.doe@example.com.",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text):
    redaction = redact_secrets(text)
    assert (redaction.text, redaction.findings, redaction.redacted) == (text, [], False)


def test_keyword_hints_cover_every_detect_secrets_keyword():
    """The fast pre-check must not skip a line the keyword plugin would flag (detect-secrets upgrades)."""
    for word in DENYLIST:
        assert any(hint in word for hint in _KEYWORD_HINTS), word
