"""Secret redaction. The fake secrets are assembled from pieces so that secret scanners run on
this repository do not flag the test file itself."""

from __future__ import annotations

import json
import logging

import pytest
from detect_secrets.plugins.keyword import DENYLIST

from apps.core.logging import RedactingFilter
from apps.core.redaction import (
    _FORMAT_DETECTORS,
    _KEYWORD_HINTS,
    _WHOLE_MATCH_PATTERNS,
    _format_findings,
    _has_keyword,
    _merge,
    redact_secrets,
    redact_text,
)
from apps.tools.guardrails import StreamRedactor, redact_data, redact_url

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
        assert _has_keyword(f"the {word.replace('_?', '_')} = x")


# One credential of every format the plugins know, for the prefilter tests below.
FORMAT_SAMPLES = {
    "aws": AWS_KEY_ID,
    "aws_secret": f'aws_secret_access_key = "{AWS_SECRET}"',
    "azure": "AccountKey=" + "lJzRc1YdHaAA2KCNJJ1tkYwF/+mKK6Ygw0NGe170Xu592euJv2wYUtBlV8z+qnlcNQSnIYVTkLWntUO1F8j8rQ==",
    "basic_auth": "https://admin:" + "s3cr3tP4ss@db.example.com/x",
    "discord": "MTk4NjIyNDgzNDcxOTI1MjQ4" + ".Cl2FMQ." + "ZnCjm1XVW7vRze4b7Cq4se7kKWs",
    "github": GITHUB_CLASSIC,
    "gitlab": GITLAB,
    "jwt": JWT,
    "mailchimp": "343ea45721923ed956e2b38c31db76aa" + "-us30",
    "npm": "//registry.npmjs.org/:_authToken=" + "743b294a-cd03-11ec-9d64-0242ac120002",
    "openai": OPENAI_LEGACY,
    "pypi": "pypi-AgEIcHlwaS5vcmc"
    + "CJGQyYzZjZmQ5LWE4ODgtNDhmYi05NGU5LTk0YjU1YWNmNDZiYwACJXsicGVybWlzc2lvbnMiOiAidXNlciIsICJ2ZXJzaW9uIjogMX0",
    "sendgrid": "SG." + "ngeVfQFYQlKU0ufo8x5d1A" + "." + "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr",
    "slack": SLACK,
    "slack_hook": "https://hooks.slack.com/services/" + "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "square": "sq0csp-" + "0p9h7g6f4s3s3s3-4a3ardgwa6ADRDJDDKUFYDYDYDY",
    "stripe": STRIPE,
    "telegram": "110201543:" + "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX",
    "twilio": "AC" + "1234567890abcdef1234567890abcdef",
    "cloudant": 'cloudant_password = "' + "abcdefghijklmnopqrstuvwx" + '"',
    "cloudant_url": "https://acct:" + "0123456789abcdef" * 4 + "@acct.cloudant.com",
    "ibm_iam": 'ibm_cloud_iam_api_key = "' + "abcd1234" * 5 + "abcd" + '"',
    "ibm_cos": 'ibm_cos_hmac_secret_access_key = "' + "1234567890abcdef" * 3 + '"',
    "softlayer": 'softlayer_api_key = "'
    + "abcdefghijklmnopqrstuvwxyz0123456789"
    + "abcdefghijklmnopqrstuvwxyz01"
    + '"',
    "softlayer_url": "https://api.softlayer.com/soap/v3/" + "abcdefghijklmnopqrstuvwxyz0123456789" + "a" * 28,
    "private_key": PRIVATE_KEY,
    "model_provider": OPENAI_PROJECT,
    "github_fine": GITHUB_FINE,
    "platform": PLATFORM_KEY,
}


def _every_plugin_on_the_whole_text(text: str) -> list[tuple[int, int, str]]:
    """What redaction finds with no prefilter at all: every plugin and pattern over all of it."""
    spans = [span for detector in _FORMAT_DETECTORS for span in _format_findings(detector, text)]
    spans += [(m.start(), m.end(), kind) for pattern, kind in _WHOLE_MATCH_PATTERNS for m in pattern.finditer(text)]
    return _merge(spans)


@pytest.mark.parametrize("name", sorted(FORMAT_SAMPLES))
def test_the_prefilters_skip_nothing_a_plugin_would_find(name):
    """The substring gates and label windows only save time: each sample, in prose and in JSON,
    is found exactly where running every plugin over the whole text finds it."""
    prose = f"Here it is: {FORMAT_SAMPLES[name]} - thanks!"
    assert _every_plugin_on_the_whole_text(prose), f"{name}: the sample is not a secret any plugin knows"
    # In JSON the labelled samples' quotes are escaped and no plugin matches; the others still do.
    for text in (prose, json.dumps({"note": "x", "value": FORMAT_SAMPLES[name]})):
        reference = _every_plugin_on_the_whole_text(text)
        found = redact_secrets(text).findings
        for start, end, _kind in reference:
            assert any(f["start"] <= start and end <= f["end"] for f in found), (name, text[start:end])


@pytest.mark.parametrize("name", sorted(FORMAT_SAMPLES))
def test_redacting_twice_changes_nothing(name):
    once = redact_text(f"value: {FORMAT_SAMPLES[name]} ok\npassword = 'Xk9#mQ2vLp8!'")
    assert redact_text(once) == once


# --- streamed text ---------------------------------------------------------------------------------

STREAMED = [
    f"Your token is {GITHUB_CLASSIC} so keep it safe.",
    f"The key:\n{PRIVATE_KEY}\nbye",
    'Then set password = "Xk9 #mQ2 vLp8!" and restart.',
    "curl -H 'Authorization: Bearer abc123DEF456ghi789JKL0' https://x",
    "Connect to https://admin:s3cr3tP4ss@db.example.com/x when ready.",
    f"aws {AWS_KEY_ID} and {OPENAI_PROJECT}.",
    "Nothing secret here, just words and 42 numbers.",
]


def _stream(pieces: list[str]) -> tuple[list[str], str]:
    redactor = StreamRedactor()
    released = []
    for piece in pieces:
        redactor.feed(piece)
        released.append(redactor.release())
    released.append(redactor.release(final=True))
    return released, "".join(released)


@pytest.mark.parametrize("text", STREAMED)
def test_a_secret_split_across_two_batches_is_never_released_in_halves(text):
    """Every cut point, and every pair of cut points 1-9 characters apart: what goes out is what
    redacting the whole text gives, so no part of a secret leaves in an early batch."""
    whole = redact_text(text)
    for cut in range(1, len(text)):
        for width in (0, 1, 4, 9):
            second = min(len(text), cut + width)
            released, joined = _stream([text[:cut], text[cut:second], text[second:]])
            assert joined == whole, (text[:cut], released)


@pytest.mark.parametrize("text", STREAMED)
def test_character_by_character_streaming_releases_the_redacted_text(text):
    released, joined = _stream(list(text))
    assert joined == redact_text(text)
    assert sum(1 for piece in released if piece) > 1 or len(text.split()) == 1  # it did stream


def test_ordinary_text_streams_without_waiting_for_the_end():
    redactor = StreamRedactor()
    redactor.feed("The quick brown fox jum")
    assert redactor.release() == "The quick brown fox "
    redactor.feed("ps over")
    assert redactor.release() == "jumps "
    assert redactor.release(final=True) == "over"


def test_a_key_block_is_held_until_its_end_line():
    redactor = StreamRedactor()
    head, body = PRIVATE_KEY.split("\n", 1)
    redactor.feed(f"Here:\n{head}\n{body[:20]} ")
    assert redactor.release() == "Here:\n"
    redactor.feed(body[20:] + "\nok ")
    assert redactor.release() == "[REDACTED:private_key]\nok "


# --- JSON values and URLs ----------------------------------------------------------------------------


def test_json_values_are_redacted_by_text_and_by_key_name():
    arguments = {
        "url": f"https://api.example.com/x?q=1&note={GITHUB_CLASSIC}",
        "headers": {"Authorization": "Basic dXNlcjpwNHNzdzByZA==", "api_key": "x7Kp29qLmZ"},
        "items": [f"id {AWS_KEY_ID}", 42, None, True],
        "password": "short",
        "query": "the weather in Paris",
    }
    assert redact_data(arguments) == {
        "url": "https://api.example.com/x?q=1&note=[REDACTED:github_token]",
        "headers": {"Authorization": "[REDACTED:secret_keyword]", "api_key": "[REDACTED:secret_keyword]"},
        "items": ["id [REDACTED:aws_access_key]", 42, None, True],
        "password": "short",  # not generated-looking: a word, kept
        "query": "the weather in Paris",
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pa55word@img.example.com/x.png", "https://img.example.com/x.png"),
        ("https://img.example.com/x.png?token=abc123&size=2", "https://img.example.com/x.png?token=REDACTED&size=2"),
        ("https://img.example.com/x.png?key=abc&w=1", "https://img.example.com/x.png?key=REDACTED&w=1"),
        (
            "https://b.s3.amazonaws.com/x.png?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12",
            "https://b.s3.amazonaws.com/x.png?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED",
        ),
        # A token's match runs to the end of the token, here the rest of the path.
        (f"https://img.example.com/{GITHUB_CLASSIC}/x.png", "https://img.example.com/[REDACTED:github_token]"),
        ("https://img.example.com/a%20b.png?w=1&h=2", "https://img.example.com/a%20b.png?w=1&h=2"),
        ("data:image/png;base64,iVBORw0KGgo=", "data:image/png;base64,iVBORw0KGgo="),
        ("att_0123456789", "att_0123456789"),
    ],
)
def test_image_urls_lose_their_credentials(url, expected):
    assert redact_url(url) == expected


# --- log records -------------------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def _logger_with(*handlers) -> logging.Logger:
    logger = logging.getLogger(f"tests.redaction.{id(handlers)}")
    logger.propagate, logger.handlers = False, list(handlers)
    logger.setLevel(logging.DEBUG)
    return logger


def test_log_records_are_redacted_in_message_args_traceback_and_extras():
    first, second = _Collect(), _Collect()
    first.addFilter(RedactingFilter())
    second.setFormatter(logging.Formatter("%(message)s %(detail)s"))
    logger = _logger_with(first, second)
    try:
        raise ValueError(f"upstream said Bearer {GITHUB_CLASSIC}")
    except ValueError:
        logger.exception(
            "calling %s failed", f"https://bot:{'pa55-w0rd-x9'}@hooks.example.com/x", extra={"detail": STRIPE}
        )
    text = "\n".join(first.lines + second.lines)
    for secret in (GITHUB_CLASSIC, "pa55-w0rd-x9", STRIPE):
        assert secret not in text
    assert "[REDACTED:basic_auth_credentials]" in first.lines[0]
    assert "ValueError: upstream said Bearer [REDACTED:" in first.lines[0]
    # The second handler saw the record the filter changed (it has no filter of its own).
    assert second.lines[0].startswith("calling https://bot:[REDACTED:basic_auth_credentials]@")


def test_ordinary_log_records_keep_their_args():
    handler = _Collect()
    handler.addFilter(RedactingFilter())
    logger = _logger_with(handler)
    logger.info("turn %s took %d ms", "t-1", 12)
    assert handler.lines == ["turn t-1 took 12 ms"]


def test_logging_from_inside_redaction_does_not_recurse(monkeypatch):
    handler = _Collect()
    handler.addFilter(RedactingFilter())
    logger = _logger_with(handler)
    calls = []

    def noisy(text):
        calls.append(text)
        logger.warning("redacting %s", text)  # a library that logs while it works
        return text

    monkeypatch.setattr("apps.core.logging.redact_text", noisy)
    logger.warning("outer")
    assert handler.lines == ["redacting outer", "outer"]
    assert calls == ["outer"]


def test_every_configured_handler_carries_the_filter():
    """LOGGING's handlers and Django's defaults (named by dictConfig); pytest's own are not ours."""
    handlers = [ref() for ref in logging._handlerList]
    configured = [h for h in handlers if h is not None and h.get_name()] + logging.getLogger("django").handlers
    assert {"console", "mail_admins"} <= {h.get_name() for h in configured}
    assert all(any(isinstance(f, RedactingFilter) for f in h.filters) for h in configured)


def test_every_keyword_value_on_a_line_is_redacted_not_only_the_first():
    text = 'password = "Xk9#mQ2vLp8!" and secret = "Ab3dE5fG7hJ9kL1m"; user: easy, db_password: Q7w8E9r0T1y2'
    assert redact_text(text) == (
        'password = "[REDACTED:secret_keyword]" and secret = "[REDACTED:secret_keyword]"; '
        "user: easy, db_password: [REDACTED:secret_keyword]"
    )


def test_the_celery_worker_handlers_get_the_filter():
    """The worker replaces the root logger's handlers with its own and says so with a signal."""
    from celery.signals import after_setup_logger

    import agentplatform.celery  # noqa: F401 - connects the receiver

    logger = logging.getLogger("tests.redaction.worker")
    handler = logging.StreamHandler()
    logger.handlers = [handler]
    after_setup_logger.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None, format="", colorize=False)
    assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    logger.handlers = []
