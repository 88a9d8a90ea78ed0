"""One tool call of a turn: record it, ask the policy, claim it, run it once, record the result.

A call runs only after its row is claimed by compare-and-set (pending or approved → running,
stamped with the turn's attempt). So a call whose worker died while it ran is never run again
by the worker that takes the turn over, unless its tool declares itself idempotent: the model is
told the call was interrupted and may or may not have taken effect.

The row, the events and an approval show the call's arguments redacted (`shown`). A call that
runs now runs with the model's own arguments: a credential in them came from the conversation
the model was given, and a tool that needs it would break on [REDACTED:...]. A call that runs
later (approved, or after a takeover) runs with the stored arguments, so what was approved is
exactly what runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from django.utils import timezone

from apps.agents.providers.base import ChatMessage, ToolCallRequest
from apps.conversations.models import ToolCall
from apps.events import types as ev
from apps.policy.models import Approval
from apps.policy.services import arguments_hash, policy_decide, tool_call_ids
from apps.tools.guardrails import redact_data, redact_text
from apps.tools.registry import Tool, ToolContext, execute_tool, untrusted_tool_output

if TYPE_CHECKING:
    from apps.conversations.turns.loop import TurnRunner

EVENT_OUTPUT_PREVIEW_CHARS = 2000
INTERRUPTED_ERROR = (
    "Interrupted: the worker running this call stopped before it finished, so it may or may not have "
    "taken effect. It was not run again; check its effect before you retry it."
)
FINISHED = (ToolCall.Status.COMPLETED, ToolCall.Status.FAILED, ToolCall.Status.DENIED, ToolCall.Status.INTERRUPTED)


class TurnParked(Exception):
    """A tool call needs a human decision: the turn waits in `waiting_approval`."""

    def __init__(self, tool_call: ToolCall, reason: str):
        super().__init__(reason)
        self.tool_call = tool_call
        self.reason = reason


def shown_call(call: ToolCallRequest) -> ToolCallRequest:
    """A tool call as it is stored, published and sent back to the model: arguments redacted."""
    arguments = redact_data(call.arguments)
    raw = call.raw_arguments
    if raw:
        changed = arguments != call.arguments and isinstance(call.arguments, dict) and call.arguments
        raw = json.dumps(arguments, ensure_ascii=False) if changed else redact_text(raw)
    return ToolCallRequest(id=call.id, name=call.name, arguments=arguments, raw_arguments=raw)


class ToolStep:
    def __init__(self, runner: TurnRunner, tools: list[Tool]):
        self.runner = runner
        self.turn = runner.turn
        self.tools_by_name = {t.name: t for t in tools}

    def run(self, call: ToolCallRequest, shown: ToolCallRequest, *, step: int) -> ChatMessage:
        """A call the model just asked for (`call` has its own arguments, `shown` the stored ones)."""
        record, created = ToolCall.objects.get_or_create(
            turn=self.turn,
            call_id=call.id,
            defaults={"tenant_id": self.turn.tenant_id, "step": step, "name": call.name, "arguments": shown.arguments},
        )
        if not created:  # the same step again after a takeover: what the row says stands
            return self.resume(shown, record)
        self.runner.spent.tool_call_count += 1
        self._announce(record, shown)
        return self._decide_and_run(record, call)

    def resume(self, call: ToolCallRequest, record: ToolCall | None) -> ChatMessage:
        """A call of a step that an earlier attempt or a parked turn reached: replay a finished
        call's result, run a decided or untouched one, and never rerun an interrupted one."""
        if record is None:  # the earlier attempt stopped before reaching this call
            return self.run(call, call, step=self.runner.step)
        if record.status in FINISHED:
            return self._model_message(call, record.result)
        if record.status == ToolCall.Status.WAITING_APPROVAL:
            return self._run_decided(call, record)
        if record.status == ToolCall.Status.RUNNING:
            return self._run_interrupted(call, record)
        return self._decide_and_run(record, call)  # pending: recorded, never claimed

    # --- the paths ----------------------------------------------------------------------------

    def _announce(self, record: ToolCall, shown: ToolCallRequest) -> None:
        self.runner.emit(
            ev.TOOL_CALL,
            {**tool_call_ids(record), "name": record.name, "arguments": shown.arguments, "step": record.step},
        )

    def _decide_and_run(self, record: ToolCall, call: ToolCallRequest) -> ChatMessage:
        tool = self.tools_by_name.get(record.name)
        if tool is None:
            return self._done(record, ok=False, output="", error=f"No tool named '{record.name}' is enabled.")
        runner = self.runner
        decision = policy_decide(tenant=runner.tenant, agent=runner.agent, tool=tool, arguments=call.arguments)
        record.policy = {"action": decision.action, "reason": decision.reason}
        if decision.action == "deny":
            error = f"Denied by policy: {decision.reason}"
            return self._done(record, ok=False, output="", error=error, status=ToolCall.Status.DENIED)
        if decision.action == "require_approval":
            record.status = ToolCall.Status.WAITING_APPROVAL
            record.save(update_fields=["policy", "status", "updated_at"])
            raise TurnParked(record, decision.reason)
        ToolCall.objects.filter(pk=record.pk).update(policy=record.policy)
        if not self._claim(record, from_status=ToolCall.Status.PENDING):
            record.refresh_from_db()
            return self.resume(call, record)
        return self._execute(record, tool, call.arguments)

    def _run_decided(self, call: ToolCallRequest, record: ToolCall) -> ChatMessage:
        approval = Approval.objects.filter(tool_call=record).first()
        if approval is None or approval.status == Approval.Status.PENDING:
            raise TurnParked(record, record.policy.get("reason", "waiting for approval"))
        if approval.status != Approval.Status.APPROVED:
            who = (
                "the approval request expired"
                if approval.status == Approval.Status.EXPIRED
                else f"denied by {approval.decided_by_label}"
                + (f": {approval.decision_reason}" if approval.decision_reason else "")
            )
            return self._done(record, ok=False, output="", error=f"Not run: {who}.", status=ToolCall.Status.DENIED)
        if arguments_hash(record.name, record.arguments) != approval.args_hash or record.arguments != call.arguments:
            error = "Refused: the call's arguments differ from what was approved."
            return self._done(record, ok=False, output="", error=error)
        tool = self.tools_by_name.get(record.name)
        if tool is None:
            return self._done(record, ok=False, output="", error=f"No tool named '{record.name}' is enabled.")
        if not self._claim(record, from_status=ToolCall.Status.WAITING_APPROVAL):
            record.refresh_from_db()
            return self.resume(call, record)
        return self._execute(record, tool, approval.arguments)

    def _run_interrupted(self, call: ToolCallRequest, record: ToolCall) -> ChatMessage:
        """Claimed by an attempt whose worker died (its lease ran out while the call ran)."""
        tool = self.tools_by_name.get(record.name)
        if tool is not None and tool.is_idempotent:
            claimed = ToolCall.objects.filter(pk=record.pk, status=ToolCall.Status.RUNNING, attempt=record.attempt)
            if claimed.update(attempt=self.turn.attempt, started_at=timezone.now()):
                return self._execute(record, tool, record.arguments)
            record.refresh_from_db()
            return self.resume(call, record)
        return self._done(record, ok=False, output="", error=INTERRUPTED_ERROR, status=ToolCall.Status.INTERRUPTED)

    def _claim(self, record: ToolCall, *, from_status: str) -> bool:
        started_at = timezone.now()
        claimed = ToolCall.objects.filter(pk=record.pk, status=from_status).update(
            status=ToolCall.Status.RUNNING, started_at=started_at, attempt=self.turn.attempt, updated_at=started_at
        )
        if claimed:  # _done saves the whole row: it must carry what the update wrote
            record.status, record.started_at, record.attempt = ToolCall.Status.RUNNING, started_at, self.turn.attempt
        return bool(claimed)

    def _execute(self, record: ToolCall, tool: Tool, arguments: dict) -> ChatMessage:
        runner = self.runner
        context = ToolContext(
            tenant=runner.tenant,
            agent=runner.agent,
            user=self.turn.session.created_by,
            session_id=str(self.turn.session_id),
            turn_id=str(self.turn.pk),
        )
        outcome = execute_tool(tool=tool, arguments=arguments, context=context)
        runner.spent.tool_ms += outcome.duration_ms
        return self._done(
            record, ok=outcome.ok, output=outcome.output, error=outcome.error, duration_ms=outcome.duration_ms
        )

    def _done(
        self,
        record: ToolCall,
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
        self.runner.emit(
            ev.TOOL_RESULT,
            {
                **tool_call_ids(record),
                "name": record.name,
                "ok": ok,
                "status": record.status,
                "output": shown[:EVENT_OUTPUT_PREVIEW_CHARS],
                "duration_ms": duration_ms,
                "step": record.step,
            },
        )
        return self._model_message(ToolCallRequest(id=record.call_id, name=record.name, arguments={}), shown)

    @staticmethod
    def _model_message(call: ToolCallRequest, shown: str) -> ChatMessage:
        # The model sees the output fenced and labelled as data, never as instructions.
        return ChatMessage(
            role="tool", content=untrusted_tool_output(call.name, shown), tool_call_id=call.id, name=call.name
        )
