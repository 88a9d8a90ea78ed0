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
    Usage,
)
from apps.agents.tokens import estimate_tokens
from apps.conversations import budgets, cancellation
from apps.conversations.models import ToolCall, Turn
from apps.conversations.turns import state
from apps.conversations.turns.context import TurnContext, build_context
from apps.conversations.turns.lease import Heartbeat
from apps.conversations.turns.parking import StepRecord, TurnProgress
from apps.conversations.turns.state import LostOwnership
from apps.conversations.turns.tool_step import ToolStep, TurnParked, shown_call
from apps.events import types as ev
from apps.events.services import publish
from apps.policy.services import approval_request, tool_call_ids
from apps.tools.guardrails import StreamRedactor, redact_text

logger = logging.getLogger(__name__)


class TurnCancelled(Exception):
    """Raised from inside the stream or between steps when a stop was asked for."""


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
        self.reservation: budgets.Reservation | None = None
        self.stream = TokenStream(self)
        self.context_ms = 0.0  # assembling the context (memory recall included)
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
        if self.reservation is not None:
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
            started = time.perf_counter()
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
        with transaction.atomic():  # the decision and its record commit together
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
            result = self._call_model(selection, messages, context)
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
                self.spent.model_ms += (time.perf_counter() - called_at) * 1000
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
            self.spent.model_ms += (time.perf_counter() - called_at) * 1000
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
        self.spent.input_tokens += usage.input_tokens
        self.spent.output_tokens += usage.output_tokens
        self.cost += cost
        self.spent.model_ref = candidate.ref
        self.spent.offline = self.spent.offline or offline

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

            memory_record_turn(turn=self.turn)  # episodic and working memory; embedded later

    def _finish_cancelled(self) -> None:
        partial = redact_text("".join(self.progress.answer_so_far) + self.stream.text)
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
