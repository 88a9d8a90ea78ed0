"""What a finished turn hands to memory."""

from __future__ import annotations

from apps.memory.services import memory_record_turn

__all__ = ["memory_record_turn"]
