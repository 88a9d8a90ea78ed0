"""The model router: which of an agent's models answers a message, and what it may cost.

`select_model()` returns the candidates in fallback order; the turn engine tries them in turn
(through `breaker.guarded_chat`) while they fail with `ProviderUnavailable`.

Order of candidates:
1. the role's model: `vision` when the message has images, `specialist` when the message's
   complexity score reaches ROUTER_SPECIALIST_THRESHOLD, `guide` otherwise; an unset vision or
   specialist model falls back to the guide;
2. the agent's `model_policy.preferred_models`, in the order given (refs `<provider>/<model>`);
3. the guide model, when the role was another one;
4. only when the agent has no model at all (none assigned, none preferred): every enabled model
   of the tenant, cheapest first, so an unconfigured agent still answers.

Only enabled models of enabled providers of the agent's own tenant are considered. Capabilities
filter the list: images need `supports_vision`; `require_tools` / `require_vision` in the policy
drop models without them; a turn that offers tools (`needs_tools`) puts tool-capable models first
without dropping the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.agents import tokens
from apps.agents.models import Agent, CatalogModel, ModelPrice
from apps.agents.providers.base import Usage
from apps.agents.selectors import platform_blocked_ids
from apps.agents.tokens import estimate_tokens

__all__ = [
    "BudgetExceeded",
    "ModelCandidate",
    "ModelSelection",
    "NoModelAvailable",
    "RoutingError",
    "candidates_for",
    "check_cost_limit",
    "complexity_score",
    "cost_usd",
    "estimate_call_cost_usd",
    "estimate_cost_usd",
    "estimate_input_tokens_for",
    "estimate_tokens",
    "output_token_estimate",
    "select_model",
]

DEFAULT_OUTPUT_TOKENS = 1024  # the output estimate for budget checks when the agent sets no maximum
MILLION = Decimal(1_000_000)
USD_PLACES = Decimal("0.000001")


class RoutingError(Exception):
    """Base of the router's refusals; `str(exc)` says what to configure."""


class NoModelAvailable(RoutingError):
    pass


class BudgetExceeded(RoutingError):
    pass


@dataclass(frozen=True)
class ModelCandidate:
    catalog_id: str
    provider_id: str
    provider_name: str
    provider_kind: str
    model_id: str
    ref: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    supports_tools: bool
    supports_vision: bool
    context_window: int
    # The rows themselves, so the engine can call `guarded_chat(candidate.provider, ...)`.
    provider: Any = field(default=None, repr=False, compare=False)
    catalog_model: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_catalog(cls, model: CatalogModel, price: ModelPrice | None = None) -> ModelCandidate:
        """A catalog entry without its own prices (both zero) uses the price table's row."""
        input_price, output_price = model.input_per_mtok, model.output_per_mtok
        if price is not None and not input_price and not output_price:
            input_price, output_price = price.input_per_mtok, price.output_per_mtok
        return cls(
            catalog_id=str(model.pk),
            provider_id=str(model.provider_id),
            provider_name=model.provider.name,
            provider_kind=model.provider.kind,
            model_id=model.model_id,
            ref=model.ref,
            input_per_mtok=Decimal(input_price),
            output_per_mtok=Decimal(output_price),
            supports_tools=model.supports_tools,
            supports_vision=model.supports_vision,
            context_window=model.context_window,
            provider=model.provider,
            catalog_model=model,
        )


@dataclass(frozen=True)
class ModelSelection:
    candidates: list[ModelCandidate]  # fallback order; candidates[0] is `chosen`
    chosen: ModelCandidate
    reason: str
    complexity_score: float
    role: str = "guide"

    def as_json(self) -> dict[str, Any]:
        return {
            "candidates": [c.ref for c in self.candidates],
            "chosen": self.chosen.ref,
            "reason": self.reason,
            "complexity_score": self.complexity_score,
        }


# --- complexity --------------------------------------------------------------------------------

_MULTI_STEP_TERMS = (
    "step by step",
    "step-by-step",
    "analyze",
    "analyse",
    "analysis",
    "compare",
    "comparison",
    "design",
    "architecture",
    "trade-off",
    "tradeoff",
    "evaluate",
    "prove",
    "derive",
    "optimize",
    "optimise",
    "refactor",
    "debug",
    "plan",
    "strategy",
    "explain why",
    "pros and cons",
)


def complexity_score(text: str) -> float:
    """How demanding a message looks, from 0 (trivial) to 1, deterministically.

        score = 0.25·L + 0.25·C + 0.35·K + 0.15·Q      (rounded to 3 decimals)

    L (length)     = min(1, characters / 1500)
    C (code)       = 1 with a fenced ``` block, 0.5 with `inline code` only, else 0
    K (multi-step) = min(1, distinct terms found / 3), terms: "step by step", "analyze",
                     "compare", "design", "architecture", "trade-off", "evaluate", "prove",
                     "derive", "optimize", "refactor", "debug", "plan", "strategy",
                     "explain why", "pros and cons" (and their spelling variants)
    Q (asks)       = min(1, (question marks + numbered or bulleted list lines) / 4)

    "hi" scores 0; a long analytic request with code passes the default threshold of 0.6.
    """
    if not text:
        return 0.0
    lowered = text.lower()
    length = min(1.0, len(text) / 1500)
    if "```" in text:
        code = 1.0
    elif _has_inline_code(text):
        code = 0.5
    else:
        code = 0.0
    terms = {_canonical_term(term) for term in _MULTI_STEP_TERMS if term in lowered}
    multi_step = min(1.0, len(terms) / 3)
    list_lines = sum(1 for line in text.splitlines() if _is_list_line(line))
    asks = min(1.0, (text.count("?") + list_lines) / 4)
    return round(0.25 * length + 0.25 * code + 0.35 * multi_step + 0.15 * asks, 3)


def _canonical_term(term: str) -> str:
    """Spelling variants count once: "step-by-step" is "step by step", "analyse" is "analyze"."""
    return term.replace("-", " ").replace("analyse", "analyze").replace("optimise", "optimize")


def _has_inline_code(text: str) -> bool:
    first = text.find("`")
    return first != -1 and text.find("`", first + 1) > first + 1


def _is_list_line(line: str) -> bool:
    stripped = line.lstrip()
    if stripped[:2] in ("- ", "* ", "• "):
        return True
    head, _, _ = stripped.partition(".")
    return head.isdigit() and len(head) <= 2 and stripped[len(head) : len(head) + 2] == ". "


# --- selection ---------------------------------------------------------------------------------


def _pool(agent: Agent) -> dict[str, CatalogModel]:
    models = (
        CatalogModel.objects.filter(tenant_id=agent.tenant_id, enabled=True, provider__enabled=True)
        .exclude(provider__platform_id__in=platform_blocked_ids(tenant_id=agent.tenant_id))  # revoked by the operator
        .select_related("provider")
        .order_by("provider__name", "model_id")
    )
    return {str(model.pk): model for model in models}


def _prices(models: list[CatalogModel]) -> dict[str, ModelPrice]:
    ids = {m.model_id for m in models if not m.input_per_mtok and not m.output_per_mtok}
    return {p.model_id: p for p in ModelPrice.objects.filter(model_id__in=ids)} if ids else {}


def candidates_for(models: list[CatalogModel]) -> list[ModelCandidate]:
    """Candidates with their effective prices (catalog, else price table), in the given order."""
    prices = _prices(models)
    return [ModelCandidate.from_catalog(model, prices.get(model.model_id)) for model in models]


def select_model(*, agent: Agent, text: str, has_images: bool = False, needs_tools: bool = False) -> ModelSelection:
    """The models to try for a message, in fallback order, and why. See the module docstring."""
    policy = agent.model_policy or {}
    score = complexity_score(text)
    pool = _pool(agent)
    by_ref = {model.ref: model for model in pool.values()}

    if has_images:
        role = "vision"
        role_model_id = agent.vision_model_id or agent.guide_model_id
    elif score >= settings.ROUTER_SPECIALIST_THRESHOLD:
        role = "specialist"
        role_model_id = agent.specialist_model_id or agent.guide_model_id
    else:
        role = "guide"
        role_model_id = agent.guide_model_id

    ordered: list[CatalogModel] = []
    if role_model_id and str(role_model_id) in pool:
        ordered.append(pool[str(role_model_id)])
    ordered += [by_ref[ref] for ref in policy.get("preferred_models") or [] if ref in by_ref]
    if agent.guide_model_id and str(agent.guide_model_id) in pool:
        ordered.append(pool[str(agent.guide_model_id)])
    fallback_to_pool = not ordered and not _has_any_assignment(agent, policy)
    prices = _prices(list(pool.values()))
    if fallback_to_pool:
        ordered = sorted(
            pool.values(), key=lambda m: _price_key(ModelCandidate.from_catalog(m, prices.get(m.model_id)))
        )

    unique: list[CatalogModel] = []
    for model in ordered:
        if model not in unique:
            unique.append(model)
    candidates = [ModelCandidate.from_catalog(m, prices.get(m.model_id)) for m in unique]

    notes: list[str] = []
    needed = []
    if has_images or policy.get("require_vision"):
        needed.append("vision")
        candidates = [c for c in candidates if c.supports_vision]
    if policy.get("require_tools"):
        needed.append("tools")
        candidates = [c for c in candidates if c.supports_tools]
    elif needs_tools and candidates and not candidates[0].supports_tools:
        capable = [c for c in candidates if c.supports_tools]
        if capable:
            candidates = capable + [c for c in candidates if not c.supports_tools]
            notes.append("tool-capable models first")

    if not candidates:
        raise NoModelAvailable(_no_model_message(agent, role, needed, pool_empty=not pool))

    chosen = candidates[0]
    reason = _reason(role, score, chosen, role_model_id, fallback_to_pool, has_images)
    if notes:
        reason += "; " + "; ".join(notes)
    return ModelSelection(candidates=candidates, chosen=chosen, reason=reason, complexity_score=score, role=role)


def _has_any_assignment(agent: Agent, policy: dict[str, Any]) -> bool:
    return bool(
        agent.guide_model_id or agent.specialist_model_id or agent.vision_model_id or policy.get("preferred_models")
    )


def _price_key(candidate: ModelCandidate) -> tuple[Decimal, str]:
    return (candidate.input_per_mtok + candidate.output_per_mtok, candidate.ref)


def _reason(role: str, score: float, chosen: ModelCandidate, role_model_id, fallback: bool, images: bool) -> str:
    threshold = settings.ROUTER_SPECIALIST_THRESHOLD
    if images:
        why = "the message has images: vision role"
    elif role == "specialist":
        why = f"complexity {score} >= {threshold}: specialist role"
    else:
        why = f"complexity {score} < {threshold}: guide role"
    if fallback:
        return f"{why}; the agent has no model assigned, so the cheapest enabled model ({chosen.ref})"
    if role_model_id and chosen.catalog_id == str(role_model_id):
        return f"{why} -> {chosen.ref}"
    return f"{why}; the role's model is unavailable or lacks a needed capability -> {chosen.ref}"


def _no_model_message(agent: Agent, role: str, needed: list[str], *, pool_empty: bool) -> str:
    if pool_empty:
        return (
            f"No model is available for agent '{agent.name}': the tenant has no enabled model of an enabled "
            "provider. Add a provider (POST /api/providers, or set OPENAI_API_KEY, ANTHROPIC_API_KEY or "
            "OLLAMA_HOST and bootstrap) and enable its models."
        )
    if needed:
        return (
            f"No model of agent '{agent.name}' supports {' and '.join(needed)} (role {role}). Assign a model "
            f"with {' and '.join(needed)} support (PUT /api/roster/{agent.name}/model with role "
            f"{'vision' if 'vision' in needed else role}) or relax the model policy."
        )
    return (
        f"No model is available for agent '{agent.name}' (role {role}): its assigned and preferred models are "
        f"disabled or their providers are. Assign an enabled model with PUT /api/roster/{agent.name}/model."
    )


# --- budget ------------------------------------------------------------------------------------


def estimate_cost_usd(candidate: ModelCandidate, input_tokens: int, output_tokens: int) -> Decimal:
    cost = (Decimal(input_tokens) * candidate.input_per_mtok + Decimal(output_tokens) * candidate.output_per_mtok) / (
        MILLION
    )
    return cost.quantize(USD_PLACES)


def cost_usd(candidate: ModelCandidate, usage: Usage) -> Decimal:
    """What a call cost, from the usage the provider reported."""
    return estimate_cost_usd(candidate, usage.input_tokens, usage.output_tokens)


def output_token_estimate(agent: Agent) -> int:
    """The output side of a call's estimate: the agent's cap, which the provider enforces."""
    return agent.max_output_tokens or DEFAULT_OUTPUT_TOKENS


def estimate_input_tokens_for(candidate: ModelCandidate, messages, tools=()) -> int:
    """The input tokens of one call to `candidate`: its tokenizer (tiktoken for OpenAI-family
    models, characters / 4 otherwise), tool schemas and images included."""
    return tokens.estimate_input_tokens(
        messages, tools, model_id=candidate.model_id, provider_kind=candidate.provider_kind
    )


def estimate_call_cost_usd(*, agent: Agent, candidate: ModelCandidate, input_tokens: int) -> Decimal:
    """What a budget reserves for one call: the input estimate plus the whole output cap."""
    return estimate_cost_usd(candidate, input_tokens, output_token_estimate(agent))


def check_cost_limit(
    *, agent: Agent, candidate: ModelCandidate, input_tokens: int, spent_usd: Decimal = Decimal("0")
) -> Decimal:
    """The estimated cost of one call to `candidate`; raises BudgetExceeded when the turn's
    `spent_usd` plus it is above the agent's `model_policy.max_cost_usd` (per turn). The output
    side is estimated at the agent's `max_output_tokens`, or 1024 tokens when it sets none.

    The engine checks this before the first call, to fail early with a clear message; the
    reservation (apps/conversations/budgets.py) enforces the same limit on every call."""
    output_tokens = output_token_estimate(agent)
    estimate = estimate_cost_usd(candidate, input_tokens, output_tokens)
    limit = (agent.model_policy or {}).get("max_cost_usd")
    if limit is None:
        return estimate
    limit_usd = Decimal(str(limit))
    if spent_usd + estimate > limit_usd:
        spent = f" on top of the ${spent_usd} this turn has spent" if spent_usd else ""
        raise BudgetExceeded(
            f"The estimated cost of this call, ${estimate} ({input_tokens} input + {output_tokens} output tokens "
            f"on {candidate.ref}){spent}, exceeds the limit of agent '{agent.name}', ${limit_usd} per turn "
            "(model_policy.max_cost_usd). Raise the limit, pick a cheaper model, lower max_output_tokens "
            "or shorten the conversation."
        )
    return estimate
