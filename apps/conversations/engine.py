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
import json
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
    Usage,
)
from apps.agents.tokens import estimate_tokens
from apps.conversations import budgets, cancellation
from apps.conversations.turns.context import TurnContext, build_context
from apps.conversations.models import Message, ToolCall, Turn
from apps.events import types as ev
from apps.events.services import publish
from apps.memory.services import memory_record_turn
from apps.policy.services import approval_request, policy_decide, tool_call_ids
from apps.tools.guardrails import StreamRedactor, redact_data, redact_text
from apps.tools.registry import ToolContext, execute_tool, untrusted_tool_output

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
    """A reason to fail the turn that the user should read (no model, budget, provider refusal).

    `kind` (stored as the turn's `metadata.failure`) lets the synchronous faces answer with a
    status that says whose problem it is: `configuration` (fix the tenant's setup) or `upstream`
    (the model provider failed). Anything unexpected is `internal`.
    """

    def __init__(self, message: str, *, kind: str = "configuration"):
        super().__init__(message)
        self.kind = kind


class BudgetRefused(TurnFailure):
    """A budget reservation was refused: the turn fails naming the budget (`scope`)."""

    def __init__(self, message: str, *, scope: str):
        super().__init__(message)
        self.scope = scope


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
        suspended = not turn.tenant.is_active  # a suspended tenant's turn never starts
        if turn.cancel_requested or suspended:
            reason = "tenant suspended" if suspended else "cancelled"
            turn.status, turn.finished_at = Turn.Status.CANCELLED, now
            turn.error = reason if suspended else "cancelled before it ran"
            turn.save(update_fields=["status", "finished_at", "error", "updated_at"])
            publish(
                turn.tenant,
                ev.TURN_CANCELLED,
                {"partial_text": "", "reason": reason},
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
    """Collects streamed text, publishes it in batches, and is where a cancel interrupts.

    Batches go out redacted: a StreamRedactor holds back what could still be the start of a
    secret (the last word, an open key block, an open quoted value after a keyword) until the next
    batch or the end of the step, so a key split across two batches is never sent in halves."""

    def __init__(self, runner: TurnRunner):
        self.runner = runner
        self.batch_seconds = settings.TOKEN_BATCH_MS / 1000
        self.redactor = StreamRedactor()
        self.last_flush = time.monotonic()

    def on_text(self, delta: str) -> None:
        if not delta:
            return
        self.redactor.feed(delta)
        if time.monotonic() - self.last_flush >= self.batch_seconds:
            self._publish(final=False)

    def flush(self) -> None:
        """The step's text is complete: publish all of it, held-back tail included."""
        self._publish(final=True)

    def _publish(self, *, final: bool) -> None:
        delta = self.redactor.release(final=final)
        if delta:
            self.runner.emit(ev.CHAT_TOKEN, {"delta": delta, "step": self.runner.step})
        self.last_flush = time.monotonic()
        self.runner.checkpoint()

    def start_attempt(self) -> None:
        self.redactor = StreamRedactor()

    @property
    def text(self) -> str:
        """This attempt's text as it arrived (not redacted: callers redact what they keep)."""
        return self.redactor.raw


def _shown_call(call: ToolCallRequest) -> ToolCallRequest:
    """A tool call as it is stored, published and sent back to the model: arguments redacted.

    The call itself runs with the arguments the model wrote (see _run_tool): a credential in them
    came from the conversation the model was given, and a tool that needs it (a URL with a token
    the tenant put in the agent's prompt) would break on [REDACTED:...]."""
    arguments = redact_data(call.arguments)
    raw = call.raw_arguments
    if raw:
        changed = arguments != call.arguments and isinstance(call.arguments, dict) and call.arguments
        raw = json.dumps(arguments, ensure_ascii=False) if changed else redact_text(raw)
    return ToolCallRequest(id=call.id, name=call.name, arguments=arguments, raw_arguments=raw)


class TurnRunner:
    def __init__(self, turn: Turn):
        self.turn = turn
        self.tenant = turn.tenant
        self.agent = turn.agent
        self.step = 0
        self.usage = {"input_tokens": 0, "output_tokens": 0}
        # Settled call by call into the row (budgets.budget_settle): an attempt after a crash
        # starts from what the earlier attempts spent, so the final write keeps it.
        self.cost = turn.cost_usd or Decimal("0")
        self.reservation: budgets.Reservation | None = None
        self.tool_call_count = 0
        self.answer_so_far: list[str] = []  # text of completed steps, kept if the turn is cancelled
        self.last_lease_refresh = time.monotonic()
        self.stream = TokenStream(self)
        self.model_ref = ""
        self.offline = False
        self.model_ms = 0.0  # time spent waiting on models, for the overhead figures
        self.tool_ms = 0.0
        self.context_ms = 0.0  # assembling the context (memory recall included)
        self.transcript: list[dict] = []

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
        if self.reservation is not None:
            budgets.budget_extend(turn=self.turn)  # a call still streaming keeps its reservation
        self.last_lease_refresh = time.monotonic()

    def _step_boundary(self) -> None:
        self.checkpoint()

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if self.agent is None or not self.agent.enabled:
                raise TurnFailure("The session's agent is missing or disabled.")
            started = time.perf_counter()
            context = build_context(turn=self.turn, agent=self.agent)
            self.context_ms = (time.perf_counter() - started) * 1000
            selection = self._select(context)
            if self.turn.metadata.get("parked"):
                messages, first_step = self._resume(context)
            else:
                messages, first_step = list(context.messages), 1
            text, stop_reason = self._loop(context, selection, messages, first_step)
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
        memory_record_turn(turn=self.turn)  # episodic and working memory; embedded later, in batches

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
        with transaction.atomic():  # the decision and its record commit together
            Turn.objects.filter(pk=self.turn.pk).update(context_snapshot=context.snapshot, model_selection=chosen)
            self.emit(ev.DECISION, chosen)
        return selection

    def _loop(
        self, context: TurnContext, selection: routing.ModelSelection, messages: list, first_step: int
    ) -> tuple[str, str]:
        tools_by_name = {t.name: t for t in context.tools}
        for step in range(first_step, self.agent.max_steps + 1):
            self.step = step
            self._step_boundary()
            result = self._call_model(selection, messages, context)
            # The model's words as stored, published and sent back to it in the next step.
            text = redact_text(result.text)
            if not result.tool_calls:
                self.answer_so_far.append(text)
                return "".join(self.answer_so_far), "answer"
            if text:
                self.answer_so_far.append(text)
            shown = [_shown_call(call) for call in result.tool_calls]
            messages.append(ChatMessage(role="assistant", content=text, tool_calls=tuple(shown)))
            # Kept so a turn parked for approval can rebuild this conversation when it resumes.
            self.transcript.append(
                {
                    "step": step,
                    "text": text,
                    "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in shown],
                }
            )
            for call, shown_call in zip(result.tool_calls, shown, strict=True):
                self._step_boundary()
                messages.append(self._run_tool(call, tools_by_name, shown=shown_call))
        note = f"\n\n[Stopped after {self.agent.max_steps} steps without a final answer.]"
        return "".join(self.answer_so_far) + note, "max_steps"

    def _resume(self, context: TurnContext) -> tuple[list, int]:
        """Rebuild a parked turn's conversation: the steps so far with their tool results, the
        decided call (run once if approved), and any calls of that step not reached yet."""
        from apps.policy.models import Approval

        meta = self.turn.metadata
        parked = meta["parked"]
        self.transcript = list(meta.get("transcript", []))
        self.answer_so_far = list(meta.get("answer_so_far", []))
        self.usage = {"input_tokens": 0, "output_tokens": 0, **(self.turn.usage or {})}
        self.cost = self.turn.cost_usd or Decimal("0")
        self.tool_call_count = self.turn.tool_call_count
        timings = meta.get("timings", {})
        self.model_ms, self.tool_ms = timings.get("model_ms", 0.0), timings.get("tool_ms", 0.0)
        self.model_ref = self.turn.model

        tools_by_name = {t.name: t for t in context.tools}
        records = {r.call_id: r for r in ToolCall.objects.filter(turn=self.turn)}
        messages = list(context.messages)
        for entry in self.transcript:
            self.step = entry["step"]
            calls = [ToolCallRequest(id=c["id"], name=c["name"], arguments=c["arguments"]) for c in entry["tool_calls"]]
            messages.append(ChatMessage(role="assistant", content=entry["text"], tool_calls=tuple(calls)))
            for call in calls:
                record = records.get(call.id)
                if record is None:
                    messages.append(self._run_tool(call, tools_by_name))  # reached only now
                elif record.status == ToolCall.Status.WAITING_APPROVAL:
                    approval = Approval.objects.filter(tool_call=record).first()
                    messages.append(self._run_decided(call, record, approval, tools_by_name))
                else:
                    messages.append(
                        ChatMessage(role="tool", content=record.result, tool_call_id=call.id, name=call.name)
                    )
        return messages, parked["step"] + 1

    def _run_decided(self, call: ToolCallRequest, record: ToolCall, approval, tools_by_name: dict) -> ChatMessage:
        from apps.policy.models import Approval
        from apps.policy.services import arguments_hash

        if approval is None or approval.status == Approval.Status.PENDING:
            raise TurnParked(record, record.policy.get("reason", "waiting for approval"))
        if approval.status != Approval.Status.APPROVED:
            who = (
                "the approval request expired"
                if approval.status == Approval.Status.EXPIRED
                else (
                    f"denied by {approval.decided_by_label}"
                    + (f": {approval.decision_reason}" if approval.decision_reason else "")
                )
            )
            return self._tool_done(
                record, call, ok=False, output="", error=f"Not run: {who}.", status=ToolCall.Status.DENIED
            )
        if arguments_hash(record.name, record.arguments) != approval.args_hash or record.arguments != call.arguments:
            return self._tool_done(
                record, call, ok=False, output="", error="Refused: the call's arguments differ from what was approved."
            )
        # Exactly once: only the worker that moves the call out of waiting_approval runs it.
        started_at = timezone.now()
        if not ToolCall.objects.filter(pk=record.pk, status=ToolCall.Status.WAITING_APPROVAL).update(
            status=ToolCall.Status.RUNNING, started_at=started_at
        ):
            record.refresh_from_db()
            return ChatMessage(
                role="tool",
                content=record.result or "Error: the call was interrupted.",
                tool_call_id=call.id,
                name=call.name,
            )
        # _tool_done saves the whole row: it must carry what the update above wrote.
        record.status, record.started_at = ToolCall.Status.RUNNING, started_at
        tool = tools_by_name.get(call.name)
        if tool is None:
            return self._tool_done(record, call, ok=False, output="", error=f"No tool named '{call.name}' is enabled.")
        outcome = execute_tool(tool=tool, arguments=approval.arguments, context=self._tool_context())
        self.tool_ms += outcome.duration_ms
        return self._tool_done(
            record, call, ok=outcome.ok, output=outcome.output, error=outcome.error, duration_ms=outcome.duration_ms
        )

    def _tool_context(self) -> ToolContext:
        return ToolContext(
            tenant=self.tenant,
            agent=self.agent,
            user=self.turn.session.created_by,
            session_id=str(self.turn.session_id),
            turn_id=str(self.turn.pk),
        )

    def _call_model(self, selection, messages, context: TurnContext) -> ChatResult:
        """Try the chosen model, then each fallback, skipping any whose breaker is open.

        Each attempt first reserves its estimated cost against every budget (a refusal skips to
        the next candidate, which may be cheaper); the reservation is settled with the real cost
        after the call, or released when the call fails."""
        failures: list[str] = []
        refusal: budgets.BudgetExhausted | None = None
        for index, candidate in enumerate(selection.candidates):
            tools = context.tool_specs if candidate.supports_tools else []
            input_tokens = routing.estimate_input_tokens_for(candidate, messages, tools)
            try:
                self._reserve(candidate, input_tokens)
            except budgets.BudgetExhausted as exc:
                refusal = refusal or exc
                failures.append(f"{candidate.ref}: {exc}")
                continue
            self.stream.start_attempt()
            called_at = time.perf_counter()
            try:
                result = guarded_chat(
                    candidate.provider,
                    model=candidate.model_id,
                    messages=messages,
                    tools=tools,
                    temperature=self.agent.temperature,
                    max_output_tokens=self.agent.max_output_tokens,
                    on_text=self.stream.on_text,
                )
            except ProviderUnavailable as exc:
                self._release()
                self.model_ms += (time.perf_counter() - called_at) * 1000
                failures.append(f"{candidate.ref}: {exc}")
                following = selection.candidates[index + 1].ref if index + 1 < len(selection.candidates) else None
                self.emit(
                    ev.DECISION,
                    {"fallback": True, "from": candidate.ref, "to": following, "reason": redact_text(str(exc))},
                )
                continue
            except ProviderRequestError as exc:
                self._release()
                raise TurnFailure(f"{candidate.ref} refused the request: {exc}", kind="upstream") from exc
            except TurnCancelled:
                # The provider bills what it streamed before we hung up: the input and the text so far.
                self._account(
                    candidate, Usage(input_tokens=input_tokens, output_tokens=estimate_tokens(self.stream.text))
                )
                raise
            except BaseException:
                self._release()
                raise
            self.model_ms += (time.perf_counter() - called_at) * 1000
            self._account(candidate, result.usage, offline=result.offline)
            self.stream.flush()
            return result
        if refusal is not None:
            others = [f for f in failures if not f.endswith(str(refusal))]
            raise BudgetRefused(
                str(refusal) + (" Other models: " + "; ".join(others) if others else ""), scope=refusal.scope
            )
        raise TurnFailure("No model could answer: " + "; ".join(failures), kind="upstream")

    def _reserve(self, candidate, input_tokens: int) -> None:
        estimate = routing.estimate_call_cost_usd(agent=self.agent, candidate=candidate, input_tokens=input_tokens)
        try:
            self.reservation = budgets.budget_reserve(
                tenant=self.tenant, turn=self.turn, agent=self.agent, candidate=candidate, estimate_usd=estimate
            )
        except LookupError as exc:  # the turn is no longer ours at this attempt
            raise LostOwnership from exc

    def _release(self) -> None:
        if self.reservation is not None:
            budgets.budget_release(turn=self.turn)
            self.reservation = None

    def _account(self, candidate, usage: Usage, *, offline: bool = False) -> None:
        """Settle the call: its real cost into the turn's row and the monthly ledger (which frees
        its reservation). The only place a turn's cost is written: the final write leaves
        `cost_usd` alone, so the ledger and the Turn rows stay equal."""
        cost = routing.cost_usd(candidate, usage)
        if not budgets.budget_settle(turn=self.turn, cost_usd=cost, provider=candidate.provider):
            raise LostOwnership  # charged all the same; the turn is another worker's now
        self.reservation = None
        self.usage["input_tokens"] += usage.input_tokens
        self.usage["output_tokens"] += usage.output_tokens
        self.cost += cost
        self.model_ref = candidate.ref
        self.offline = self.offline or offline

    def _run_tool(
        self, call: ToolCallRequest, tools_by_name: dict, *, shown: ToolCallRequest | None = None
    ) -> ChatMessage:
        """Run one call. The row, the events and an approval show `shown` (the arguments
        redacted); a call that runs now runs with the model's own arguments, and a gated call
        later runs with what its approver saw (the stored arguments), so what was approved is
        exactly what runs."""
        shown = shown or _shown_call(call)
        self.tool_call_count += 1
        record, _ = ToolCall.objects.get_or_create(
            turn=self.turn,
            call_id=call.id,
            defaults={"tenant": self.tenant, "step": self.step, "name": call.name, "arguments": shown.arguments},
        )
        self.emit(
            ev.TOOL_CALL,
            {**tool_call_ids(record), "name": call.name, "arguments": shown.arguments, "step": self.step},
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
        outcome = execute_tool(tool=tool, arguments=call.arguments, context=self._tool_context())
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
        # execute_tool redacted the output already (a second scan of 16 KB would cost a few ms);
        # errors are short and some are written here (an approver's reason), so they are redacted.
        error = redact_text(error)
        shown = output if ok else f"Error: {error}"
        record.status = status or (ToolCall.Status.COMPLETED if ok else ToolCall.Status.FAILED)
        record.result, record.error, record.duration_ms = shown, error, duration_ms
        record.finished_at = timezone.now()
        record.save()
        self.emit(
            ev.TOOL_RESULT,
            {
                **tool_call_ids(record),
                "name": call.name,
                "ok": ok,
                "status": record.status,
                "output": shown[:EVENT_OUTPUT_PREVIEW_CHARS],
                "duration_ms": duration_ms,
                "step": self.step,
            },
        )
        # The model sees the output fenced and labelled as data, never as instructions.
        return ChatMessage(
            role="tool", content=untrusted_tool_output(call.name, shown), tool_call_id=call.id, name=call.name
        )

    # --- endings ----------------------------------------------------------------------------

    def _finished_fields(self) -> dict:
        now = timezone.now()
        started = self.turn.started_at or now
        return {
            "finished_at": now,
            "duration_ms": int((now - started).total_seconds() * 1000),
            "usage": self.usage,
            # No cost_usd: budget_settle wrote it call by call, with the ledger.
            "step_count": self.step,
            "tool_call_count": self.tool_call_count,
            "model": self.model_ref,
            "lease_expires_at": None,
            # Whatever happened to the last call, a finished turn holds no budget.
            "reserved_usd": Decimal("0"),
            "reserved_until": None,
            "reserved_provider": None,
            "metadata": {
                # A resumed turn is no longer parked; parking sets it again.
                **{key: value for key, value in self.turn.metadata.items() if key != "parked"},
                "timings": {
                    "model_ms": round(self.model_ms, 2),
                    "tool_ms": round(self.tool_ms, 2),
                    "context_ms": round(self.context_ms, 2),
                },
            },
        }

    def _write_final(
        self,
        status: str,
        *,
        text: str | None,
        extra: dict,
        message_meta: dict,
        event: str,
        event_data,
        failure: str | None = None,
    ) -> dict:
        """Write the answer, the final state and its event in one transaction, only while we
        still own the turn. `event_data(fields)` builds the event from what was written.

        One transaction means one commit (one WAL flush) and no window in which a client sees
        the state without its event, or the event without the state."""
        fields = {**self._finished_fields(), **extra, "status": status}
        if failure is not None:
            fields["metadata"]["failure"] = failure
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
        # `text` is redacted already: _loop redacts each step's text as it arrives.
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
        partial = redact_text("".join(self.answer_so_far) + self.stream.text)
        meta = {"model": self.model_ref, "offline": self.offline, "stop_reason": "cancelled", "partial": True}
        reason = cancellation.reason(self.turn.pk)  # "cancelled", or "tenant suspended"
        with contextlib.suppress(LostOwnership):
            self._write_final(
                Turn.Status.CANCELLED,
                text=partial or None,
                extra={"error": reason},
                message_meta=meta,
                event=ev.TURN_CANCELLED,
                event_data=lambda _fields: {"partial_text": partial, "reason": reason},
            )

    def _finish_parked(self, parked: TurnParked) -> None:
        call = parked.tool_call
        fields = self._finished_fields()
        extra = {
            "finished_at": None,
            "duration_ms": None,
            "metadata": {
                **fields["metadata"],
                "parked": {"tool_call_id": call.call_id, "step": call.step},
                "transcript": self.transcript,
                "answer_so_far": self.answer_so_far,
            },
        }

        def request_approval(_fields: dict) -> dict:
            # Runs inside the final transaction: the approval exists exactly when the turn waits.
            approval = approval_request(tenant=self.tenant, turn=self.turn, tool_call=call, reason=parked.reason)
            return {
                "approval_id": str(approval.pk),
                **tool_call_ids(call),
                "name": call.name,
                "arguments": call.arguments,
                "policy_reason": parked.reason,
                "expires_at": approval.expires_at.isoformat(),
            }

        with contextlib.suppress(LostOwnership):
            self._write_final(
                Turn.Status.WAITING_APPROVAL,
                text=None,
                extra=extra,
                message_meta={},
                event=ev.APPROVAL_REQUEST,
                event_data=request_approval,
            )

    def fail(self, error: str, *, kind: str = "internal", budget: str | None = None) -> None:
        error = redact_text(error)  # provider errors can quote what was sent
        extra: dict = {"error": error}
        if budget:  # the synchronous faces answer 402 naming it
            extra["metadata"] = {**self._finished_fields()["metadata"], "budget_exhausted": budget}
        with contextlib.suppress(LostOwnership):
            self._write_final(
                Turn.Status.FAILED,
                text=None,
                extra=extra,
                message_meta={},
                failure=kind,
                event=ev.TURN_FAILED,
                event_data=lambda _fields: {"error": error},
            )
