"""The operators' view of providers, the price table, the model catalog and agents."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from rest_framework.exceptions import ValidationError as ApiValidationError

from apps.agents import services, validation
from apps.agents.models import (
    Agent,
    CatalogModel,
    ModelPrice,
    PlatformProvider,
    PlatformProviderAccess,
    PlatformSpend,
    Provider,
)
from apps.core.errors import Conflict
from apps.core.ratelimit import client_address
from apps.tenancy.principal import Actor


def _actor(request) -> Actor:
    return Actor(
        user=request.user,
        label=f"admin:{request.user.get_username()}",
        ip=client_address(request),
        request_id=getattr(request, "request_id", ""),
    )


def _messages_of(exc: ApiValidationError | Conflict) -> str:
    detail = exc.detail
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {value}" for key, value in detail.items())
    return str(detail)


class ProviderAdminForm(forms.ModelForm):
    # Never pre-filled (render_value=False): the page never carries the key, encrypted or not.
    new_api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="New API key",
        help_text="Stored encrypted. Leave empty to keep the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")
    # Laxer than URLField: in-cluster hosts without a dot (http://ollama:11434) are normal here.
    base_url = forms.CharField(required=False, max_length=500, help_text=Provider._meta.get_field("base_url").help_text)

    class Meta:
        model = Provider
        fields = ["tenant", "name", "kind", "base_url", "enabled", "options"]

    def clean_base_url(self):
        try:
            return validation.clean_base_url(self.cleaned_data.get("base_url", ""))
        except ApiValidationError as exc:
            raise forms.ValidationError(_messages_of(exc)) from exc

    def clean_options(self):
        try:
            return validation.clean_provider_options(self.cleaned_data.get("options"))
        except ApiValidationError as exc:
            raise forms.ValidationError(_messages_of(exc)) from exc

    def clean(self):
        # The checks the service makes, here too, so a refused save shows on the form.
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        kind = cleaned.get("kind") or self.instance.kind
        name = cleaned.get("name")
        if kind == "openai_compatible" and not cleaned.get("base_url"):
            self.add_error("base_url", "An OpenAI-compatible provider needs the server's URL (…/v1).")
        if tenant and name and Provider.objects.filter(tenant=tenant, name=name).exclude(pk=self.instance.pk).exists():
            self.add_error("name", "This tenant already has a provider with this name.")
        return cleaned


class CatalogModelInline(admin.TabularInline):
    """Switch a provider's models on and off here; add models on the catalog page (they need a tenant)."""

    model = CatalogModel
    extra = 0
    fields = ["model_id", "enabled", "supports_tools", "supports_vision", "context_window"]
    readonly_fields = ["model_id"]
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderAdminForm
    list_display = [
        "name",
        "tenant",
        "kind",
        "platform",
        "base_url",
        "enabled",
        "api_key_hint",
        "model_count",
        "updated_at",
    ]
    list_filter = ["kind", "enabled", "platform", "tenant"]
    search_fields = ["name", "base_url", "tenant__slug"]
    readonly_fields = ["id", "platform", "api_key_hint", "created_at", "updated_at"]
    fields = [
        "id",
        "tenant",
        "name",
        "kind",
        "platform",
        "base_url",
        "enabled",
        "options",
        "api_key_hint",
        "new_api_key",
        "clear_api_key",
        "created_at",
        "updated_at",
    ]
    inlines = [CatalogModelInline]

    @admin.display(description="Models")
    def model_count(self, obj) -> int:
        return CatalogModel.objects.filter(provider=obj).count()

    def get_readonly_fields(self, request, obj=None):
        # Tenant and kind are fixed once the provider exists (its catalog and agents depend on them).
        return [*self.readonly_fields, "tenant", "kind"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actor = _actor(request)
        try:
            if not change:
                created = services.provider_create(
                    tenant=data["tenant"],
                    actor=actor,
                    kind=data["kind"],
                    name=data["name"],
                    base_url=data.get("base_url", ""),
                    api_key=data.get("new_api_key", ""),
                    enabled=data.get("enabled", True),
                    options=data.get("options") or {},
                )
                obj.pk = created.pk  # so the admin's redirect points at the saved provider
                return
            if obj.platform_id is not None:
                # A link: its endpoint, key and options are the platform provider's (edit them there).
                services.provider_update(
                    tenant=obj.tenant, actor=actor, provider=obj, name=data["name"], enabled=data.get("enabled")
                )
                return
            provider = services.provider_update(
                tenant=obj.tenant,
                actor=actor,
                provider=obj,
                name=data["name"],
                base_url=data.get("base_url", ""),
                enabled=data.get("enabled"),
                options=data.get("options") or {},
            )
            if data.get("new_api_key"):
                services.provider_set_key(
                    tenant=obj.tenant, actor=actor, provider=provider, api_key=data["new_api_key"]
                )
            elif data.get("clear_api_key"):
                services.provider_delete_key(tenant=obj.tenant, actor=actor, provider=provider)
        except (ApiValidationError, Conflict) as exc:
            messages.error(request, f"Not saved: {_messages_of(exc)}")

    def delete_model(self, request, obj):
        services.provider_delete(tenant=obj.tenant, actor=_actor(request), provider=obj)


class PlatformProviderAdminForm(forms.ModelForm):
    new_api_key = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        label="New API key",
        help_text="Stored encrypted, never shown again, never shown to tenants. Empty keeps the current key.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")
    base_url = forms.CharField(required=False, max_length=500, help_text="Empty: the vendor's public endpoint.")

    class Meta:
        model = PlatformProvider
        fields = ["name", "kind", "base_url", "enabled", "available_to_all_tenants", "options"]


class PlatformProviderAccessInline(admin.TabularInline):
    """Per-tenant grants and caps; no row means `available_to_all_tenants` decides."""

    model = PlatformProviderAccess
    extra = 0
    fields = ["tenant", "allowed", "monthly_cap_usd"]
    raw_id_fields = ["tenant"]


@admin.register(PlatformProvider)
class PlatformProviderAdmin(admin.ModelAdmin):
    """Operator-owned providers that tenants link to. The key is write-only here too: the page
    shows its hint, and header values in `options` are the operator's (tenants never see them)."""

    form = PlatformProviderAdminForm
    list_display = ["name", "kind", "base_url", "enabled", "available_to_all_tenants", "api_key_hint", "links"]
    list_filter = ["kind", "enabled", "available_to_all_tenants", "from_environment"]
    readonly_fields = ["id", "api_key_hint", "from_environment", "created_at", "updated_at"]
    fields = [
        "id",
        "name",
        "kind",
        "base_url",
        "enabled",
        "available_to_all_tenants",
        "options",
        "api_key_hint",
        "new_api_key",
        "clear_api_key",
        "from_environment",
        "created_at",
        "updated_at",
    ]
    inlines = [PlatformProviderAccessInline]

    @admin.display(description="Tenants linked")
    def links(self, obj) -> int:
        return Provider.objects.filter(platform=obj).count()

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "kind"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            saved = services.platform_provider_save(
                actor=_actor(request),
                platform_provider=PlatformProvider.objects.get(pk=obj.pk) if change else None,
                name=data["name"],
                kind=data.get("kind") or obj.kind,
                base_url=data.get("base_url", ""),
                options=data.get("options") or {},
                enabled=data.get("enabled", True),
                available_to_all_tenants=data.get("available_to_all_tenants", True),
                api_key=data.get("new_api_key") or None,
                clear_api_key=bool(data.get("clear_api_key")),
            )
            obj.pk = saved.pk
        except (ApiValidationError, Conflict) as exc:
            messages.error(request, f"Not saved: {_messages_of(exc)}")


@admin.register(PlatformProviderAccess)
class PlatformProviderAccessAdmin(admin.ModelAdmin):
    list_display = ["platform_provider", "tenant", "allowed", "monthly_cap_usd", "updated_at"]
    list_filter = ["allowed", "platform_provider"]
    search_fields = ["tenant__slug", "platform_provider__name"]
    list_select_related = ["platform_provider", "tenant"]
    raw_id_fields = ["tenant"]


@admin.register(PlatformSpend)
class PlatformSpendAdmin(admin.ModelAdmin):
    """Read-only: written by every model call through a link."""

    list_display = ["platform_provider", "tenant", "month", "cost_usd", "calls", "updated_at"]
    list_filter = ["platform_provider", "month"]
    search_fields = ["tenant__slug"]
    list_select_related = ["platform_provider", "tenant"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = [
        "model_id",
        "provider_kind",
        "input_per_mtok",
        "output_per_mtok",
        "context_window",
        "supports_tools",
        "supports_vision",
        "updated_at",
    ]
    list_editable = ["input_per_mtok", "output_per_mtok"]
    list_filter = ["provider_kind", "supports_tools", "supports_vision"]
    search_fields = ["model_id"]


class CatalogModelAdminForm(forms.ModelForm):
    class Meta:
        model = CatalogModel
        fields = [
            "tenant",
            "provider",
            "model_id",
            "display_name",
            "enabled",
            "supports_tools",
            "supports_vision",
            "supports_streaming",
            "context_window",
            "input_per_mtok",
            "output_per_mtok",
        ]

    def clean(self):
        cleaned = super().clean()
        tenant, provider = cleaned.get("tenant"), cleaned.get("provider")
        if tenant and provider and provider.tenant_id != tenant.pk:
            raise forms.ValidationError("The provider belongs to another tenant.")
        return cleaned


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    form = CatalogModelAdminForm
    list_display = [
        "model_id",
        "provider",
        "tenant",
        "enabled",
        "supports_tools",
        "supports_vision",
        "context_window",
        "input_per_mtok",
        "output_per_mtok",
    ]
    list_filter = ["enabled", "provider__kind", "supports_tools", "supports_vision", "tenant"]
    search_fields = ["model_id", "display_name", "provider__name", "tenant__slug"]
    list_select_related = ["provider", "tenant"]
    raw_id_fields = ["provider"]
    readonly_fields = ["id", "created_at", "updated_at"]


class AgentAdminForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = [
            "tenant",
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
        ]

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant")
        for field in ("guide_model", "specialist_model", "vision_model"):
            model = cleaned.get(field)
            if tenant and model is not None and model.tenant_id != tenant.pk:
                self.add_error(field, "This model belongs to another tenant.")
        if tenant and cleaned.get("model_policy") is not None:
            try:
                cleaned["model_policy"] = validation.clean_model_policy(tenant=tenant, policy=cleaned["model_policy"])
            except ApiValidationError as exc:
                self.add_error("model_policy", _messages_of(exc))
        return cleaned


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    form = AgentAdminForm
    list_display = ["name", "tenant", "guide_model", "specialist_model", "vision_model", "enabled", "updated_at"]
    list_filter = ["enabled", "tenant"]
    search_fields = ["name", "description", "tenant__slug"]
    list_select_related = [
        "tenant",
        "guide_model__provider",
        "specialist_model__provider",
        "vision_model__provider",
    ]
    raw_id_fields = ["guide_model", "specialist_model", "vision_model"]
    readonly_fields = ["id", "created_at", "updated_at"]
