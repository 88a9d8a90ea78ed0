"""What apps.core.redaction looks for: the detect-secrets plugins it runs, the cheap checks that
decide whether each can match at all, and the patterns for what detect-secrets misses. Tables
only; the code that uses them is apps/core/redaction.py.
"""

from __future__ import annotations

import re

from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.keyword import DENYLIST, KeywordDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

# --- detect-secrets ------------------------------------------------------------------------------

# Plugins for credentials with a recognisable format. Left out on purpose: the high-entropy
# plugins (every git SHA and checksum would go), IPPublicDetector (an address is not a secret),
# ArtifactoryDetector (its "AP…" pattern takes long upper-case words) and PrivateKeyDetector
# (it marks only the BEGIN line; _PRIVATE_KEY_BLOCK below takes the whole key).
_FORMAT_DETECTORS: tuple[RegexBasedDetector, ...] = (
    AWSKeyDetector(),
    AzureStorageKeyDetector(),
    BasicAuthDetector(),
    CloudantDetector(),
    DiscordBotTokenDetector(),
    GitHubTokenDetector(),
    GitLabTokenDetector(),
    IbmCloudIamDetector(),
    IbmCosHmacDetector(),
    JwtTokenDetector(),
    MailchimpDetector(),
    NpmDetector(),
    OpenAIDetector(),
    PypiTokenDetector(),
    SendGridDetector(),
    SlackDetector(),
    SoftlayerDetector(),
    SquareOAuthDetector(),
    StripeDetector(),
    TelegramBotTokenDetector(),
    TwilioKeyDetector(),
)
# In most patterns a capture group is the secret after a label ("aws_secret = '<group>'"); in
# these two it is the token's prefix ("ghp"), so the whole match is the secret.
_GROUP_IS_A_PREFIX = (GitHubTokenDetector, GitLabTokenDetector)
# Some patterns stop early: the JWT one lazily before the signature, the Slack one at the first
# upper-case letter. A format match therefore extends to the end of the token it starts.
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-+/=.]*")
_KEYWORDS = KeywordDetector()
# Every keyword pattern needs one of the plugin's keywords (api_key, db_pass, passwd, pwd, secret,
# contraseña, ...) and one of `:`, `=` or `;` (as in "password: x", "x == password",
# "PASSWORD 'x';"); checking for those with one search first spares ordinary chat lines the
# plugin's patterns, which would take most of the time. Built from the plugin's own DENYLIST, so
# an upgrade that adds a keyword is covered.
_KEYWORD_HINT = re.compile("|".join(DENYLIST), re.IGNORECASE)
# Each DENYLIST entry holds one of these; a substring test finds them far faster than the
# alternation above, which then only checks the few characters around each hit ("api_key", not
# "the key points"). A test keeps that true when detect-secrets is upgraded.
_KEYWORD_HINTS = ("key", "pass", "pwd", "secret", "contrase")
_HINT_REACH = 10  # the longest text a DENYLIST entry has before or after its hint ("database_")
_ASSIGNMENT_HINT = re.compile(r"[:=;]")
# Every format detect-secrets knows (and the key patterns below) spans a run of token
# characters: AWS ids are 20, GitHub tokens 40, Telegram's secret half 35, JWTs and key blocks far
# more. Text without a run of 16 (and without "://", for passwords in URLs) cannot hold one, so the
# 21 plugins are skipped: most chat lines and many tool results. A run of only lower-case letters
# is a long word ("responsibilities"), not a token. `_WIDE_RUN` takes `/` and `.` too (AWS secrets,
# JWTs, Azure keys); `_NARROW_RUN` does not, so a URL is no 40-character run for GitHub's pattern.
_WIDE_RUN = re.compile(r"[A-Za-z0-9_\-+/=.]{16,}")
_NARROW_RUN = re.compile(r"[A-Za-z0-9_\-+=]{16,}")
_LONGEST_WORD = 24
# What each plugin's patterns cannot match without: one of these substrings (lower-cased; a
# literal prefix or a label) and a run of this kind and length (each pattern's shortest match).
# Substring tests and two run scans cost microseconds where the patterns cost up to a millisecond
# per 4 KB; tests/tools/test_guardrails.py has a secret of every kind to keep these honest when
# detect-secrets is upgraded.
_LABEL_WORDS = ("key", "pw", "pass", "token", "secret")
_WIDE, _NARROW = "wide", "narrow"
_NEEDS: dict[type, tuple[tuple[str, ...], str, int]] = {
    AWSKeyDetector: (("a3t", "abia", "acca", "akia", "asia", "aws"), _WIDE, 20),
    AzureStorageKeyDetector: (("accountkey=",), _WIDE, 99),
    BasicAuthDetector: (("@",), _WIDE, 0),
    CloudantDetector: ((*_LABEL_WORDS, "cloudant.com"), _NARROW, 24),
    DiscordBotTokenDetector: ((".",), _WIDE, 59),
    GitHubTokenDetector: (("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), _NARROW, 40),
    GitLabTokenDetector: (
        (
            "glpat-",
            "gldt-",
            "glft-",
            "glsoat-",
            "glrt-",
            "gr1348941",
            "glcbt-",
            "glimt-",
            "glptt-",
            "glagent-",
            "gloas-",
        ),
        _NARROW,
        25,
    ),
    IbmCloudIamDetector: (_LABEL_WORDS, _NARROW, 44),
    IbmCosHmacDetector: (("secret",), _NARROW, 48),
    JwtTokenDetector: (("eyj",), _WIDE, 16),
    MailchimpDetector: (("-us",), _NARROW, 32),
    NpmDetector: (("_authtoken",), _WIDE, 0),
    OpenAIDetector: (("t3blbkfj",), _NARROW, 48),
    PypiTokenDetector: (("pypi-",), _NARROW, 85),
    SendGridDetector: (("sg.",), _WIDE, 69),
    SlackDetector: (("xox", "hooks.slack.com"), _WIDE, 0),
    SoftlayerDetector: ((*_LABEL_WORDS, "softlayer.com"), _NARROW, 24),
    SquareOAuthDetector: (("sq0csp-",), _NARROW, 50),
    StripeDetector: (("k_live_",), _NARROW, 32),
    TelegramBotTokenDetector: ((":",), _NARROW, 35),
    TwilioKeyDetector: (("ac", "sk"), _NARROW, 34),
}
# These four look for a value after a label (`cloudant_password = ...`, `ibm_api_key: ...`) with
# patterns that cost more than the other seventeen together; they run only on the stretch of
# text around each label word, which is where their label and value must be.
_LABELLED_DETECTORS = (CloudantDetector, IbmCloudIamDetector, IbmCosHmacDetector, SoftlayerDetector)
_LABELLED_HOSTS = ("cloudant.com", "softlayer.com")  # their URL patterns: the whole text is scanned
# Characters before a label word (its prefix, "ibm_cloud_iam_api_") and after it (`" = '` and a
# value of up to 64 characters).
_LABEL_REACH = (48, 160)
_LABELLED_VALUE = re.compile(r"[a-z0-9_\-]{24}")  # their shortest value, on lower-cased text
_WHOLE_MATCH_NEEDS = {
    "private_key": ("private key", "putty-user-key-file-"),
    "model_provider_key": ("sk-",),
    "github_token": ("github_pat_",),
    "platform_api_key": ("ap_",),
}


def _type_name(secret_type: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_")


_TYPE_NAMES = {type(d): _type_name(d.secret_type) for d in (*_FORMAT_DETECTORS, _KEYWORDS)}


# --- patterns for what detect-secrets misses ------------------------------------------------------

# A key block from BEGIN to its END line, also when JSON-escaped ("\\n" as two characters) or
# pasted with its line breaks turned into spaces.
_KEY_BEGIN = r"-{4,5} ?BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY((?: BLOCK)?) ?-{4,5}"
_PRIVATE_KEY_BLOCK = re.compile(_KEY_BEGIN + r"[A-Za-z0-9+/=:,.\\\-\s]*?-{4,5} ?END \1PRIVATE KEY\2 ?-{4,5}")
# A key pasted without its END line: the BEGIN line and the base64 lines (and "Proc-Type: ..."
# headers) that follow it. Base64 lines are long; prose after the paste ends the match.
_PRIVATE_KEY_TRUNCATED = re.compile(
    _KEY_BEGIN + r"""(?:(?:\s|\\[rn])+(?:[A-Za-z0-9+/=]{16,}|[A-Za-z][\w-]*: [^\r\n\\"']*))+"""
)
_PUTTY_KEY = re.compile(r"PuTTY-User-Key-File-\d+:[\s\S]*?(?:Private-MAC: *[0-9a-fA-F]+|\Z)")
# OpenAI project/service keys and Anthropic keys; the detect-secrets plugin knows only OpenAI's
# older "T3BlbkFJ" format. A digit is required so words like "sk-learn-..." stay.
_MODEL_PROVIDER_KEY = re.compile(r"(?<![A-Za-z0-9_-])sk-(?=[A-Za-z0-9_-]*\d)[A-Za-z0-9_-]{32,}")
_GITHUB_FINE_GRAINED = re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{50,}")
# apps.tenancy.models.ApiKey: "ap_" + 8-character prefix + "." + 40-character secret.
_PLATFORM_KEY = re.compile(r"(?<![A-Za-z0-9_])ap_[A-Za-z0-9]{8}\.[A-Za-z0-9]{40}(?![A-Za-z0-9])")
# scheme://user:password@host, where the password may hold the characters the basic-auth
# plugin excludes (!$&'()*+,;= and a stray @); the password is the last ":...@" of the authority.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]+:([^\s/?#]+)@(?=[^\s/?#@])")
# "token" is not among detect-secrets' keywords; bearer tokens in pasted curl commands are common.
_TOKEN_ASSIGNMENT = re.compile(r"""(?i)\b[\w-]*token["']?\s*[:=]\s*(["']?)([^\s"'&,;]+)\1""")
_BEARER = re.compile(r"(?i)\bBearer\s+([A-Za-z0-9\-._~+/]+=*)")

_WHOLE_MATCH_PATTERNS = (
    (_PRIVATE_KEY_BLOCK, "private_key"),
    (_PRIVATE_KEY_TRUNCATED, "private_key"),
    (_PUTTY_KEY, "private_key"),
    (_MODEL_PROVIDER_KEY, "model_provider_key"),
    (_GITHUB_FINE_GRAINED, "github_token"),
    (_PLATFORM_KEY, "platform_api_key"),
)
