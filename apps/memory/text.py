"""What the agent loop writes about an exchange, made without a model: an extractive summary,
keywords, a topic and an importance score.

Deterministic and cheap on purpose: it runs after every turn, on the worker, and must not add a
model call (and its cost and latency) to each one. The summary leads with what the user said,
which is where the facts worth recalling are; keywords are the most frequent content words.
"""

from __future__ import annotations

import re
from collections import Counter

from apps.core.constants import MEMORY_CONTEXT_HEADER

CONTEXT_HEADER = MEMORY_CONTEXT_HEADER  # the turn's context imports it from here
SUMMARY_USER_CHARS = 300
SUMMARY_ANSWER_CHARS = 200
CONTENT_MAX_CHARS = 4000
MAX_KEYWORDS = 8

_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9'-]{2,}")
# English function words and chat filler; the keywords are what is left.
_STOPWORDS_TEXT = """
    about above after again against all also and any are aren't because been before being below
    between both but can can't cannot could couldn't did didn't does doesn't doing don't down during
    each few for from further had hadn't has hasn't have haven't having he'd he'll he's her here
    here's hers herself him himself his how how's i'd i'll i'm i've into isn't it's its itself let's
    more most mustn't myself nor not off once only other ought our ours ourselves out over own same
    shan't she she'd she'll she's should shouldn't some such than that that's the their theirs them
    themselves then there there's these they they'd they'll they're they've this those through too
    under until very was wasn't we'd we'll we're we've were weren't what what's when when's where
    where's which while who who's whom why why's will with won't would wouldn't you you'd you'll
    you're you've your yours yourself yourselves just like know think want need get got make please
    thanks thank yes okay sure one two tell said say says now well really still even much many
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
# Phrases that mark something the user wants kept: the entry is more important.
_SALIENT_RE = re.compile(
    r"\b(remember|don't forget|my name|i am|i'm|i live|i work|my (?:\w+ )?(?:is|are)|i (?:prefer|like|love|hate)"
    r"|always|never|important|deadline|birthday|allerg\w*|password|address)\b",
    re.IGNORECASE,
)


def clip(text: str, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def keywords(text: str, *, limit: int = MAX_KEYWORDS) -> list[str]:
    """The most frequent content words (lower case), first occurrence breaking ties."""
    words = [w.lower().strip("'-") for w in _WORD_RE.findall(text or "")]
    counts = Counter(w for w in words if w not in STOPWORDS and len(w) > 2)
    order = {w: i for i, w in reversed(list(enumerate(words)))}
    ranked = sorted(counts, key=lambda w: (-counts[w], order[w]))
    return ranked[:limit]


def exchange_keywords(user_text: str, answer_text: str, *, limit: int = MAX_KEYWORDS) -> list[str]:
    """The user's words first (the facts are there), topped up from the answer."""
    found = keywords(user_text, limit=limit)
    for word in keywords(answer_text, limit=limit):
        if len(found) >= limit:
            break
        if word not in found:
            found.append(word)
    return found


def topic(words: list[str]) -> str:
    return " ".join(words[:2])


def importance(user_text: str, *, tool_calls: int = 0) -> float:
    """0..1: a plain exchange is 0.3; a stated fact or preference, length and tool use add to it."""
    score = 0.3
    if _SALIENT_RE.search(user_text or ""):
        score += 0.3
    if len(user_text or "") > 200:
        score += 0.1
    if tool_calls:
        score += 0.1
    if "?" not in (user_text or ""):
        score += 0.05  # statements carry facts more often than questions
    return round(min(1.0, score), 2)


def exchange_summary(user_text: str, answer_text: str) -> str:
    summary = f"User: {clip(user_text, SUMMARY_USER_CHARS)}"
    if answer_text.strip():
        summary += f" | Assistant: {clip(answer_text, SUMMARY_ANSWER_CHARS)}"
    return summary


def exchange_content(user_text: str, answer_text: str) -> str:
    content = f"User: {user_text.strip()}\nAssistant: {answer_text.strip()}"
    return content[:CONTENT_MAX_CHARS]
