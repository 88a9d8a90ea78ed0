"""`remember` and `recall`: the agent's long-term memory as tools.

`remember(fact, category)` stores a semantic fact for the calling agent (the same fact in the same
category is stored once); `recall(query)` searches the agent's memories and the tenant-wide ones
(hybrid search: by meaning and by words). Tenant, agent and session come from the ToolContext the
server fills; nothing in the arguments can reach another tenant's or agent's memory.

Registered into `builtin_registry` by `apps.tools.apps.ToolsConfig.ready()`: this module needs
the memory models, which the registry's own import (at the bottom of apps/tools/registry.py) may
run before Django's app registry is ready.
"""

from __future__ import annotations

import re
from typing import Any

from apps.core.redaction import redact_text
from apps.tools.registry import SideEffect, Tool, ToolContext, ToolError

FACT_MAX_CHARS = 2000
RECALL_DEFAULT_K = 5
RECALL_MAX_K = 20
DEFAULT_CATEGORY = "general"
_CATEGORY_CLEAN_RE = re.compile(r"[^a-z0-9_-]+")


def category_name(raw: str | None) -> str:
    """A free-form category from a model ("Food preferences") as a path-safe name ("food-preferences")."""
    cleaned = _CATEGORY_CLEAN_RE.sub("-", (raw or "").strip().lower()).strip("-_")[:64]
    return cleaned or DEFAULT_CATEGORY


def _session_id(context: ToolContext):
    """The turn's session, which the server put in the context (a model cannot name another)."""
    from apps.core.ids import parse_uuid

    return parse_uuid(context.session_id) if context.session_id else None


def remember(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    from apps.memory.services import memory_fact_remember

    if context.tenant is None:
        raise ToolError("Memory needs a tenant; this call has none.")
    # The model may be asked to remember a credential ("remember my token ghp_..."): the fact is
    # stored redacted (memory_fact_remember does it for every writer; here too, so the dry run and
    # the call agree on what would be stored).
    fact = redact_text(" ".join(str(arguments["fact"]).split()))
    if not fact:
        raise ToolError("The fact is empty.")
    category = category_name(arguments.get("category"))
    entry, created = memory_fact_remember(
        tenant=context.tenant, agent=context.agent, fact=fact, category=category, session_id=_session_id(context)
    )
    return {
        "stored": created,
        "id": str(entry.pk),
        "category": entry.category,
        "note": "Saved." if created else "Already known; nothing new stored.",
    }


def recall(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    from apps.memory.models import MemoryKind
    from apps.memory.selectors import memory_search

    if context.tenant is None:
        raise ToolError("Memory needs a tenant; this call has none.")
    query = str(arguments["query"]).strip()
    if not query:
        raise ToolError("The query is empty.")
    hits = memory_search(
        tenant=context.tenant,
        query=query,
        mode="hybrid",
        k=int(arguments.get("k") or RECALL_DEFAULT_K),
        agent=context.agent,
        kinds=(MemoryKind.SEMANTIC, MemoryKind.EPISODIC),
    )
    episodic = MemoryKind.EPISODIC
    return {
        "query": query,
        "memories": [
            {
                "kind": hit.entry.kind,
                "category": hit.entry.category,
                "text": hit.entry.summary if hit.entry.kind == episodic and hit.entry.summary else hit.entry.content,
                "when": hit.entry.created_at.date().isoformat(),
                "score": round(hit.score, 4),
                "matchType": hit.match_type,
            }
            for hit in hits
        ],
    }


def remember_dry_run(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """What `remember` would store, without storing it."""
    from apps.memory.models import MemoryEntry, MemoryKind

    fact = redact_text(" ".join(str(arguments.get("fact") or "").split()))
    category = category_name(arguments.get("category"))
    known = context.tenant is not None and (
        MemoryEntry.objects.filter(
            tenant=context.tenant,
            agent=context.agent,
            kind=MemoryKind.SEMANTIC,
            category=category,
            content__iexact=fact,
        ).exists()
    )
    if known:
        warning = "Already known; nothing would be stored."
        return {"changes": [], "reversible": True, "rollback": "", "warnings": [warning]}
    change = {"action": "create", "kind": "semantic", "collection": "semantic", "category": category, "content": fact}
    return {
        "changes": [change],
        "reversible": True,
        "rollback": "Delete the entry: DELETE /api/memory/entry/semantic/{entry_id}.",
        "warnings": [],
    }


remember_tool = Tool(
    name="remember",
    description="Save a fact to long-term memory so it can be recalled in later conversations "
    "(for example the user's name, preferences, decisions). One short, self-contained fact per call.",
    parameters={
        "type": "object",
        "properties": {
            "fact": {
                "type": "string",
                "minLength": 1,
                "maxLength": FACT_MAX_CHARS,
                "description": "The fact, written so it makes sense on its own later.",
            },
            "category": {
                "type": "string",
                "maxLength": 64,
                "description": "A short topic such as 'preferences' or 'people' (default 'general').",
            },
        },
        "required": ["fact"],
        "additionalProperties": False,
    },
    handler=remember,
    side_effect=SideEffect.WRITE,
    dry_run=remember_dry_run,
)

recall_tool = Tool(
    name="recall",
    description="Search long-term memory (saved facts and past conversations) by meaning and keywords.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 500, "description": "What to look for."},
            "k": {
                "type": "integer",
                "minimum": 1,
                "maximum": RECALL_MAX_K,
                "description": f"How many memories (default {RECALL_DEFAULT_K}).",
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    handler=recall,
    side_effect=SideEffect.READ,
)

MEMORY_TOOLS = (remember_tool, recall_tool)
