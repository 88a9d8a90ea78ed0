"""The turn engine: claim a turn, assemble its context, route to a model, stream the answer,
run tool calls, repeat until an answer or max_steps, and record everything.

A turn is a state machine in the database (queued → running → completed | failed |
cancelled, or waiting_approval). Every transition is a compare-and-set, so a task delivered
twice, or a worker that dies mid-turn, never produces two answers:

- claiming locks the row; a finished turn is left alone; a running turn whose lease has not
  expired belongs to another worker (the task retries later); an expired lease means that
  worker died, and this one takes over with `attempt + 1`, up to TURN_MAX_ATTEMPTS;
- the final write only succeeds while the turn is still `running` at this attempt.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.agents import routing
from apps.agents.breaker import guarded_chat
from apps.agents.providers.base import (
    ChatMessage,
    ChatResult,
    ProviderRequestError,
    ProviderUnavailable,
    ToolCallRequest,
)
from apps.conversations import cancellation
from apps.conversations.context import TurnContext, build_context
from apps.conversations.models import Message, ToolCall, Turn
from apps.events import types as ev
from apps.events.services import publish
from apps.tools.policy import policy_decide
from apps.tools.registry import ToolContext, execute_tool

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60
LEASE_REFRESH_SECONDS = 10
EVENT_OUTPUT_PREVIEW_CHARS = 2000


@dataclass(frozen=True)
class ExecuteOutcome:
    state: str  # ran | skipped | busy | missing
    retry_in: float | None = None


class TurnCancelled(Exception):
    """Raised from inside the stream or between steps when a cancel was requested."""


class TurnFailure(Exception):
    """A reason to fail the turn that the user should read (no model, budget, provider refusal)."""


class TurnParked(Exception):
    """A tool call needs a human decision: the turn waits in `waiting_approval`."""

    def __init__(self, tool_call: ToolCall, reason: str):
        super().__init__(reason)
        self.tool_call = tool_call
        self.reason = reason


class LostOwnership(Exception):
    """Another worker took the turn over (our lease expired); stop without writing anything."""


def turn_execute(*, turn_id: str) -> ExecuteOutcome:
    turn, outcome = _claim(turn_id)
    if turn is None:
        return outcome
    runner = TurnRunner(turn)
    try:
        runner.run()
    except LostOwnership:
        logger.warning("turn %s: lease lost to another worker; stopping attempt %s", turn.pk, turn.attempt)
    except Exception as exc:
        logger.exception("turn %s failed unexpectedly", turn.pk)
        runner.fail(f"Internal error ({type(exc).__name__}); the details are in the worker log.")
    return ExecuteOutcome("ran")


def _claim(turn_id: str) -> tuple[Turn | None, ExecuteOutcome]:
    now = timezone.now()
    with transaction.atomic():
        turn = (
            Turn.objects.select_for_update(of=("self",))
            .select_related("tenant", "session", "agent", "input_message")
            .filter(pk=turn_id)
            .first()
        )
        if turn is None:
            return None, ExecuteOutcome("missing")
        if turn.is_final or turn.status == Turn.Status.WAITING_APPROVAL:
            return None, ExecuteOutcome("skipped")
        if turn.status == Turn.Status.RUNNING and turn.lease_expires_at and turn.lease_expires_at > now:
            return None, ExecuteOutcome("busy", retry_in=(turn.lease_expires_at - now).total_seconds() + 1)
        if turn.cancel_requested:
            turn.status, turn.finished_at, turn.error = Turn.Status.CANCELLED, now, "cancelled before it ran"
            turn.save(update_fields=["status", "finished_at", "error", "updated_at"])
            publish(
                turn.tenant,
                ev.TURN_CANCELLED,
                {"partial_text": "", "reason": "cancelled"},
                session=turn.session_id,
                turn=turn,
            )
            return None, ExecuteOutcome("skipped")
        if turn.attempt >= settings.TURN_MAX_ATTEMPTS:
            turn.status, turn.finished_at = Turn.Status.FAILED, now
            turn.error = f"Gave up after {turn.attempt} attempts: the worker stopped mid-turn each time."
            turn.save(update_fields=["status", "finished_at", "error", "updated_at"])
            publish(turn.tenant, ev.TURN_FAILED, {"error": turn.error}, session=turn.session_id, turn=turn)
            return None, ExecuteOutcome("skipped")
        turn.attempt += 1
        turn.status = Turn.Status.RUNNING
        turn.lease_expires_at = now + timedelta(seconds=LEASE_SECONDS)
        turn.started_at = turn.started_at or now
        turn.save(update_fields=["attempt", "status", "lease_expires_at", "started_at", "updated_at"])
        publish(
            turn.tenant,
            ev.TURN_STARTED,
            {"attempt": turn.attempt, "agent": getattr(turn.agent, "name", None)},
            session=turn.session_id,
            turn=turn,
        )
    return turn, ExecuteOutcome("ran")


class TokenStream:
    """Collects streamed text, publishes it in batches, and is where a cancel interrupts."""

    def __init__(self, runner: TurnRunner):
        self.runner = runner
        self.batch_seconds = settings.TOKEN_BATCH_MS / 1000
        self.pending: list[str] = []
        self.attempt_text: list[str] = []
        self.last_flush = time.monotonic()

    def on_text(self, delta: str) -> None:
        if not delta:
            return
        self.pending.append(delta)
        self.attempt_text.append(delta)
        if time.monotonic() - self.last_flush >= self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.runner.emit(ev.CHAT_TOKEN, {"delta": "".join(self.pending), "step": self.runner.step})
            self.pending.clear()
        self.last_flush = time.monotonic()
        self.runner.checkpoint()

    def start_attempt(self) -> None:
        self.pending.clear()
        self.attempt_text.clear()

    @property
    def text(self) -> str:
        return "".join(self.attempt_text)


class TurnRunner:
    def __init__(self, turn: Turn):
        self.turn = turn
        self.tenant = turn.tenant
        self.agent = turn.agent
        self.step = 0
        self.usage = {"input_tokens": 0, "output_tokens": 0}
        self.cost = Decimal("0")
        self.tool_call_count = 0
        self.answer_so_far: list[str] = []  # text of completed steps, kept if the turn is cancelled
        self.last_lease_refresh = time.monotonic()
        self.stream = TokenStream(self)
        self.model_ref = ""
        self.offline = False
        self.model_ms = 0.0  # time spent waiting on models, for the overhead figures
        self.tool_ms = 0.0

    # --- plumbing ---------------------------------------------------------------------------

    def emit(self, type_: str, data: dict) -> None:
        publish(self.tenant, type_, data, session=self.turn.session_id, turn=self.turn)

    def checkpoint(self) -> None:
        """Called between tokens and steps: stop if cancelled, keep our lease alive."""
        if cancellation.is_requested(self.turn.pk):
            raise TurnCancelled
        if time.monotonic() - self.last_lease_refresh >= LEASE_REFRESH_SECONDS:
            self._refresh_lease()

    def _refresh_lease(self) -> None:
        """Extend our lease; also where the database's cancel flag is read, in case the fast
        flag in Redis was lost (a Redis restart)."""
        owned = Turn.objects.filter(pk=self.turn.pk, status=Turn.Status.RUNNING, attempt=self.turn.attempt)
        if not owned.filter(cancel_requested=False).update(
            lease_expires_at=timezone.now() + timedelta(seconds=LEASE_SECONDS)
        ):
            if owned.filter(cancel_requested=True).exists():
                raise TurnCancelled
            raise LostOwnership
        self.last_lease_refresh = time.monotonic()

    def _step_boundary(self) -> None:
        self.checkpoint()

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.agent is None or not self.agent.enabled:
                raise TurnFailure("The session's agent is missing or disabled.")
            context = build_context(turn=self.turn, agent=self.agent)
            selection = self._select(context)
            text, stop_reason = self._loop(context, selection)
        except TurnCancelled:
            self._finish_cancelled()
            return
        except TurnParked as parked:
            self._finish_parked(parked)
            return
        except TurnFailure as exc:
            self.fail(str(exc))
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
            routing.check_cost_limit(
                agent=self.agent,
                candidate=selection.chosen,
                input_tokens=context.snapshot["estimated_input_tokens"],
            )
        except (routing.NoModelAvailable, routing.BudgetExceeded) as exc:
            Turn.objects.filter(pk=self.turn.pk).update(context_snapshot=context.snapshot)
            raise TurnFailure(str(exc)) from exc
        chosen = selection.as_json()
        with transaction.atomic():  # the decision and its record commit together
            Turn.objects.filter(pk=self.turn.pk).update(context_snapshot=context.snapshot, model_selection=chosen)
            self.emit(ev.DECISION, chosen)
        return selection

    def _loop(self, context: TurnContext, selection: routing.ModelSelection) -> tuple[str, str]:
        messages = list(context.messages)
        tools_by_name = {t.name: t for t in context.tools}
        for step in range(1, self.agent.max_steps + 1):
            self.step = step
            self._step_boundary()
            result = self._call_model(selection, messages, context)
            if not result.tool_calls:
                self.answer_so_far.append(result.text)
                return "".join(self.answer_so_far), "answer"
            if result.text:
                self.answer_so_far.append(result.text)
            messages.append(ChatMessage(role="assistant", content=result.text, tool_calls=tuple(result.tool_calls)))
            for call in result.tool_calls:
                self._step_boundary()
                messages.append(self._run_tool(call, tools_by_name))
        note = f"\n\n[Stopped after {self.agent.max_steps} steps without a final answer.]"
        return "".join(self.answer_so_far) + note, "max_steps"

    def _call_model(self, selection, messages, context: TurnContext) -> ChatResult:
        """Try the chosen model, then each fallback, skipping any whose breaker is open."""
        failures = []
        input_tokens = context.snapshot["estimated_input_tokens"]
        for index, candidate in enumerate(selection.candidates):
            if index and self._over_cost_limit(candidate, input_tokens):
                failures.append(f"{candidate.ref}: over the agent's max_cost_usd")
                continue
            self.stream.start_attempt()
            called_at = time.perf_counter()
            try:
                result = guarded_chat(
                    candidate.provider,
                    model=candidate.model_id,
                    messages=messages,
                    tools=context.tool_specs if candidate.supports_tools else [],
                    temperature=self.agent.temperature,
                    max_output_tokens=self.agent.max_output_tokens,
                    on_text=self.stream.on_text,
                )
            except ProviderUnavailable as exc:
                self.model_ms += (time.perf_counter() - called_at) * 1000
                failures.append(f"{candidate.ref}: {exc}")
                following = selection.candidates[index + 1].ref if index + 1 < len(selection.candidates) else None
                self.emit(ev.DECISION, {"fallback": True, "from": candidate.ref, "to": following, "reason": str(exc)})
                continue
            except ProviderRequestError as exc:
                raise TurnFailure(f"{candidate.ref} refused the request: {exc}") from exc
            self.model_ms += (time.perf_counter() - called_at) * 1000
            self.stream.flush()
            self._account(candidate, result)
            return result
        raise TurnFailure("No model could answer: " + "; ".join(failures))

    def _over_cost_limit(self, candidate, input_tokens: int) -> bool:
        try:
            routing.check_cost_limit(agent=self.agent, candidate=candidate, input_tokens=input_tokens)
        except routing.BudgetExceeded:
            return True
        return False

    def _account(self, candidate, result: ChatResult) -> None:
        self.usage["input_tokens"] += result.usage.input_tokens
        self.usage["output_tokens"] += result.usage.output_tokens
        self.cost += routing.cost_usd(candidate, result.usage)
        self.model_ref = candidate.ref
        self.offline = self.offline or result.offline

    def _run_tool(self, call: ToolCallRequest, tools_by_name: dict) -> ChatMessage:
        self.tool_call_count += 1
        record, _ = ToolCall.objects.get_or_create(
            turn=self.turn,
            call_id=call.id,
            defaults={"tenant": self.tenant, "step": self.step, "name": call.name, "arguments": call.arguments},
        )
        self.emit(
            ev.TOOL_CALL, {"tool_call_id": call.id, "name": call.name, "arguments": call.arguments, "step": self.step}
        )
        tool = tools_by_name.get(call.name)
        if tool is None:
            return self._tool_done(record, call, ok=False, output="", error=f"No tool named '{call.name}' is enabled.")
        decision = policy_decide(tenant=self.tenant, agent=self.agent, tool=tool, arguments=call.arguments)
        record.policy = {"action": decision.action, "reason": decision.reason}
        if decision.action == "deny":
            record.status = ToolCall.Status.DENIED
            return self._tool_done(
                record,
                call,
                ok=False,
                output="",
                error=f"Denied by policy: {decision.reason}",
                status=ToolCall.Status.DENIED,
            )
        if decision.action == "require_approval":
            record.status = ToolCall.Status.WAITING_APPROVAL
            record.save(update_fields=["policy", "status", "updated_at"])
            raise TurnParked(record, decision.reason)
        record.status, record.started_at = ToolCall.Status.RUNNING, timezone.now()
        record.save(update_fields=["policy", "status", "started_at", "updated_at"])
        context = ToolContext(
            tenant=self.tenant,
            agent=self.agent,
            user=self.turn.session.created_by,
            session_id=str(self.turn.session_id),
            turn_id=str(self.turn.pk),
        )
        outcome = execute_tool(tool=tool, arguments=call.arguments, context=context)
        self.tool_ms += outcome.duration_ms
        return self._tool_done(
            record, call, ok=outcome.ok, output=outcome.output, error=outcome.error, duration_ms=outcome.duration_ms
        )

    def _tool_done(
        self,
        record: ToolCall,
        call: ToolCallRequest,
        *,
        ok: bool,
        output: str,
        error: str,
        duration_ms: int | None = None,
        status: str | None = None,
    ) -> ChatMessage:
        shown = output if ok else f"Error: {error}"
        record.status = status or (ToolCall.Status.COMPLETED if ok else ToolCall.Status.FAILED)
        record.result, record.error, record.duration_ms = shown, error, duration_ms
        record.finished_at = timezone.now()
        record.save()
        self.emit(
            ev.TOOL_RESULT,
            {
                "tool_call_id": call.id,
                "name": call.name,
                "ok": ok,
                "status": record.status,
                "output": shown[:EVENT_OUTPUT_PREVIEW_CHARS],
                "duration_ms": duration_ms,
                "step": self.step,
            },
        )
        return ChatMessage(role="tool", content=shown, tool_call_id=call.id, name=call.name)

    # --- endings ----------------------------------------------------------------------------

    def _finished_fields(self) -> dict:
        now = timezone.now()
        started = self.turn.started_at or now
        return {
            "finished_at": now,
            "duration_ms": int((now - started).total_seconds() * 1000),
            "usage": self.usage,
            "cost_usd": self.cost,
            "step_count": self.step,
            "tool_call_count": self.tool_call_count,
            "model": self.model_ref,
            "lease_expires_at": None,
            "metadata": {
                **self.turn.metadata,
                "timings": {"model_ms": round(self.model_ms, 2), "tool_ms": round(self.tool_ms, 2)},
            },
        }

    def _write_final(
        self, status: str, *, text: str | None, extra: dict, message_meta: dict, event: str, event_data
    ) -> dict:
        """Write the answer, the final state and its event in one transaction, only while we
        still own the turn. `event_data(fields)` builds the event from what was written.

        One transaction means one commit (one WAL flush) and no window in which a client sees
        the state without its event, or the event without the state."""
        fields = {**self._finished_fields(), **extra, "status": status}
        with transaction.atomic():
            if text is not None:
                message = Message.objects.create(
                    tenant=self.tenant,
                    session_id=self.turn.session_id,
                    role=Message.Role.ASSISTANT,
                    parts=[{"type": "text", "text": text}],
                    metadata=message_meta,
                )
                fields["output_message"] = message
            owned = Turn.objects.filter(pk=self.turn.pk, status=Turn.Status.RUNNING, attempt=self.turn.attempt)
            if not owned.update(**fields):
                raise LostOwnership
            fields["message_id"] = str(fields["output_message"].pk) if "output_message" in fields else None
            self.emit(event, event_data(fields))
        cancellation.clear(self.turn.pk)
        return fields

    def _finish_completed(self, text: str, stop_reason: str) -> None:
        meta = {"model": self.model_ref, "offline": self.offline, "stop_reason": stop_reason}
        self._write_final(
            Turn.Status.COMPLETED,
            text=text,
            extra={},
            message_meta=meta,
            event=ev.CHAT_COMPLETE,
            event_data=lambda fields: {
                "text": text,
                "message_id": fields["message_id"],
                "model": self.model_ref,
                "offline": self.offline,
                "usage": self.usage,
                "cost_usd": str(self.cost),
                "step_count": self.step,
                "tool_call_count": self.tool_call_count,
                "duration_ms": fields["duration_ms"],
                "stop_reason": stop_reason,
            },
        )

    def _finish_cancelled(self) -> None:
        partial = "".join(self.answer_so_far) + self.stream.text
        meta = {"model": self.model_ref, "offline": self.offline, "stop_reason": "cancelled", "partial": True}
        with contextlib.suppress(LostOwnership):
            self._write_final(
                Turn.Status.CANCELLED,
                text=partial or None,
                extra={"error": "cancelled"},
                message_meta=meta,
                event=ev.TURN_CANCELLED,
                event_data=lambda _fields: {"partial_text": partial, "reason": "cancelled"},
            )

    def _finish_parked(self, parked: TurnParked) -> None:
        call = parked.tool_call
        fields = self._finished_fields()
        extra = {
            "finished_at": None,
            "duration_ms": None,
            "metadata": {**fields["metadata"], "parked": {"tool_call_id": call.call_id, "step": self.step}},
        }
        with contextlib.suppress(LostOwnership):
            self._write_final(
                Turn.Status.WAITING_APPROVAL,
                text=None,
                extra=extra,
                message_meta={},
                event=ev.APPROVAL_REQUEST,
                event_data=lambda _fields: {
                    "tool_call_id": call.call_id,
                    "name": call.name,
                    "arguments": call.arguments,
                    "reason": parked.reason,
                },
            )

    def fail(self, error: str) -> None:
        with contextlib.suppress(LostOwnership):
            self._write_final(
                Turn.Status.FAILED,
                text=None,
                extra={"error": error},
                message_meta={},
                event=ev.TURN_FAILED,
                event_data=lambda _fields: {"error": error},
            )
