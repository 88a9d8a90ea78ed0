"""Model providers, the model catalog and its prices, and agents."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from apps.core.models import TenantOwnedModel, TimestampedModel


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    OLLAMA = "ollama", "Ollama"
    OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible (vLLM, LM Studio, ...)"
    OFFLINE = "offline", "Offline (built in, deterministic, no network)"


class PlatformProvider(TimestampedModel):
    """A provider the operator runs and pays for, offered to tenants (docs/security.md).

    Stored once, not per tenant: tenants *link* to it (Provider.platform) and use its models,
    but never see or change its endpoint, headers or key. Rows named in the environment
    (OPENAI_API_KEY, ANTHROPIC_API_KEY, OLLAMA_HOST) are upserted by name; operators add others
    in the admin.
    """

    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    name = models.SlugField(max_length=64, unique=True, help_text="Also the name of the tenants' linked providers.")
    base_url = models.CharField(max_length=500, blank=True, help_text="Empty: the provider's public endpoint.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_hint = models.CharField(max_length=32, blank=True, editable=False)
    # Client options (timeouts, headers, organisation); headers may carry operator secrets here,
    # since tenants never see this row.
    options = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    available_to_all_tenants = models.BooleanField(
        default=True, help_text="Off: only tenants with an access row that allows it may use it."
    )
    from_environment = models.BooleanField(
        default=False, editable=False, help_text="Upserted from the environment at migrate/bootstrap."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, platform)"


class PlatformProviderAccess(TimestampedModel):
    """The operator's per-tenant decision about one platform provider: allowed or not, and a
    monthly cap on that tenant's spend through it (null: no cap of its own)."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    platform_provider = models.ForeignKey(PlatformProvider, on_delete=models.CASCADE, related_name="access")
    allowed = models.BooleanField(default=True)
    monthly_cap_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["platform_provider__name", "tenant__slug"]
        verbose_name_plural = "platform provider access"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "platform_provider"], name="platform_access_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.platform_provider.name} for {self.tenant_id}: {'allowed' if self.allowed else 'refused'}"


class PlatformSpend(models.Model):
    """What one tenant spent through one platform provider in one calendar month (UTC), added
    to after every model call of a link (providers/registry.py). Keyed by the platform row, not
    by the link's name, so renaming or re-linking does not reset it; the operator's cap reads it."""

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="+")
    platform_provider = models.ForeignKey(PlatformProvider, on_delete=models.CASCADE, related_name="spend")
    month = models.DateField(help_text="The first day of the month.")
    cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"))
    calls = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "platform_provider", "month"], name="platform_spend_unique_per_month"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform_provider_id} {self.month:%Y-%m}: ${self.cost_usd}"


class Provider(TenantOwnedModel):
    """Where a tenant's models are served from. The API key is stored encrypted (Fernet).

    A row with `platform` set is a link to an operator's platform provider: its own base_url,
    key and options stay empty and are ignored; the client is built from the platform row.
    """

    kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    name = models.SlugField(max_length=64, help_text="Unique per tenant; used in URLs and model references.")
    base_url = models.URLField(max_length=500, blank=True, help_text="Empty: the provider's public endpoint.")
    api_key_encrypted = models.TextField(blank=True, editable=False)
    api_key_hint = models.CharField(max_length=32, blank=True, editable=False, help_text="e.g. sk-…3xYz")
    enabled = models.BooleanField(default=True)
    # Options passed to the client (timeouts, headers, organisation); never secrets.
    options = models.JSONField(default=dict, blank=True)
    platform = models.ForeignKey(
        PlatformProvider, null=True, blank=True, on_delete=models.CASCADE, related_name="links"
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="provider_unique_name_per_tenant"),
            models.UniqueConstraint(
                fields=["tenant", "platform"],
                condition=models.Q(platform__isnull=False),
                name="provider_one_link_per_platform",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class ModelPrice(TimestampedModel):
    """The platform-wide price table: what a model costs and can do, by model id.

    Shipped with common OpenAI and Anthropic models (a data migration) and editable in the
    admin. A catalog entry without its own prices uses the row whose `model_id` matches.
    """

    provider_kind = models.CharField(max_length=32, choices=ProviderKind.choices)
    model_id = models.CharField(max_length=200, unique=True)
    input_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    output_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    context_window = models.PositiveIntegerField(default=128000)
    supports_tools = models.BooleanField(default=True)
    supports_vision = models.BooleanField(default=False)
    supports_streaming = models.BooleanField(default=True)

    class Meta:
        ordering = ["provider_kind", "model_id"]

    def __str__(self) -> str:
        return self.model_id


class CatalogModel(TenantOwnedModel):
    """A model a tenant can use, served by one of its providers."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(max_length=200, help_text="The provider's name for the model, e.g. gpt-4o-mini.")
    display_name = models.CharField(max_length=200, blank=True)
    supports_tools = models.BooleanField(default=True)
    supports_vision = models.BooleanField(default=False)
    supports_streaming = models.BooleanField(default=True)
    context_window = models.PositiveIntegerField(default=128000)
    input_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    output_per_mtok = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["provider__name", "model_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider", "model_id"], name="catalog_unique_model_per_provider")
        ]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.model_id}"

    @property
    def ref(self) -> str:
        """How agents and the API name a model: `<provider name>/<model id>`."""
        return f"{self.provider.name}/{self.model_id}"


class Agent(TenantOwnedModel):
    name = models.SlugField(max_length=64, help_text="Unique per tenant.")
    description = models.TextField(blank=True)
    system_prompt = models.TextField(blank=True)
    persona = models.TextField(blank=True, help_text="Tone and character, added after the system prompt.")
    # Models per role. guide: the default (and cheap) model; specialist: complex requests;
    # vision: messages with images. Empty specialist/vision fall back to the guide.
    guide_model = models.ForeignKey(CatalogModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    specialist_model = models.ForeignKey(
        CatalogModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    vision_model = models.ForeignKey(CatalogModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # {require_tools: bool, require_vision: bool, max_cost_usd: number|null, preferred_models: [ref, ...]}
    model_policy = models.JSONField(default=dict, blank=True)
    max_steps = models.PositiveSmallIntegerField(default=10)
    temperature = models.FloatField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    enabled_tools = models.JSONField(default=list, blank=True, help_text="Tool names this agent may call.")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="agent_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name
