"""Event types. Clients switch on these strings; add, never rename."""

from __future__ import annotations

TURN_STARTED = "turn_started"
CHAT_TOKEN = "chat_token"  # noqa: S105 - an event name. data: {"delta": str}; deltas batched every TOKEN_BATCH_MS
DECISION = "decision"  # data: the model selection, or a fallback to the next model
TOOL_CALL = "tool_call"
TOOL_RESULT = "tool_result"
CHAT_COMPLETE = "chat_complete"
TURN_FAILED = "turn_failed"
TURN_CANCELLED = "turn_cancelled"
# Ordered sessions (POST .../messages `multitask`): a new turn waits behind the session's active
# turns; an active turn was stopped by a newer message (interrupt, rollback); a post was refused.
TURN_QUEUED = "turn_queued"  # data: {"behind_turn_ids": [...], "position": int, "multitask": str}
TURN_INTERRUPTED = "turn_interrupted"  # data: {"by_turn_id", "multitask", "outcome"}; on the stopped turn
MESSAGE_REJECTED = "message_rejected"  # data: {"active_turn_id", "multitask": "reject"}; session-wide
SESSION_UPDATED = "session_updated"
APPROVAL_REQUEST = "approval_request"  # a tool call waits for a human decision
APPROVAL_RESOLVED = "approval_resolved"  # approved, denied or expired
# A scheduled job changed state (apps/scheduling): data {"job_id", "name", "phase", "status",
# "next_run_at", "run_count", "reason"?, "run"?: {"id", "status", "scheduled_for", "trigger",
# "lateness_ms", "turn_id", "error"}}; phase is created | updated | paused | resumed | deleted |
# fired | finished | failed | completed.
JOB_UPDATE = "job_update"
# An event-topic job ran: data {"topic", "payload", "job_id", "run_id"} (the tenant's stream).
CRON_EVENT = "cron_event"
# Not in the log (id is null): sent every SYSTEM_STATUS_SECONDS to connected clients of each tenant.
SYSTEM_STATUS = "system_status"  # data: {"workers": int | null, "queue_depth": int | null, "active_turns": int}

# A turn's stream ends with exactly one of these.
FINAL_TYPES = frozenset({CHAT_COMPLETE, TURN_FAILED, TURN_CANCELLED})
