"""AI rules: the tenant's standing instructions, added to every agent's system prompt."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from apps.agents.tokens import estimate_tokens
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor
from apps.tenancy.services import audit_record
from apps.tools.models import AiRule

RULE_MAX_CHARS = 2000
RULES_HEADER = "# Rules set by your organization\nFollow these in every answer; a higher rule wins a conflict."
_FIELDS = ("text", "priority", "category", "enabled")


def rule_list(*, tenant: Tenant):
    return AiRule.objects.filter(tenant=tenant).order_by("-priority", "created_at")


def _audit(tenant: Tenant, actor: Actor, action: str, rule: AiRule, data: dict | None = None) -> None:
    audit_record(tenant=tenant, actor=actor, action=action, target_type="ai_rule", target_id=str(rule.pk), data=data)


def rule_create(
    *, tenant: Tenant, actor: Actor, text: str, priority: int = 0, category: str = "general", enabled: bool = True
) -> AiRule:
    with transaction.atomic():
        rule = AiRule.objects.create(
            tenant=tenant, text=text.strip(), priority=priority, category=category, enabled=enabled
        )
        _audit(tenant, actor, "ai_rule.created", rule, {"category": category, "priority": priority})
    return rule


def rule_update(*, tenant: Tenant, actor: Actor, rule: AiRule, **changes: Any) -> AiRule:
    changes = {key: value for key, value in changes.items() if key in _FIELDS}
    if "text" in changes:
        changes["text"] = changes["text"].strip()
    with transaction.atomic():
        AiRule.objects.filter(pk=rule.pk, tenant=tenant).update(**changes)
        _audit(tenant, actor, "ai_rule.updated", rule, {"fields": sorted(changes)})
    rule.refresh_from_db()
    return rule


def rule_delete(*, tenant: Tenant, actor: Actor, rule: AiRule) -> None:
    with transaction.atomic():
        _audit(tenant, actor, "ai_rule.deleted", rule, {"text": rule.text[:200]})
        AiRule.objects.filter(pk=rule.pk, tenant=tenant).delete()


def rules_prompt_for(tenant: Tenant, token_budget: int | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The system-prompt section for the tenant's enabled rules, highest priority first, and
    what went into it. Rules past `token_budget` (RULES_PROMPT_MAX_TOKENS by default) are left
    out, the lowest priorities first (`included: false`). One query; ("", []) without rules."""
    if tenant is None:
        return "", []
    budget = settings.RULES_PROMPT_MAX_TOKENS if token_budget is None else token_budget
    rules = list(
        AiRule.objects.filter(tenant_id=tenant.pk, enabled=True)
        .order_by("-priority", "created_at")
        .only("id", "text", "priority", "category")
    )
    if not rules:
        return "", []
    remaining = budget - estimate_tokens(RULES_HEADER)
    lines, used = [], []
    for rule in rules:
        line = f"- [{rule.category}] {rule.text.strip()}"
        tokens = estimate_tokens(line) + 1
        included = tokens <= remaining
        if included:
            lines.append(line)
            remaining -= tokens
        used.append(
            {
                "id": str(rule.pk),
                "category": rule.category,
                "priority": rule.priority,
                "tokens": tokens,
                "included": included,
            }
        )
    text = "\n".join([RULES_HEADER, *lines]) if lines else ""
    return text, used
