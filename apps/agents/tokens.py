"""Token estimates where no tokenizer is at hand (budget checks, the offline model)."""

from __future__ import annotations

import math

# English averages about four characters per token with the GPT and Claude tokenizers; an
# estimate is all a budget check before the call needs, the provider reports the real count.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """ceil(characters / 4); 0 for empty text."""
    return math.ceil(len(text or "") / CHARS_PER_TOKEN)
