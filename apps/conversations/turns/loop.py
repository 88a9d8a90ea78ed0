"""The model/tool loop of one claimed turn: context, model selection, model calls with their
budget reservations, tool steps, and the ending (written through state.py).

A turn that stopped mid-way (parked for an approval, or its worker died) starts again from its
progress (parking.py): the steps that asked for tools are replayed from the record, and only the
calls that did not finish are run (tool_step.py decides which may run).
"""

from __future__ import annotations

import contextlib
import logging
import time
from decimal import Decimal

from django.db import DatabaseError
from django.utils import timezone

from apps.agents import routing
from apps.agents.providers.base import (
    ChatMessage,
)
from apps.conversations import budgets, cancellation
from apps.conversations.models import ToolCall, Turn
from apps.conversations.turns import state
from apps.conversations.turns.context import TurnContext, build_context
from apps.conversations.turns.lease import Heartbeat
from apps.conversations.turns.model_call import BudgetRefused, ModelCall, TurnCancelled, TurnFailure
from apps.conversations.turns.parking import StepRecord, TurnProgress
from apps.conversations.turns.state import LostOwnership
from apps.conversations.turns.tool_step import ToolStep, TurnParked, shown_call
from apps.core.db import non_durable_commit
from apps.events import types as ev
from apps.events.services import publish
from apps.policy.services import approval_request, tool_call_ids
from apps.tools.guardrails import redact_text

logger = logging.getLogger(__name__)


class TurnRunner:
    def __init__(self, turn: Turn):
        self.turn = turn
        self.tenant = turn.tenant
        self.agent = turn.agent
        self.step = 0
        self.progress = TurnProgress.load(turn.progress)
        self.spent = self.progress.spent
        # Settled call by call into the row (budgets.budget_settle): an attempt after a crash
        # starts from what the earlier attempts spent, so the final write keeps it.
        self.cost = turn.cost_usd or Decimal("0")
        self.models = ModelCall(self)
        self.context_ms = 0.0  # assembling the context (memory recall included)
        self.context_at = None  # when this attempt began assembling it
        self.heartbeat: Heartbeat | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def emit(self, type_: str, data: dict) -> None:
        publish(self.tenant, type_, data, session=self.turn.session_id, turn=self.turn.pk)

    def checkpoint(self) -> None:
        """Between tokens and steps: stop if a stop was asked for or the turn is not ours."""
        beat = self.heartbeat.verdict if self.heartbeat is not None else "owned"
        if beat == "lost":
            raise LostOwnership
        if beat == "cancelled" or cancellation.is_requested(self.turn.pk):
            raise TurnCancelled

    def _on_beat(self) -> None:
        if self.models.reservation is not None:
            budgets.budget_extend(turn=self.turn)  # a call still streaming keeps its reservation

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        with Heartbeat(turn_id=self.turn.pk, attempt=self.turn.attempt, on_beat=self._on_beat) as heartbeat:
            self.heartbeat = heartbeat
            self._run()

    def _run(self) -> None:
        try:
            if self.agent is None or not self.agent.enabled:
                raise TurnFailure("The session's agent is missing or disabled.")
            started, self.context_at = time.perf_counter(), timezone.now()
            context = build_context(turn=self.turn, agent=self.agent)
            self.context_ms = (time.perf_counter() - started) * 1000
            selection = self._select(context)
            tools = ToolStep(self, context.tools)
            messages = self._replay(context, tools)
            text, stop_reason = self._loop(context, selection, messages, tools)
        except TurnCancelled:
            self._finish_cancelled()
            return
        except TurnParked as parked:
            self._finish_parked(parked)
            return
        except BudgetRefused as exc:
            self.fail(str(exc), kind="budget", budget=exc.scope)
            return
        except TurnFailure as exc:
            self.fail(str(exc), kind=exc.kind)
            return
        self._finish_completed(text, stop_reason)

    def _select(self, context: TurnContext) -> routing.ModelSelection:
        try:
            selection = routing.select_model(
                agent=self.agent,
                text=context.input_text,
                has_images=context.has_images,
                needs_tools=bool(context.tools),
            )
            # The chosen model's own count (tiktoken for OpenAI-family models) replaces the
            # context's model-agnostic one in the snapshot the observatory shows.
            input_tokens = routing.estimate_input_tokens_for(
                selection.chosen, context.messages, context.tool_specs if selection.chosen.supports_tools else []
            )
            context.snapshot["estimated_input_tokens"] = input_tokens
            routing.check_cost_limit(
                agent=self.agent, candidate=selection.chosen, input_tokens=input_tokens, spent_usd=self.cost
            )
        except (routing.NoModelAvailable, routing.BudgetExceeded) as exc:
            Turn.objects.filter(pk=self.turn.pk).update(context_snapshot=context.snapshot)
            if isinstance(exc, routing.BudgetExceeded):
                raise BudgetRefused(str(exc), scope=budgets.SCOPE_AGENT_TURN) from exc
            raise TurnFailure(str(exc)) from exc
        chosen = selection.as_json()
        # The decision and its record commit together, without waiting for the disk: a crash that
        # loses them loses a turn that recovery runs again, deciding again.
        with non_durable_commit():
            Turn.objects.filter(pk=self.turn.pk).update(context_snapshot=context.snapshot, model_selection=chosen)
            self.emit(ev.DECISION, chosen)
        return selection

    def _replay(self, context: TurnContext, tools: ToolStep) -> list[ChatMessage]:
        """The conversation so far: the context, then each recorded step with its calls' results
        (running now only the calls that did not finish)."""
        messages = list(context.messages)
        if self.progress.is_empty:
            return messages
        records = {r.call_id: r for r in ToolCall.objects.filter(turn=self.turn)}
        for entry in self.progress.steps:
            self.step = entry.step
            messages.append(entry.assistant_message())
            for call in entry.tool_calls:
                self.checkpoint()
                messages.append(tools.resume(call, records.get(call.id)))
        self.progress.waiting_tool_call_id = None
        return messages

    def _loop(
        self, context: TurnContext, selection: routing.ModelSelection, messages: list, tools: ToolStep
    ) -> tuple[str, str]:
        answer = self.progress.answer_so_far
        for step in range(self.progress.last_step + 1, self.agent.max_steps + 1):
            self.step = step
            self.checkpoint()
            result = self.models.call(selection, messages, context)
            # The model's words as stored, published and sent back to it in the next step.
            text = redact_text(result.text)
            if not result.tool_calls:
                answer.append(text)
                return "".join(answer), "answer"
            if text:
                answer.append(text)
            shown = [shown_call(call) for call in result.tool_calls]
            record = StepRecord(step=step, text=text, tool_calls=tuple(shown))
            messages.append(record.assistant_message())
            # Saved before the calls run: a worker that takes over knows which calls this step
            # asked for, and the ToolCall rows tell it which of them ran.
            self.progress.steps.append(record)
            state.progress_save(turn=self.turn, progress=self.progress)
            for call, shown_one in zip(result.tool_calls, shown, strict=True):
                self.checkpoint()
                messages.append(tools.run(call, shown_one, step=step))
        note = f"\n\n[Stopped after {self.agent.max_steps} steps without a final answer.]"
        return "".join(answer) + note, "max_steps"

    # --- endings ----------------------------------------------------------------------------

    @property
    def usage(self) -> dict[str, int]:
        return {"input_tokens": self.spent.input_tokens, "output_tokens": self.spent.output_tokens}

    def _finished_fields(self) -> dict:
        now = timezone.now()
        started = self.turn.started_at or now
        return {
            "finished_at": now,
            "duration_ms": int((now - started).total_seconds() * 1000),
            "usage": self.usage,
            # No cost_usd: budget_settle wrote it call by call, with the ledger.
            "step_count": self.step,
            "tool_call_count": self.spent.tool_call_count,
            "model": self.spent.model_ref,
            "lease_expires_at": None,
            # Whatever happened to the last call, a finished turn holds no budget.
            "reserved_usd": Decimal("0"),
            "reserved_until": None,
            "reserved_provider": None,
            "progress": self.progress.as_json(),
            "metadata": {
                **self.turn.metadata,
                "timings": {
                    "model_ms": round(self.spent.model_ms, 2),
                    "tool_ms": round(self.spent.tool_ms, 2),
                    "context_ms": round(self.context_ms, 2),
                    "context_at": self.context_at.isoformat() if self.context_at else None,
                    # Each model call's start and length (model_call.py), for the observatory.
                    "model_calls": list(self.spent.model_calls),
                },
            },
        }

    def _finish(
        self,
        status: str,
        *,
        answer: str | None,
        event: str,
        event_data,
        extra: dict | None = None,
        message_meta: dict | None = None,
        failure: str | None = None,
        budget: str | None = None,
    ) -> dict | None:
        fields = {**self._finished_fields(), **(extra or {})}
        if failure:
            fields["metadata"]["failure"] = failure
        if budget:  # the synchronous faces answer 402 naming it
            fields["metadata"]["budget_exhausted"] = budget
        try:
            return state.turn_finish(
                turn=self.turn,
                status=status,
                fields=fields,
                answer=answer,
                message_meta=message_meta or {},
                event=event,
                event_data=event_data,
            )
        except LostOwnership:
            logger.warning(
                "turn %s: not ours at attempt %s any more; its end is not written", self.turn.pk, self.turn.attempt
            )
            return None

    def _finish_completed(self, text: str, stop_reason: str) -> None:
        # `text` is redacted already: _loop redacts each step's text as it arrives.
        meta = {"model": self.spent.model_ref, "offline": self.spent.offline, "stop_reason": stop_reason}
        written = self._finish(
            Turn.Status.COMPLETED,
            answer=text,
            message_meta=meta,
            event=ev.CHAT_COMPLETE,
            event_data=lambda fields: {
                "text": text,
                "message_id": fields["message_id"],
                "model": self.spent.model_ref,
                "offline": self.spent.offline,
                "usage": self.usage,
                "cost_usd": str(self.cost),
                "step_count": self.step,
                "tool_call_count": self.spent.tool_call_count,
                "duration_ms": fields["duration_ms"],
                "stop_reason": stop_reason,
            },
        )
        if written is not None:
            from apps.conversations.memory_hooks import memory_record_turn

            # Episodic and working memory, embedded later: derived from the durable answer, so its
            # commit need not wait for the disk (a crash loses an episode, never the answer).
            # memory_record_turn logs its own failures; a commit that fails after one is not news.
            with contextlib.suppress(DatabaseError), non_durable_commit():
                memory_record_turn(turn=self.turn)

    def _finish_cancelled(self) -> None:
        partial = redact_text("".join(self.progress.answer_so_far) + self.models.stream.text)
        reason = Turn.objects.filter(pk=self.turn.pk).values_list("cancel_reason", flat=True).first()
        reason = reason or cancellation.reason(self.turn.pk)
        # Rolled back: the partial answer leaves the history (the event still carries it).
        keep = partial and reason != state.ROLLED_BACK
        meta = {
            "model": self.spent.model_ref,
            "offline": self.spent.offline,
            "stop_reason": "cancelled",
            "partial": True,
        }
        self._finish(
            Turn.Status.CANCELLED,
            answer=partial if keep else None,
            extra={"error": reason, "cancel_reason": reason},
            message_meta=meta,
            event=ev.TURN_CANCELLED,
            event_data=lambda _fields: {"partial_text": partial, "reason": reason},
        )

    def _finish_parked(self, parked: TurnParked) -> None:
        call = parked.tool_call
        self.progress.waiting_tool_call_id = str(call.pk)
        fields = self._finished_fields()
        extra = {"finished_at": None, "duration_ms": None, "progress": self.progress.as_json()}
        holder: dict = {}

        def request_approval() -> None:
            # Inside the transaction that parks: the approval exists exactly when the turn waits.
            holder["approval"] = approval_request(
                tenant=self.tenant, turn=self.turn, tool_call=call, reason=parked.reason
            )

        def event_data(_fields: dict) -> dict:
            approval = holder["approval"]
            return {
                "approval_id": str(approval.pk),
                **tool_call_ids(call),
                "name": call.name,
                "arguments": call.arguments,
                "policy_reason": parked.reason,
                "expires_at": approval.expires_at.isoformat(),
            }

        with contextlib.suppress(LostOwnership):
            state.turn_finish(
                turn=self.turn,
                status=Turn.Status.WAITING_APPROVAL,
                fields={**fields, **extra},
                answer=None,
                message_meta={},
                event=ev.APPROVAL_REQUEST,
                event_data=event_data,
                before_event=request_approval,
            )

    def fail(self, error: str, *, kind: str = "internal", budget: str | None = None) -> None:
        error = redact_text(error)  # provider errors can quote what was sent
        self._finish(
            Turn.Status.FAILED,
            answer=None,
            extra={"error": error},
            failure=kind,
            budget=budget,
            event=ev.TURN_FAILED,
            event_data=lambda _fields: {"error": error},
        )
