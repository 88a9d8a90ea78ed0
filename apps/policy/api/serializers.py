from __future__ import annotations

from rest_framework import serializers

from apps.policy.models import Action, Approval


class PolicyDefaultSerializer(serializers.Serializer):
    default_allow = serializers.BooleanField(required=False, help_text="true: allow, false: deny")
    default_action = serializers.ChoiceField(choices=Action.choices, required=False)
    agent = serializers.CharField(required=False, max_length=64, help_text="Agent name; empty: the tenant")

    def validate(self, attrs):
        if "default_action" not in attrs:
            if "default_allow" not in attrs:
                raise serializers.ValidationError({"default_action": ["Give default_action or default_allow."]})
            attrs["default_action"] = Action.ALLOW if attrs["default_allow"] else Action.DENY
        return attrs


class ToolRuleSerializer(serializers.Serializer):
    tool = serializers.RegexField(r"^[a-zA-Z0-9_-]{1,128}$", help_text="The tool's name")
    action = serializers.ChoiceField(choices=Action.choices)
    agent = serializers.CharField(required=False, max_length=64, help_text="Agent name; empty: the tenant")


class SafeModeEnterSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class SimulateSerializer(serializers.Serializer):
    tool = serializers.CharField(max_length=128)
    args = serializers.DictField(required=False, default=dict)


class ApprovalDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class SessionApprovalSerializer(serializers.Serializer):
    tool_call_id = serializers.UUIDField(required=False, help_text="Our id of the waiting tool call.")
    turn_id = serializers.UUIDField(required=False, help_text="Needed with `model_call_id`.")
    model_call_id = serializers.CharField(
        required=False, max_length=200, help_text="The model's id of the call; unique only within its turn."
    )
    action = serializers.ChoiceField(choices=["approve", "deny"])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    def validate(self, attrs):
        if "tool_call_id" in attrs and "model_call_id" in attrs:
            raise serializers.ValidationError({"model_call_id": ["Give tool_call_id or model_call_id, not both."]})
        if "tool_call_id" not in attrs:
            if "model_call_id" not in attrs:
                raise serializers.ValidationError(
                    {"tool_call_id": ["Give tool_call_id (or turn_id and model_call_id)."]}
                )
            if "turn_id" not in attrs:
                raise serializers.ValidationError({"turn_id": ["model_call_id needs the turn_id it belongs to."]})
        return attrs


class ApprovalSerializer(serializers.ModelSerializer):
    turn_id = serializers.UUIDField(read_only=True)
    session_id = serializers.UUIDField(source="turn.session_id", read_only=True)
    tool_call_id = serializers.UUIDField(read_only=True, help_text="Our id of the tool call (unique).")
    model_call_id = serializers.CharField(
        source="tool_call.call_id", read_only=True, help_text="The model's id of the call; unique only within the turn."
    )

    class Meta:
        model = Approval
        fields = [
            "id",
            "turn_id",
            "session_id",
            "tool_call_id",
            "model_call_id",
            "tool_name",
            "arguments",
            "args_hash",
            "status",
            "policy_reason",
            "decision_reason",
            "expires_at",
            "decided_by_label",
            "decided_at",
            "created_at",
        ]
        read_only_fields = fields
