"""Guardrails on what tools and models produce: secret redaction for tool arguments and results,
approval payloads and the assistant's streamed answer.

The recognising is `apps.core.redaction` (detect-secrets plus patterns; it sits in `core` so
memory and the log filter can use it too). This module adds what only the turn engine needs:
`StreamRedactor`, which redacts an answer while it streams without letting a secret through in
two halves.
"""

from __future__ import annotations

import re

from apps.core.redaction import (
    _ASSIGNMENT_HINT,
    Redaction,
    _keyword_match,
    redact_data,
    redact_secrets,
    redact_text,
    redact_url,
)

__all__ = ["Redaction", "StreamRedactor", "redact_data", "redact_secrets", "redact_text", "redact_url"]

# A key block is released only once its END line has arrived: its base64 lines, seen one at a
# time, look like any other base64 and would pass.
_BLOCK_START = re.compile(r"-{4,5} ?BEGIN\b|PuTTY-User-Key-File-")
_BLOCK_END = re.compile(r"-{4,5} ?END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)? ?-{4,5}|Private-MAC: *[0-9a-fA-F]+\s")
_QUOTES = ("'", '"', "`")


class StreamRedactor:
    """Redacts text that arrives in pieces (a model's streamed answer), releasing only what can
    no longer turn out to be part of a secret.

    What is held back: the last word (a token may still be growing: `ghp_AB` now, the rest in the
    next batch), a private key block from its BEGIN line until its END line, and, on a line with a
    secret keyword and an open quote (`password = "two words`), the line from the keyword on until
    the quote closes. Everything else is released redacted. Each release is redacted together with
    the start of its line (at most CONTEXT_CHARS back), so a keyword or `Bearer` released in an
    earlier batch still marks the value that follows it in this one.

    The cost is the redaction of each batch plus that bit of context, not of the whole answer so
    far; the release at the end (`final=True`) lets out whatever was held.
    """

    CONTEXT_CHARS = 256

    def __init__(self) -> None:
        self._text = ""
        self._released = 0  # the raw text before this index is out, redacted

    def feed(self, delta: str) -> None:
        self._text += delta

    @property
    def raw(self) -> str:
        return self._text

    def release(self, *, final: bool = False) -> str:
        text, released = self._text, self._released
        end = len(text) if final else self._safe_end()
        if end <= released:
            return ""
        start = _context_start(text, released, self.CONTEXT_CHARS)
        window = text[start:end]
        redaction = redact_secrets(window)
        self._released = end
        if not redaction.redacted:
            return window[released - start :]
        pieces, position = [], released - start
        for finding in redaction.findings:
            if finding["end"] <= position:
                continue  # in the context, released before
            # A finding that began in text already released cannot be recalled; its rest is
            # still covered (this does not happen for the secrets held back above).
            pieces += [window[position : max(finding["start"], position)], f"[REDACTED:{finding['type']}]"]
            position = finding["end"]
        pieces.append(window[position:])
        return "".join(pieces)

    def _safe_end(self) -> int:
        text, released = self._text, self._released
        end = len(text)
        while end > released and not text[end - 1].isspace():
            end -= 1  # the last word may still be growing
        block = _open_block(text, released, end)
        if block is not None:
            end = min(end, block)
        # The whole line up to the cut, released part included: its keyword may be out already.
        quoted = _open_quoted_value(text, text.rfind("\n", 0, end) + 1, end)
        if quoted is not None:
            end = min(end, quoted)
        return max(end, released)


# What the released text before a value may hold that makes the value a secret: a keyword
# ("password: "), a header ("Bearer "), a `token=` label, or the label words of the labelled
# detect-secrets plugins. Without one, the new text is redacted on its own.
_LABEL_HINTS = ("key", "pass", "pwd", "pw", "secret", "token", "bearer", "auth", "contrase")


def _context_start(text: str, released: int, reach: int) -> int:
    """Where the window redacted with the next release starts: at `released` when the line's
    released part holds no label (most batches), else up to `reach` characters back."""
    start = max(text.rfind("\n", 0, released) + 1, released - reach)
    if start < released and any(hint in text[start:released].casefold() for hint in _LABEL_HINTS):
        return start
    return released


def _open_block(text: str, released: int, end: int) -> int | None:
    """Where an unreleased key block starts whose END line does not lie wholly before `end`."""
    for match in _BLOCK_START.finditer(text, released, end):
        closing = _BLOCK_END.search(text, match.end())
        if closing is None or closing.end() > end:
            return match.start()
    return None


def _open_quoted_value(text: str, start: int, end: int) -> int | None:
    """On the line text[start:end], where a secret keyword starts that is followed by an
    assignment and a quote not closed before `end`."""
    line = text[start:end]
    keyword = _keyword_match(line)
    if keyword is None or not _ASSIGNMENT_HINT.search(line, keyword.end()):
        return None
    rest = line[keyword.end() :]
    if any(rest.count(quote) % 2 for quote in _QUOTES):
        return start + keyword.start()
    return None
