"""Secret redaction: credentials are replaced before anything stores them, sends them to a model,
puts them in an event or writes them to a log.

It lives in `core` because every layer needs it: memory (below tools) redacts what it stores, the
log filter in `apps.core.logging` redacts every record, and `apps.tools.guardrails` adds what only
tools and the turn engine use (JSON arguments, streamed text).

detect-secrets does the recognising. Its plugins are used directly, in memory: `scan_line()` and
`transient_settings()` would reconfigure a process-wide settings singleton on every call (a race
between threads, and a cache flush each time; about 24 ms per 2 KB against about 1 ms here) and
report secret values without positions. Here each plugin's `analyze_string()` says *whether* the
text holds a secret of its kind, and its own `denylist` patterns say *where*.

A handful of patterns cover what detect-secrets 1.5 misses and that shows up in chat: private
key blocks across lines (its plugin only sees the BEGIN line), current model-provider keys
(`sk-proj-...`, `sk-ant-...`), GitHub fine-grained tokens, this platform's own API keys, passwords
in URLs with characters its basic-auth pattern stops at, and `token`/`Bearer` credentials.

Ordinary prose, UUIDs and git SHAs are left alone: detect-secrets' entropy plugins (which would
flag every hash) and its public-IP plugin (addresses are not secrets) are not used, and a value
after a keyword ("password: ...") is only taken when it looks generated, not like a word.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from detect_secrets.filters.heuristic import is_prefixed_with_dollar_sign, is_sequential_string, is_templated_secret
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP, KeywordDetector

from apps.core.redaction_rules import (
    _ASSIGNMENT_HINT,
    _BEARER,
    _FORMAT_DETECTORS,
    _GROUP_IS_A_PREFIX,
    _HINT_REACH,
    _KEYWORD_HINT,
    _KEYWORD_HINTS,
    _KEYWORDS,
    _LABEL_REACH,
    _LABEL_WORDS,
    _LABELLED_DETECTORS,
    _LABELLED_HOSTS,
    _LABELLED_VALUE,
    _LONGEST_WORD,
    _NARROW,
    _NARROW_RUN,
    _NEEDS,
    _TOKEN_ASSIGNMENT,
    _TOKEN_TAIL,
    _TYPE_NAMES,
    _URL_PASSWORD,
    _WHOLE_MATCH_NEEDS,
    _WHOLE_MATCH_PATTERNS,
    _WIDE,
    _WIDE_RUN,
)

_MARKER = "[REDACTED"


@dataclass(frozen=True)
class Redaction:
    text: str  # the input with every secret replaced by [REDACTED:<type>]
    findings: list[dict[str, Any]] = field(default_factory=list)  # {"type", "start", "end"} in the input
    redacted: bool = False


def redact_secrets(text: str) -> Redaction:
    if not text:
        return Redaction(text=text or "")
    spans = _merge(list(_find(text)))
    if not spans:
        return Redaction(text=text)
    pieces, position = [], 0
    for start, end, kind in spans:
        pieces += [text[position:start], f"[REDACTED:{kind}]"]
        position = end
    pieces.append(text[position:])
    findings = [{"type": kind, "start": start, "end": end} for start, end, kind in spans]
    return Redaction(text="".join(pieces), findings=findings, redacted=True)


def redact_text(text: str) -> str:
    """The text with its secrets replaced: what storage, events, models and logs get."""
    return redact_secrets(text).text if text else text


# Keys whose value is a credential whatever it looks like by itself: in `{"api_key": "x7..."}`
# the value alone has no keyword next to it for the text patterns to see.
_SECRET_KEY_NAME = re.compile(
    r"(?i)(pass(word|wd|phrase)?|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|"
    r"auth(orization)?|credential|cookie|session[_-]?id|signature)"
)


def redact_data(value: Any, *, _key: str = "") -> Any:
    """A JSON-like value (tool arguments, results) with every string redacted: each string by
    the text patterns, and a generated-looking string under a secret-named key as a whole."""
    if isinstance(value, str):
        if _key and _SECRET_KEY_NAME.search(_key) and _looks_generated(value):
            return f"[REDACTED:{_TYPE_NAMES[KeywordDetector]}]"
        return redact_text(value)
    if isinstance(value, dict):
        return {key: redact_data(item, _key=str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(item, _key=_key) for item in value]
    return value


# Query parameters that carry a credential in links people share: ?token=, ?key=, presigned
# URLs' signatures. Their values are replaced, the parameter stays, so the URL still parses.
_SECRET_QUERY_NAME = re.compile(
    r"(?i)^(x-amz-(signature|credential|security-token)|.*(token|key|secret|pass(word)?|pwd|sig|signature|auth|"
    r"credential|session).*)$"
)


def redact_url(url: str) -> str:
    """A URL without credentials: the user and password before the host are dropped, secret
    query values replaced by REDACTED, and whatever else the text patterns find redacted.

    Image URLs are fetched by the model provider, so a credential in one would leave the
    platform; dropping it may make the image unreadable, which is the lesser harm."""
    if not url or not isinstance(url, str) or url.startswith("data:"):
        return url  # inline data is the image itself, and scanning megabytes of base64 buys nothing
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if not parts.scheme or not parts.netloc:
        return redact_text(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(value and _SECRET_QUERY_NAME.match(name) for name, value in pairs):
        # Re-encoded only when something is replaced: an untouched URL keeps its exact spelling.
        query = urlencode(
            [(name, "REDACTED" if value and _SECRET_QUERY_NAME.match(name) else value) for name, value in pairs],
            safe="/:",
        )
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))


def _find(text: str) -> Iterator[tuple[int, int, str]]:
    """Every finding, detect-secrets' first: on equal spans the first one found names the secret,
    and its names are the more specific."""
    runs = _token_runs(text)
    if runs is not None:
        # The format patterns never cross a line break, so one pass over the whole text finds what
        # a pass per line would, with a twentieth of the calls.
        folded = text.casefold()
        for detector in _FORMAT_DETECTORS:
            needs, run_kind, shortest = _NEEDS[type(detector)]
            if runs[run_kind] < shortest or not any(needed in folded for needed in needs):
                continue
            if isinstance(detector, _LABELLED_DETECTORS) and not any(host in folded for host in _LABELLED_HOSTS):
                for start, end in _label_windows(folded):
                    for span_start, span_end, kind in _format_findings(detector, text[start:end]):
                        yield start + span_start, start + span_end, kind
            else:
                yield from _format_findings(detector, text)
        yield from _find_whole_matches(text, folded)
    yield from _find_with_patterns(text)
    # The keyword patterns do cross line breaks (`[^\v...]` runs on), so they go line by line,
    # and only over lines that have a keyword and an assignment-like character in them.
    if not _has_keyword(text):
        return
    offset = 0
    for line in text.split("\n"):
        if _ASSIGNMENT_HINT.search(line) and _has_keyword(line):
            for start, end in _keyword_spans(line):
                yield offset + start, offset + end, _TYPE_NAMES[KeywordDetector]
        offset += len(line) + 1


_MAX_KEYWORD_VALUES_PER_LINE = 16


def _keyword_spans(line: str) -> Iterator[tuple[int, int]]:
    """The plugin reports one value per pattern and line ("password: x and secret: y" gives x
    only), so the rest of the line after the values found is searched again."""
    position = 0
    for _ in range(_MAX_KEYWORD_VALUES_PER_LINE):
        rest = line[position:]
        values = list(_KEYWORDS.analyze_string(rest, denylist_regex_to_group=CONFIG_DENYLIST_REGEX_TO_GROUP))
        if not values:
            return
        # On past the first value reported, taken or not ("password: easy and secret: x7K..."):
        # each pattern reports its own first match, so values between two of them would be
        # skipped by jumping further. At least one character, so the loop always moves.
        ends = []
        for value in values:
            span = _keyword_value_span(rest, value)
            if span:
                yield position + span[0], position + span[1]
            found = rest.find(value)
            word = re.split(r"[\s&]", value, maxsplit=1)[0]  # an unquoted value runs to the line's end
            ends.append(found + len(word) if found >= 0 else 0)
        position += max(1, min(ends))
        if not (_ASSIGNMENT_HINT.search(line, position) and _has_keyword(line[position:])):
            return


def _token_runs(text: str) -> dict[str, int] | None:
    """The longest wide and narrow token runs in `text`, or None when it holds neither a run of
    16 nor "://" (then no plugin can match)."""
    wide = _longest_run(_WIDE_RUN, text)
    if not wide and "://" not in text:
        return None
    return {_WIDE: wide, _NARROW: _longest_run(_NARROW_RUN, text) if wide else 0}


def _longest_run(pattern: re.Pattern, text: str) -> int:
    return max(
        (
            len(run)
            for run in pattern.findall(text)
            if len(run) >= _LONGEST_WORD or not (run.isalpha() and run.islower())
        ),
        default=0,
    )


def _has_keyword(text: str) -> bool:
    return _keyword_match(text) is not None


def _keyword_match(text: str) -> re.Match | None:
    """The first of detect-secrets' keywords in `text`."""
    folded = text.casefold()
    if len(folded) != len(text):  # "ß" folds to "ss": positions would not line up (rare)
        return _KEYWORD_HINT.search(text)
    first = None
    for hint in _KEYWORD_HINTS:
        at = folded.find(hint)
        while at >= 0 and (first is None or at < first.start()):
            found = _KEYWORD_HINT.search(text, max(0, at - _HINT_REACH), at + len(hint) + _HINT_REACH)
            if found is not None:
                first = found if first is None or found.start() < first.start() else first
                break
            at = folded.find(hint, at + 1)
    return first


def _format_findings(detector: RegexBasedDetector, text: str) -> Iterator[tuple[int, int, str]]:
    reported = set(detector.analyze_string(text))
    if not reported:
        return
    for pattern in detector.denylist:
        for match in pattern.finditer(text):
            # analyze_string() applies the plugin's own checks (a JWT must decode); only matches
            # whose value it reported count.
            if not reported.intersection(g for g in (match.group(0), *match.groups()) if g):
                continue
            span = _format_span(detector, pattern, match, text)
            if span:
                yield span


def _label_windows(folded: str) -> list[tuple[int, int]]:
    """The stretches around each label word that is followed by a value long enough for these
    plugins (24 characters at least), overlapping ones joined."""
    before, after = _LABEL_REACH
    hits = sorted(match.start() for word in _LABEL_WORDS for match in re.finditer(re.escape(word), folded))
    windows: list[tuple[int, int]] = []
    for hit in hits:
        if not _LABELLED_VALUE.search(folded, hit, hit + after):
            continue
        start, end = max(0, hit - before), min(len(folded), hit + after)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def _format_span(
    detector: RegexBasedDetector, pattern: re.Pattern, match: re.Match, text: str
) -> tuple[int, int, str] | None:
    kind = _TYPE_NAMES[type(detector)]
    if pattern.groups and not isinstance(detector, _GROUP_IS_A_PREFIX) and match.group(1):
        # A labelled value: "https://user:<password>@host" in documentation is not a secret.
        return None if _is_placeholder(match.group(1)) else (match.start(1), match.end(1), kind)
    end = _TOKEN_TAIL.match(text, match.end()).end()
    while end > match.end() and text[end - 1] == ".":  # a sentence's full stop is not the token's
        end -= 1
    return match.start(), end, kind


def _keyword_value_span(line: str, value: str) -> tuple[int, int] | None:
    """Where the value after a secret keyword is, if it looks like a credential rather than prose.

    The keyword plugin's value runs to the end of the line when unquoted ("password: it must be
    long"), so an unquoted value is cut at the first space or `&` (a URL query)."""
    start = line.find(value)
    if start < 0:
        return None
    end = start + len(value)
    quoted = start > 0 and line[start - 1] in "'\"`" and line[end : end + 1] == line[start - 1]
    if not quoted:
        value = re.split(r"[\s&]", value, maxsplit=1)[0].rstrip(".,;")
    return (start, start + len(value)) if _looks_generated(value) else None


def _find_whole_matches(text: str, folded: str) -> Iterator[tuple[int, int, str]]:
    for pattern, kind in _WHOLE_MATCH_PATTERNS:
        if not any(needed in folded for needed in _WHOLE_MATCH_NEEDS[kind]):
            continue
        for match in pattern.finditer(text):
            yield match.start(), match.end(), kind


def _find_with_patterns(text: str) -> Iterator[tuple[int, int, str]]:
    # The cheap substring checks first spare the patterns below a scan of every word.
    if "://" in text and "@" in text:
        for match in _URL_PASSWORD.finditer(text):
            if not _is_placeholder(match.group(1)):
                yield match.start(1), match.end(1), "basic_auth_credentials"
    folded = text.casefold()
    if "token" in folded:
        for match in _TOKEN_ASSIGNMENT.finditer(text):
            if _looks_generated(match.group(2)):
                yield match.start(2), match.end(2), "secret_keyword"
    if "bearer" in folded:
        for match in _BEARER.finditer(text):
            value = match.group(1)
            if len(value) >= 16 and _looks_generated(value):
                yield match.start(1), match.end(1), "bearer_token"


# --- heuristics ----------------------------------------------------------------------------------


def _is_placeholder(value: str) -> bool:
    """`<password>`, `${TOKEN}`, `$PASSWORD`, `****`: examples, not secrets (detect-secrets' filters).
    Our own `[REDACTED:...]` markers too, so redacting twice changes nothing."""
    return (
        is_templated_secret(value)
        or is_prefixed_with_dollar_sign(value)
        or not re.search(r"[A-Za-z0-9]", value)
        or _MARKER in value
    )


def _looks_generated(value: str) -> bool:
    """A value after a keyword that reads like a credential: long enough, mixed like a password
    (a digit, or three of lower/upper/digit/symbol) and not repetitive. Words ("Consistency"),
    constants ("YOUR_API_KEY") and placeholders stay."""
    if len(value) < 8 or _is_placeholder(value) or is_sequential_string(value):
        return False
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )
    has_digit = any(c.isdigit() for c in value)
    if not (has_digit or classes >= 3):
        return False
    return _entropy(value) >= 2.5


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping findings (two detectors on one token) become one; the earliest-starting,
    then longest, names it."""
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            last_start, last_end, last_kind = merged[-1]
            merged[-1] = (last_start, max(last_end, end), last_kind)
        else:
            merged.append((start, end, kind))
    return merged
