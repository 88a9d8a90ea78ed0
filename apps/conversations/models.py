"""Chat sessions, their messages, the turns that answer them, tool calls and feedback."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from apps.core.models import TenantOwnedModel


class ChatSession(TenantOwnedModel):
    class Mode(models.TextChoices):
        CHAT = "chat", "Chat"
        SPEC = "spec", "Spec"
        TASK = "task", "Task"

    agent = models.ForeignKey("agents.Agent", null=True, on_delete=models.SET_NULL, related_name="sessions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    title = models.CharField(max_length=200, blank=True)
    nickname = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.CHAT)
    metadata = models.JSONField(default=dict, blank=True)
    archived = models.BooleanField(default=False)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    # A fork (apps/conversations/forks.py) starts as a copy of another session's history; the
    # parent stays as it was, so the old branch is still there to read. SET_NULL: deleting the
    # parent leaves its forks whole (they hold copies of the messages and attachments).
    forked_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="forks")
    forked_at_message = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # "at": the history up to and including forked_at_message; "before": strictly before it
    # (the edit-and-resend of the chat page). Blank for a session that is no fork.
    fork_kind = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["-last_activity_at"]
        indexes = [models.Index(fields=["tenant", "-last_activity_at"], name="session_tenant_recent")]

    def __str__(self) -> str:
        return self.title or str(self.pk)


class Message(TenantOwnedModel):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"
        TOOL = "tool", "Tool"
        SYSTEM = "system", "System"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    # [{"type": "text"|"image"|"file", "text"?: str, "url"?: str, "ref"?: str, "mime_type"?: str}]
    parts = models.JSONField(default=list)
    # e.g. {"redactions": [{"type": ...}], "offline": true, "stop_reason": "max_steps"}
    metadata = models.JSONField(default=dict, blank=True)
    # The client's Idempotency-Key: a retried POST with the same key gets this message's turn back.
    idempotency_key = models.CharField(max_length=128, blank=True, default="")

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["session", "created_at"], name="message_session_order")]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="message_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"

    @property
    def text(self) -> str:
        return "\n".join(p.get("text", "") for p in self.parts if p.get("type") == "text")

    @property
    def has_images(self) -> bool:
        return any(p.get("type") == "image" for p in self.parts)


class Turn(TenantOwnedModel):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.WAITING_APPROVAL)
    FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="turns")
    agent = models.ForeignKey("agents.Agent", null=True, on_delete=models.SET_NULL, related_name="+")
    input_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    output_message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    retry_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # Every claim by a worker increments it, and a worker's writes hold only while the row still
    # carries its number (the fencing token). Why a turn was claimed again is counted apart:
    attempt = models.PositiveSmallIntegerField(default=0)
    # takeovers after a worker died mid-turn (bounded by TURN_MAX_ATTEMPTS) ...
    crash_count = models.PositiveSmallIntegerField(default=0)
    # ... and resumes after an approval was decided (not bounded: each gated call resumes once).
    resume_count = models.PositiveSmallIntegerField(default=0)
    # A worker owns a running turn until this time and extends it as it works; a redelivered
    # task takes over only once it has passed (the first worker died).
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Why it was asked to stop: cancelled | interrupted | rolled back | tenant suspended. A rolled
    # back turn ends without an answer message (its partial text leaves the history).
    cancel_reason = models.CharField(max_length=32, blank=True)
    # Where a turn that stopped mid-way picks up (turns/parking.py, typed and versioned): the
    # model steps that asked for tools, the answer so far, the call waiting for approval. Written
    # at each tool step and when the turn parks; read by a resume or a takeover.
    progress = models.JSONField(default=dict, blank=True)
    # Set once the broker accepted the turn's task. A queued turn without it was committed while
    # the broker was down; the dispatcher (tasks.dispatch_pending_turns) sends it when it is back.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    model = models.CharField(max_length=300, blank=True, help_text="The model that answered: <provider>/<model>.")
    model_selection = models.JSONField(default=dict, blank=True)
    context_snapshot = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(default=dict, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    step_count = models.PositiveSmallIntegerField(default=0)
    tool_call_count = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The API key that started the turn (null for sessions, schedules and the dashboard): its
    # monthly budget, if it has one, is charged for the turn's model calls.
    api_key = models.ForeignKey("tenancy.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The budget reservation of the model call in flight (apps/conversations/budgets.py): it
    # counts as spent until it is settled into cost_usd, released, or expires (a dead worker).
    reserved_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal("0"))
    reserved_until = models.DateTimeField(null=True, blank=True)
    reserved_provider = models.ForeignKey(
        "agents.Provider", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["session", "created_at"], name="turn_session_order"),
            models.Index(
                fields=["tenant", "reserved_until"],
                name="turn_tenant_reserved",
                condition=Q(reserved_until__isnull=False),
            ),
            models.Index(fields=["tenant", "created_at"], name="turn_tenant_recent"),
            models.Index(
                fields=["updated_at"],
                name="turn_undispatched",
                condition=models.Q(status="queued", dispatched_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"turn {self.pk} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL


class ToolCall(TenantOwnedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        DENIED = "denied", "Denied"
        # Its worker died while it ran; not run again (its tool is not idempotent).
        INTERRUPTED = "interrupted", "Interrupted"

    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="tool_calls")
    step = models.PositiveSmallIntegerField()
    call_id = models.CharField(max_length=200, help_text="The model's id for the call.")
    name = models.CharField(max_length=200)
    arguments = models.JSONField(default=dict, blank=True)
    result = models.TextField(blank=True, help_text="What the model was shown (capped).")
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PENDING)
    policy = models.JSONField(default=dict, blank=True, help_text="The policy decision and its reason.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The turn attempt that claimed the call to run it (compare-and-set from pending or approved):
    # a call claimed by an attempt whose worker died is never run again unless its tool is
    # idempotent.
    attempt = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["step", "created_at"]
        constraints = [models.UniqueConstraint(fields=["turn", "call_id"], name="toolcall_unique_per_turn")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Feedback(TenantOwnedModel):
    turn = models.ForeignKey(Turn, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    grade = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(grade__gte=1) & Q(grade__lte=5), name="feedback_grade_1_to_5"),
            # One grade per person per turn; keys without a person share one (nulls not distinct).
            models.UniqueConstraint(fields=["turn", "user"], name="feedback_one_per_user", nulls_distinct=False),
        ]

    def __str__(self) -> str:
        return f"{self.grade}/5 on {self.turn_id}"


class SpendLedger(models.Model):
    """What one tenant's model calls cost in one calendar month (UTC), per API key (null: calls
    of turns no key started). `budgets.budget_settle` adds each call in the statement that
    settles it on its Turn, so a budget check reads a handful of rows instead of summing every
    turn of the month."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    # RESTRICT: deleting a key alone would drop its spend from the tenant's month (a budget
    # bypass); deleting the tenant takes both.
    api_key = models.ForeignKey("tenancy.ApiKey", null=True, blank=True, on_delete=models.RESTRICT, related_name="+")
    month = models.DateField(help_text="The first day of the month (UTC).")
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"))
    calls = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One row per (tenant, key, month), the keyless row included: NULLs are not distinct,
            # so the settle's ON CONFLICT finds it.
            models.UniqueConstraint(
                fields=["tenant", "month", "api_key"], name="spend_ledger_unique_per_month", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.month:%Y-%m} key={self.api_key_id}: ${self.cost_usd}"


class Attachment(TenantOwnedModel):
    """A file uploaded to a session, named in message parts by `ref`.

    The bytes live at ATTACHMENT_ROOT/<tenant id>/<id> (apps/conversations/attachments.py); no
    path or name from the client is ever part of it. A ref is unique within its session: a fork
    copies its parent's attachments with the same refs, so copied messages resolve as before.
    """

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="attachments")
    ref = models.CharField(max_length=64)
    filename = models.CharField(max_length=255)
    mime_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who uploaded it as the principal names itself: "user:<name>" or "api_key:<prefix>".
    uploaded_by_label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["session", "ref"], name="attachment_ref_per_session")]
        indexes = [models.Index(fields=["tenant", "ref"], name="attachment_tenant_ref")]

    def __str__(self) -> str:
        return f"{self.ref} ({self.filename})"

    @property
    def is_image(self) -> bool:
        return self.mime_type.startswith("image/")
