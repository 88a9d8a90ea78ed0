"""Texts shared by modules that must not import each other (auth is loaded by DRF settings)."""

from __future__ import annotations

UNAUTHORIZED_MESSAGE = "Valid API key required. Set Authorization: Bearer <key> header."

# Heads the recalled memories in a turn's system prompt (apps/conversations/turns/context.py); the
# offline model (apps/agents/providers/offline.py) looks for it to show what it was reminded of.
# Here because the two must agree and agents sits below memory.
MEMORY_CONTEXT_HEADER = "What you remember that may be relevant (from earlier conversations):"
