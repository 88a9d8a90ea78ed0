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
    turn_id = serializers.UUIDField()
    tool_call_id = serializers.CharField(max_length=200)
    action = serializers.ChoiceField(choices=["approve", "deny"])
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ApprovalSerializer(serializers.ModelSerializer):
    turn_id = serializers.UUIDField(read_only=True)
    session_id = serializers.UUIDField(source="turn.session_id", read_only=True)
    tool_call_id = serializers.CharField(source="tool_call.call_id", read_only=True)

    class Meta:
        model = Approval
        fields = [
            "id",
            "turn_id",
            "session_id",
            "tool_call_id",
            "tool_name",
            "arguments",
            "args_hash",
            "status",
            "reason",
            "expires_at",
            "decided_by_label",
            "decided_at",
            "created_at",
        ]
        read_only_fields = fields
