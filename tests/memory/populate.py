"""Memory's rows for the cross-tenant isolation test (called from tests.factories.populate_tenant)."""

from __future__ import annotations

from apps.memory import services
from apps.memory.models import MemoryEntry, MemoryKind
from apps.tenancy.models import Tenant


def populate_memory(tenant: Tenant) -> list[str]:
    """One entry of each kind for `tenant`; returns every id and name a memory route could be given.

    Collection and category names carry the tenant's slug: the default collections (`semantic`,
    `episodic`, `working`) exist in every tenant that has memory, so the probe must use names only
    this tenant has. Entries are stored unembedded (no model is loaded for the probe)."""
    from apps.agents.models import Agent
    from apps.conversations.models import ChatSession, Turn

    agent = Agent.objects.filter(tenant=tenant).first()
    session = ChatSession.objects.filter(tenant=tenant).first()
    turn = Turn.objects.filter(tenant=tenant).first()
    collection, category = f"{tenant.slug}-notes", f"{tenant.slug}-facts"
    fact = services.memory_entry_create(
        tenant=tenant,
        kind=MemoryKind.SEMANTIC,
        content=f"{tenant.slug} keeps its invoices in the blue folder",
        collection=collection,
        category=category,
        agent=agent,
    )
    episode = services.memory_entry_create(
        tenant=tenant,
        kind=MemoryKind.EPISODIC,
        content=f"User: where are {tenant.slug}'s invoices?\nAssistant: in the blue folder",
        summary=f"User asked where {tenant.slug}'s invoices are",
        keywords=["invoices", "folder"],
        topic="invoices",
        agent=agent,
        session_id=getattr(session, "pk", None),
        turn_id=getattr(turn, "pk", None),
    )
    identifiers = [str(fact.pk), str(episode.pk), collection, category]
    if session is not None:
        working = services.memory_entry_create(
            tenant=tenant, kind=MemoryKind.WORKING, content="user: where are the invoices?", session_id=session.pk
        )
        identifiers.append(str(working.pk))
    assert MemoryEntry.objects.filter(tenant=tenant).exists()
    return identifiers
