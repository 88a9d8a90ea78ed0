from __future__ import annotations

from collections.abc import Mapping

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.conversations.models import Attachment, ChatSession, Feedback, Message, ToolCall, Turn
from apps.conversations.turns.services import MULTITASK_STRATEGIES

MAX_PARTS = 20
MAX_TEXT_CHARS = 100_000


class PartSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["text", "image", "file"])
    text = serializers.CharField(required=False, allow_blank=True, max_length=MAX_TEXT_CHARS, trim_whitespace=False)
    url = serializers.CharField(required=False, max_length=2_000_000, help_text="http(s) URL or a data: URI")
    ref = serializers.CharField(
        required=False,
        max_length=64,
        help_text="An attachment of this session (`POST /api/sessions/{id}/attachments` answers it); the part "
        "then takes the attachment's type and name.",
    )
    mime_type = serializers.CharField(required=False, max_length=100)

    def validate(self, attrs):
        kind = attrs["type"]
        if kind == "text" and not attrs.get("text", "").strip():
            raise serializers.ValidationError({"text": ["A text part needs non-empty text."]})
        if kind in ("image", "file") and not (attrs.get("url") or attrs.get("ref")):
            raise serializers.ValidationError({"url": [f"An {kind} part needs a url or a ref."]})
        url = attrs.get("url", "")
        if url and not url.startswith(("http://", "https://", "data:")):
            raise serializers.ValidationError({"url": ["Use an http(s) URL or a data: URI."]})
        return attrs


MULTITASK_HELP = (
    "What to do when the session is still answering an earlier message: `enqueue` (default: this "
    "message's turn waits for it), `reject` (409, nothing is stored), `interrupt` (stop it, keep its "
    "partial answer, then answer this one) or `rollback` (stop it and drop its partial answer from "
    "the history)."
)


class MultitaskField(serializers.ChoiceField):
    def __init__(self, **kwargs):
        kwargs.setdefault("choices", list(MULTITASK_STRATEGIES))
        kwargs.setdefault("default", MULTITASK_STRATEGIES[0])
        kwargs.setdefault("help_text", MULTITASK_HELP)
        super().__init__(**kwargs)


class MessagePostSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=[Message.Role.USER, Message.Role.SYSTEM], default=Message.Role.USER)
    parts = PartSerializer(many=True, required=False)
    text = serializers.CharField(
        required=False, max_length=MAX_TEXT_CHARS, help_text="Shorthand for one text part.", trim_whitespace=False
    )
    auto_run = serializers.BooleanField(default=True, help_text="Queue a turn that answers this message.")
    multitask = MultitaskField()

    def validate(self, attrs):
        parts = list(attrs.get("parts") or [])
        if attrs.get("text"):
            parts.insert(0, {"type": "text", "text": attrs.pop("text")})
        if not parts:
            raise serializers.ValidationError({"parts": ["Send at least one part (or `text`)."]})
        if len(parts) > MAX_PARTS:
            raise serializers.ValidationError({"parts": [f"At most {MAX_PARTS} parts."]})
        attrs["parts"] = parts
        return attrs


class MessageAcceptedSerializer(serializers.Serializer):
    message_id = serializers.UUIDField()
    turn_id = serializers.UUIDField(allow_null=True)


class MessageSerializer(serializers.ModelSerializer):
    session_id = serializers.UUIDField(read_only=True)
    text = serializers.CharField(read_only=True)

    class Meta:
        model = Message
        fields = ["id", "session_id", "role", "parts", "text", "metadata", "created_at"]
        read_only_fields = fields


class SessionSerializer(serializers.ModelSerializer):
    agent = serializers.CharField(source="agent.name", read_only=True, default=None)
    agent_id = serializers.UUIDField(read_only=True)
    forked_from = serializers.UUIDField(
        source="forked_from_id", read_only=True, allow_null=True, help_text="The session this one was forked from."
    )
    forked_at_message = serializers.UUIDField(
        source="forked_at_message_id",
        read_only=True,
        allow_null=True,
        help_text="The parent's message the fork was cut at (see `fork_kind`).",
    )
    fork_kind = serializers.ChoiceField(
        choices=["at", "before", ""],
        read_only=True,
        help_text="`at`: the history up to and including `forked_at_message`; `before`: strictly before it; "
        '"" for a session that is no fork.',
    )

    class Meta:
        model = ChatSession
        fields = [
            "id",
            "agent",
            "agent_id",
            "title",
            "nickname",
            "mode",
            "metadata",
            "archived",
            "created_at",
            "last_activity_at",
            "forked_from",
            "forked_at_message",
            "fork_kind",
        ]
        read_only_fields = fields


class SessionDetailSerializer(SessionSerializer):
    forks = serializers.SerializerMethodField(help_text="The sessions forked from this one, oldest first.")

    class Meta(SessionSerializer.Meta):
        fields = [*SessionSerializer.Meta.fields, "forks"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_forks(self, session: ChatSession) -> list[str]:
        return [str(pk) for pk in session.forks.order_by("created_at").values_list("pk", flat=True)]


class SessionWriteSerializer(serializers.Serializer):
    agent = serializers.CharField(
        required=False, max_length=128, help_text="Agent name or id; default: the tenant's first enabled agent."
    )
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)
    nickname = serializers.CharField(required=False, allow_blank=True, max_length=100)
    mode = serializers.ChoiceField(choices=ChatSession.Mode.choices, required=False)
    metadata = serializers.JSONField(required=False)
    archived = serializers.BooleanField(required=False)

    def validate_metadata(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("An object.")
        return value


class TurnSerializer(serializers.ModelSerializer):
    session_id = serializers.UUIDField(read_only=True)
    input_message_id = serializers.UUIDField(read_only=True)
    output_message_id = serializers.UUIDField(read_only=True, allow_null=True)
    retry_of_id = serializers.UUIDField(read_only=True, allow_null=True)
    agent = serializers.CharField(source="agent.name", read_only=True, default=None)

    class Meta:
        model = Turn
        fields = [
            "id",
            "session_id",
            "agent",
            "status",
            "attempt",
            "crash_count",
            "resume_count",
            "cancel_reason",
            "input_message_id",
            "output_message_id",
            "retry_of_id",
            "model",
            "usage",
            "cost_usd",
            "step_count",
            "tool_call_count",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "error",
            "metadata",
        ]
        read_only_fields = fields


class TurnCancellingSerializer(TurnSerializer):
    """A running turn that was asked to stop: `status` is `cancelling` until the worker stops it
    (at its next token or step); the final status is then on the turn and in `turn_cancelled`."""

    status = serializers.SerializerMethodField()

    @extend_schema_field(serializers.ChoiceField(choices=["cancelling"]))
    def get_status(self, turn: Turn) -> str:
        return "cancelling"


class ToolCallSerializer(serializers.ModelSerializer):
    model_call_id = serializers.CharField(
        source="call_id", read_only=True, help_text="The model's id of the call; unique only within the turn."
    )

    class Meta:
        model = ToolCall
        fields = [
            "id",
            "step",
            "model_call_id",
            "name",
            "arguments",
            "result",
            "status",
            "policy",
            "duration_ms",
            "error",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class FeedbackSerializer(serializers.ModelSerializer):
    turn_id = serializers.UUIDField(read_only=True)
    user = serializers.CharField(source="user.username", read_only=True, default=None)

    class Meta:
        model = Feedback
        fields = ["id", "turn_id", "user", "grade", "comment", "created_at", "updated_at"]
        read_only_fields = ["id", "turn_id", "user", "created_at", "updated_at"]


class FeedbackWriteSerializer(serializers.Serializer):
    grade = serializers.IntegerField(
        min_value=1, max_value=5, required=False, help_text="Needed the first time; kept when left out later."
    )
    comment = serializers.CharField(
        required=False, allow_blank=True, max_length=5000, help_text='Kept when left out; send "" to clear it.'
    )


class StrictFieldsMixin:
    """Refuses fields the serializer does not know, naming them: a misspelt field that is silently
    ignored (a `session_id` that started a new session) is worse than a 400."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in set(data) - set(self.fields))
            if unknown:
                known = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {name: [f"Unknown field; this endpoint takes {known}."] for name in unknown}
                )
        return super().to_internal_value(data)


SESSION_SPELLINGS = ("sessionId", "session_id", "session")


class AgentMessageSerializer(StrictFieldsMixin, serializers.Serializer):
    """A message to an agent. Name a session to continue it (any one of the three spellings);
    fields not listed here are refused with 400."""

    text = serializers.CharField(max_length=MAX_TEXT_CHARS, trim_whitespace=False)
    sessionId = serializers.CharField(  # noqa: N815 - the reference API's name
        required=False, max_length=128, help_text="Continue this session (404 if it is not your tenant's)."
    )
    session_id = serializers.CharField(required=False, max_length=128, help_text="The same as `sessionId`.")
    session = serializers.CharField(required=False, max_length=128, help_text="The same as `sessionId`.")
    agent = serializers.CharField(
        required=False,
        max_length=128,
        help_text="Agent name or id for a new session (default: the first enabled agent). With a session, it "
        "must be that session's agent.",
    )
    multitask = MultitaskField()
    parts = PartSerializer(
        many=True,
        required=False,
        help_text="More parts after `text`: images and files by `url` or by the `ref` of one of the session's "
        "attachments (refs need `sessionId`: attachments are uploaded to a session).",
    )

    def validate(self, attrs):
        given = {name: attrs.pop(name) for name in SESSION_SPELLINGS if name in attrs}
        if len(set(given.values())) > 1:
            raise serializers.ValidationError(
                {name: ["Names a different session than the other session field."] for name in given}
            )
        attrs["session_id"] = next(iter(given.values()), None)
        parts = attrs.get("parts") or []
        if len(parts) >= MAX_PARTS:
            raise serializers.ValidationError({"parts": [f"At most {MAX_PARTS} parts, `text` included."]})
        if attrs["session_id"] is None and any(p.get("ref") for p in parts):
            raise serializers.ValidationError(
                {
                    "parts": [
                        "A ref names an attachment of a session: create the session, upload to "
                        "/api/sessions/{id}/attachments, then send `sessionId` with the message."
                    ]
                }
            )
        return attrs


class AgentMessageReplySerializer(serializers.Serializer):
    text = serializers.CharField()
    sessionId = serializers.CharField()  # noqa: N815
    turnId = serializers.CharField()  # noqa: N815
    metadata = serializers.DictField()


class TaskSerializer(StrictFieldsMixin, serializers.Serializer):
    """A one-off task; fields not listed here are refused with 400."""

    topic = serializers.CharField(max_length=MAX_TEXT_CHARS)
    agent = serializers.CharField(required=False, max_length=128)


class TaskReplySerializer(serializers.Serializer):
    taskId = serializers.CharField()  # noqa: N815
    text = serializers.CharField()
    metadata = serializers.DictField()


# --- attachments and forks ------------------------------------------------------------------------


class AttachmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attachment
        fields = ["ref", "filename", "mime_type", "size", "sha256", "width", "height", "created_at"]
        read_only_fields = fields


class AttachmentUploadSerializer(StrictFieldsMixin, serializers.Serializer):
    """The JSON form of an upload, for programs; browsers send multipart with a `file` field."""

    filename = serializers.CharField(max_length=1000, help_text="A label; only its last path segment is kept.")
    mime_type = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Default: guessed from the file name."
    )
    data = serializers.CharField(help_text="The file's bytes, base64 (a `data:` URL is accepted too).")


class AttachmentMultipartSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="The file; its part's Content-Type is its type (else the name says).")


class SessionForkSerializer(StrictFieldsMixin, serializers.Serializer):
    """Exactly one of the two: where the fork is cut."""

    at_message_id = serializers.UUIDField(
        required=False, help_text="Copy the history up to and including this message."
    )
    before_message_id = serializers.UUIDField(
        required=False, help_text="Copy the history strictly before this message (edit and resend)."
    )

    def validate(self, attrs):
        given = [name for name in ("at_message_id", "before_message_id") if attrs.get(name)]
        if len(given) != 1:
            message = "Send exactly one of at_message_id and before_message_id."
            raise serializers.ValidationError({name: [message] for name in given or ["at_message_id"]})
        return attrs
