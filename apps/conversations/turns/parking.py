"""Where a turn that stopped mid-way picks up: its progress, typed and versioned.

A turn stops mid-way in two ways: it parks for an approval (its worker is done with it), or its
worker dies (another takes over). Both resume from the same record, `Turn.progress`:

- the model steps that asked for tools (their text and the calls, with redacted arguments as
  they were stored, published and sent back to the model);
- the answer so far (the text of those steps, kept if the turn is cancelled);
- the figures spent so far (tokens, model and tool time), so the final write counts them all;
- the tool call waiting for a decision, when parked.

The results of the calls are not copied here: the ToolCall rows hold them, and they are the
record of which calls ran. The loop saves the progress once per tool step, before the calls
run, so a takeover knows which calls a dead worker may have started.

`version` lets a later shape of this record read an earlier one. Migration conversations 0005
moved the state that turns parked before this module existed kept in `Turn.metadata` here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from apps.agents.providers.base import ChatMessage, ToolCallRequest

VERSION = 1


@dataclass(frozen=True)
class StepRecord:
    step: int
    text: str
    tool_calls: tuple[ToolCallRequest, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "text": self.text,
            "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepRecord:
        calls = tuple(
            ToolCallRequest(id=c["id"], name=c["name"], arguments=c.get("arguments") or {})
            for c in data.get("tool_calls", [])
        )
        return cls(step=int(data["step"]), text=data.get("text", ""), tool_calls=calls)

    def assistant_message(self) -> ChatMessage:
        return ChatMessage(role="assistant", content=self.text, tool_calls=self.tool_calls)


@dataclass
class Spent:
    """What the attempts so far used; the cost itself is settled call by call on the row."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_ms: float = 0.0
    tool_ms: float = 0.0
    tool_call_count: int = 0
    model_ref: str = ""
    offline: bool = False
    # One entry per model call, for the observatory's waterfall: {"step", "model", "at" (ISO
    # start), "ms", "ok"}. Kept in the progress record so a resumed turn keeps its earlier calls.
    model_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TurnProgress:
    steps: list[StepRecord] = field(default_factory=list)
    answer_so_far: list[str] = field(default_factory=list)
    spent: Spent = field(default_factory=Spent)
    # Our id (ToolCall.pk, as a string) of the call waiting for a decision, when parked.
    waiting_tool_call_id: str | None = None

    @property
    def last_step(self) -> int:
        return self.steps[-1].step if self.steps else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "steps": [s.as_json() for s in self.steps],
            "answer_so_far": list(self.answer_so_far),
            "spent": asdict(self.spent),
            "waiting_tool_call_id": self.waiting_tool_call_id,
        }

    @classmethod
    def load(cls, progress: dict[str, Any] | None) -> TurnProgress:
        """The record as stored; an empty one for a turn that has not reached a tool step."""
        if progress and progress.get("version") == VERSION:
            known = Spent.__dataclass_fields__
            return cls(
                steps=[StepRecord.from_json(s) for s in progress.get("steps", [])],
                answer_so_far=list(progress.get("answer_so_far", [])),
                spent=Spent(**{k: v for k, v in (progress.get("spent") or {}).items() if k in known}),
                waiting_tool_call_id=progress.get("waiting_tool_call_id"),
            )
        if progress:
            raise ValueError(f"Turn progress version {progress.get('version')!r} is not one this code reads.")
        return cls()

    @property
    def is_empty(self) -> bool:
        return not self.steps
