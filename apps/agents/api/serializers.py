from __future__ import annotations

from rest_framework import serializers

from apps.agents.crypto import mask_secret
from apps.agents.models import Agent, Provider, ProviderKind
from apps.agents.validation import POLICY_KEYS, ROLES

# --- providers -----------------------------------------------------------------------------------


class ProviderSerializer(serializers.ModelSerializer):
    """A tenant's provider. A link to a platform provider shows `platform: true`, its kind, name
    and enabled flag, and nothing of the operator's endpoint, headers or key. Header values of
    the tenant's own providers are write-only: responses show a hint per header name."""

    base_url = serializers.CharField(
        read_only=True, help_text="The tenant's endpoint; empty for a platform provider (the operator's)."
    )
    options = serializers.DictField(
        read_only=True, help_text="Client options; header values show as hints (`…3xYz`), never in full."
    )
    platform = serializers.SerializerMethodField(
        help_text="True for a platform provider: run and paid for by the operator, used by this tenant."
    )
    has_api_key = serializers.SerializerMethodField(help_text="Whether a key is stored (it is never shown).")
    api_key_hint = serializers.CharField(read_only=True, help_text="Enough of the key to recognise it, e.g. sk-…3xYz.")
    # Not a URLField: empty is a valid value, which the schema's `format: uri` would refuse.
    base_url = serializers.CharField(read_only=True, help_text="Empty: the provider's public endpoint.")

    class Meta:
        model = Provider
        fields = [
            "id",
            "name",
            "kind",
            "base_url",
            "enabled",
            "options",
            "platform",
            "has_api_key",
            "api_key_hint",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_platform(self, obj) -> bool:
        return obj.platform_id is not None

    def get_has_api_key(self, obj) -> bool:
        return bool(obj.api_key_encrypted)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.platform_id is not None:
            # The tenant row of a link holds nothing of the operator's; say so explicitly anyway.
            data.update(base_url="", options={}, has_api_key=False, api_key_hint="")
            return data
        options = dict(data.get("options") or {})
        if isinstance(options.get("headers"), dict):
            options["headers"] = {name: mask_secret(str(value)) for name, value in options["headers"].items()}
        data["options"] = options
        return data


_OPTIONS_HELP = (
    "Client options, never secrets: `timeout_seconds`, `max_retries`, `headers` (no auth headers), "
    "`organization`, `stream_usage` (false for servers that reject `stream_options`)."
)


class ProviderCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(
        max_length=64,
        required=False,
        help_text="Unique in the tenant; used in model refs and URLs. Default for a link: the platform's name.",
    )
    kind = serializers.ChoiceField(
        choices=ProviderKind.choices, required=False, help_text="Required unless `platform`."
    )
    platform = serializers.SlugField(
        max_length=64,
        required=False,
        help_text="Link to the platform provider of this name (GET /api/providers/platform lists them) "
        "instead of configuring an endpoint: then give no kind, base_url, api_key or options.",
    )
    base_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        default="",
        help_text="Empty: the public endpoint (OpenAI, Anthropic). Required for ollama and openai_compatible.",
    )
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=True,
        style={"input_type": "password"},
        help_text="Stored encrypted; never returned.",
    )
    enabled = serializers.BooleanField(default=True)
    options = serializers.DictField(required=False, default=dict, help_text=_OPTIONS_HELP)
    models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Model ids to put in the catalog. Default: the price table's models of this kind.",
    )


class ProviderUpdateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64, required=False)
    base_url = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="A new endpoint clears the stored key and header values unless `api_key` (and `options`) "
        "come in the same request: a key is only sent where it was given for. Not for a platform provider.",
    )
    api_key = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=False,
        style={"input_type": "password"},
        help_text="A new key (stored encrypted). Remove a key with DELETE /api/providers/{name}/key. "
        "Not for a platform provider.",
    )
    enabled = serializers.BooleanField(required=False)
    options = serializers.DictField(
        required=False,
        help_text=_OPTIONS_HELP + " A header value equal to the hint shown keeps the stored value. "
        "Not for a platform provider.",
    )


class PlatformProviderSerializer(serializers.Serializer):
    """A platform provider as a tenant sees it: no endpoint, no headers, no key."""

    name = serializers.CharField()
    kind = serializers.CharField(help_text="As `kind` in /api/providers.")
    linked = serializers.BooleanField(help_text="Whether this tenant has a provider linked to it.")
    monthly_cap_usd = serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        allow_null=True,
        help_text="The operator's monthly cap on this tenant's spend through it; null: none of its own.",
    )
    spent_this_month_usd = serializers.DecimalField(max_digits=12, decimal_places=6)


class ProviderKeySerializer(serializers.Serializer):
    api_key = serializers.CharField(
        write_only=True, trim_whitespace=True, style={"input_type": "password"}, help_text="Stored encrypted."
    )


class ProviderModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The provider's model id.")
    owned_by = serializers.CharField(allow_blank=True)
    in_catalog = serializers.BooleanField(help_text="Whether the model is in this provider's catalog.")


class ProviderModelsSerializer(serializers.Serializer):
    provider = serializers.CharField()
    models = ProviderModelSerializer(many=True)


class ProbeSerializer(serializers.Serializer):
    reachable = serializers.BooleanField()
    latency_ms = serializers.FloatField(help_text="Time of one model-list call, in milliseconds.")
    error = serializers.CharField(allow_blank=True)
    models_seen = serializers.IntegerField()


# --- model catalog -------------------------------------------------------------------------------


class AvailableModelSerializer(serializers.Serializer):
    """Read from a routing.ModelCandidate: prices are the effective ones (catalog or price table)."""

    id = serializers.CharField(source="catalog_id")
    ref = serializers.CharField(help_text="How agents name the model: `<provider>/<model>`.")
    provider = serializers.CharField(source="provider_name")
    # A plain string: the same choices under a second field name would make a second enum component.
    provider_kind = serializers.CharField(help_text="The provider's kind, as `kind` in /api/providers.")
    model_id = serializers.CharField()
    display_name = serializers.CharField(source="catalog_model.display_name", allow_blank=True)
    supports_tools = serializers.BooleanField()
    supports_vision = serializers.BooleanField()
    supports_streaming = serializers.BooleanField(source="catalog_model.supports_streaming")
    context_window = serializers.IntegerField()
    input_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=4, help_text="USD per million tokens.")
    output_per_mtok = serializers.DecimalField(max_digits=12, decimal_places=4, help_text="USD per million tokens.")


# --- agents --------------------------------------------------------------------------------------


class ModelPolicySerializer(serializers.Serializer):
    """A whole policy: a key left out takes its default, so PUT replaces the policy."""

    require_tools = serializers.BooleanField(default=False, help_text="Only models that can call tools.")
    require_vision = serializers.BooleanField(default=False, help_text="Only models that accept images.")
    max_cost_usd = serializers.FloatField(
        default=None,
        allow_null=True,
        min_value=0,
        help_text="The most one turn may cost: a model call whose estimate (input + max output tokens) does not fit "
        "in what the turn has left is refused; null: no cap.",
    )
    preferred_models = serializers.ListField(
        child=serializers.CharField(max_length=300),
        default=list,
        help_text="Fallback models after the role's model, in order: refs `<provider>/<model>`.",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(POLICY_KEYS))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown key."] for key in unknown})
        return super().to_internal_value(data)


_REF_HELP = "A model reference `<provider>/<model>` from GET /api/models/available; null to clear."


class AgentSerializer(serializers.ModelSerializer):
    guide_model = serializers.CharField(source="guide_model.ref", default=None, allow_null=True, help_text=_REF_HELP)
    specialist_model = serializers.CharField(
        source="specialist_model.ref", default=None, allow_null=True, help_text=_REF_HELP
    )
    vision_model = serializers.CharField(source="vision_model.ref", default=None, allow_null=True, help_text=_REF_HELP)
    model_policy = ModelPolicySerializer()
    enabled_tools = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "description",
            "system_prompt",
            "persona",
            "guide_model",
            "specialist_model",
            "vision_model",
            "model_policy",
            "max_steps",
            "temperature",
            "max_output_tokens",
            "enabled_tools",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class AgentWriteSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=64)
    description = serializers.CharField(required=False, allow_blank=True)
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    persona = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    guide_model = serializers.CharField(required=False, allow_null=True, help_text=_REF_HELP)
    specialist_model = serializers.CharField(required=False, allow_null=True, help_text=_REF_HELP)
    vision_model = serializers.CharField(required=False, allow_null=True, help_text=_REF_HELP)
    model_policy = ModelPolicySerializer(required=False)
    max_steps = serializers.IntegerField(required=False, min_value=1, max_value=100)
    temperature = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=2)
    max_output_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    enabled_tools = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, help_text="Tool names this agent may call."
    )
    enabled = serializers.BooleanField(required=False)


# --- roster --------------------------------------------------------------------------------------


class RoleModelSerializer(serializers.Serializer):
    ref = serializers.CharField()
    supports_tools = serializers.BooleanField()
    supports_vision = serializers.BooleanField()
    enabled = serializers.BooleanField(help_text="False when the model or its provider is disabled.")


class RoleModelsSerializer(serializers.Serializer):
    guide = RoleModelSerializer(allow_null=True)
    specialist = RoleModelSerializer(allow_null=True)
    vision = RoleModelSerializer(allow_null=True)


class EffectiveModelsSerializer(serializers.Serializer):
    guide = serializers.CharField(allow_null=True)
    specialist = serializers.CharField(allow_null=True, help_text="The guide's when none is assigned.")
    vision = serializers.CharField(allow_null=True, help_text="The guide's when none is assigned.")


class RosterEntrySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    enabled = serializers.BooleanField()
    models = RoleModelsSerializer(help_text="What is assigned per role.")
    effective = EffectiveModelsSerializer(help_text="What each role uses, after falling back to the guide.")
    preferred_models = serializers.ListField(child=serializers.CharField())


class RosterAssignSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=[(role, role) for role in ROLES])
    model = serializers.CharField(allow_null=True, help_text=_REF_HELP)


# --- breaker -------------------------------------------------------------------------------------


class BreakerStatusSerializer(serializers.Serializer):
    provider = serializers.CharField(help_text="Provider name.")
    provider_id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=ProviderKind.choices)
    state = serializers.ChoiceField(
        choices=["closed", "open", "half-open", "unknown"],
        help_text="What the next call meets; half-open: the next call is a trial.",
    )
    failure_count = serializers.IntegerField(help_text="Consecutive availability failures.")
    opened_at = serializers.DateTimeField(allow_null=True)
    retry_after_seconds = serializers.IntegerField(help_text="Seconds until the next trial call; 0 when not open.")
    guarded = serializers.BooleanField(help_text="False for the offline provider, which has no breaker.")


class BreakerStatusListSerializer(serializers.Serializer):
    breakers = BreakerStatusSerializer(many=True)
