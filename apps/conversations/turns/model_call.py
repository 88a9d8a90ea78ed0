"""One model call of a turn: fallbacks past open breakers, the budget reservation around the
call, the token stream, and the settlement of its cost."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from apps.agents import routing
from apps.agents.breaker import guarded_chat
from apps.agents.providers.base import ChatResult, ProviderRequestError, ProviderUnavailable, Usage
from apps.agents.tokens import estimate_tokens
from apps.conversations import budgets
from apps.conversations.turns.context import TurnContext
from apps.conversations.turns.state import LostOwnership
from apps.events import types as ev
from apps.tools.guardrails import StreamRedactor, redact_text

if TYPE_CHECKING:
    from apps.conversations.turns.loop import TurnRunner


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
        self.last_flush = 0.0  # the first text goes out at once: time to first token is what users feel

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


class ModelCall:
    def __init__(self, runner: TurnRunner):
        self.runner = runner
        self.stream = TokenStream(runner)
        self.reservation: budgets.Reservation | None = None

    def call(self, selection, messages, context: TurnContext) -> ChatResult:
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
            called_at, called_wall = time.perf_counter(), timezone.now()
            try:
                result = guarded_chat(
                    candidate.provider,
                    model=candidate.model_id,
                    messages=messages,
                    tools=tools,
                    temperature=self.runner.agent.temperature,
                    max_output_tokens=self.runner.agent.max_output_tokens,
                    on_text=self.stream.on_text,
                )
            except ProviderUnavailable as exc:
                self._release()
                self._timed(candidate, called_wall, called_at, ok=False)
                failures.append(f"{candidate.ref}: {exc}")
                following = selection.candidates[index + 1].ref if index + 1 < len(selection.candidates) else None
                self.runner.emit(
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
            self._timed(candidate, called_wall, called_at, ok=True)
            self._account(candidate, result.usage, offline=result.offline)
            self.stream.flush()
            return result
        if refusal is not None:
            others = [f for f in failures if not f.endswith(str(refusal))]
            raise BudgetRefused(
                str(refusal) + (" Other models: " + "; ".join(others) if others else ""), scope=refusal.scope
            )
        raise TurnFailure("No model could answer: " + "; ".join(failures), kind="upstream")

    def _timed(self, candidate, called_wall, called_at: float, *, ok: bool) -> None:
        """Add the call's time to the turn's model time, and its span to the observatory's list."""
        ms = (time.perf_counter() - called_at) * 1000
        self.runner.spent.model_ms += ms
        self.runner.spent.model_calls.append(
            {
                "step": self.runner.step,
                "model": candidate.ref,
                "at": called_wall.isoformat(),
                "ms": round(ms, 2),
                "ok": ok,
            }
        )

    def _reserve(self, candidate, input_tokens: int) -> None:
        estimate = routing.estimate_call_cost_usd(
            agent=self.runner.agent, candidate=candidate, input_tokens=input_tokens
        )
        try:
            self.reservation = budgets.budget_reserve(
                tenant=self.runner.tenant,
                turn=self.runner.turn,
                agent=self.runner.agent,
                candidate=candidate,
                estimate_usd=estimate,
            )
        except LookupError as exc:  # the turn is no longer ours at this attempt
            raise LostOwnership from exc

    def _release(self) -> None:
        if self.reservation is not None:
            budgets.budget_release(turn=self.runner.turn)
            self.reservation = None

    def _account(self, candidate, usage: Usage, *, offline: bool = False) -> None:
        """Settle the call: its real cost into the turn's row and the monthly ledger (which frees
        its reservation). The only place a turn's cost is written: the final write leaves
        `cost_usd` alone, so the ledger and the Turn rows stay equal."""
        cost = routing.cost_usd(candidate, usage)
        if not budgets.budget_settle(turn=self.runner.turn, cost_usd=cost, provider=candidate.provider):
            raise LostOwnership  # charged all the same; the turn is another worker's now
        self.reservation = None
        self.runner.spent.input_tokens += usage.input_tokens
        self.runner.spent.output_tokens += usage.output_tokens
        self.runner.cost += cost
        self.runner.spent.model_ref = candidate.ref
        self.runner.spent.offline = self.runner.spent.offline or offline
