"""The `remember` and `recall` built-in tools."""

from __future__ import annotations

import json

import pytest

from apps.memory.models import MemoryEntry, MemoryKind
from apps.tools.builtins.memory import category_name
from apps.tools.registry import SideEffect, ToolContext, builtin_registry, execute_tool, tools_for_agent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hashing")]


def call(name: str, arguments: dict, context: ToolContext):
    outcome = execute_tool(tool=builtin_registry.get(name), arguments=arguments, context=context)
    return outcome, (json.loads(outcome.output) if outcome.ok else None)


def test_the_tools_are_built_ins_an_agent_can_enable(agent):
    assert builtin_registry.get("remember").side_effect == SideEffect.WRITE
    assert builtin_registry.get("recall").side_effect == SideEffect.READ
    agent.enabled_tools = [*agent.enabled_tools, "remember", "recall"]
    assert {"remember", "recall"} <= {tool.name for tool in tools_for_agent(agent)}


def test_remember_stores_a_fact_for_the_agent_once(tenant, agent, new_session):
    session_id = new_session()
    context = ToolContext(tenant=tenant, agent=agent, session_id=session_id, turn_id="")

    fact = {"fact": "The user's dog is called Biscuit", "category": "Pets & animals"}
    outcome, result = call("remember", fact, context)
    _, again = call("remember", {"fact": "the user's dog is called  Biscuit", "category": "pets-animals"}, context)

    assert outcome.ok, outcome.error
    assert result["stored"] is True
    assert again == {**result, "stored": False, "note": "Already known; nothing new stored."}
    entry = MemoryEntry.objects.get(pk=result["id"])
    assert (entry.kind, entry.category, entry.agent, str(entry.session_id)) == (
        MemoryKind.SEMANTIC,
        "pets-animals",
        agent,
        session_id,
    )


def test_recall_finds_the_agents_and_the_tenants_memories_only(tenant, other_tenant, agent, remember):
    from apps.agents.services import agent_create
    from apps.tenancy.principal import Actor

    other_agent = agent_create(tenant=tenant, actor=Actor.system("test"), name="other")
    remember(tenant, "the dog is called Biscuit", agent=agent, category="pets")
    remember(tenant, "the office dog is called Rex")  # tenant-wide
    remember(tenant, "the other agent's dog is called Fido", agent=other_agent)
    remember(other_tenant, "their dog is called Max")

    context = ToolContext(tenant=tenant, agent=agent)
    outcome, result = call("recall", {"query": "what is the dog called", "k": 5}, context)

    assert outcome.ok, outcome.error
    texts = {m["text"] for m in result["memories"]}
    assert texts == {"the dog is called Biscuit", "the office dog is called Rex"}
    assert {m["matchType"] for m in result["memories"]} <= {"vector", "keyword", "hybrid"}


def test_the_tools_refuse_bad_arguments_without_failing_the_turn(tenant, agent):
    context = ToolContext(tenant=tenant, agent=agent)
    outcome, _ = call("remember", {"fact": "x" * 3000}, context)
    assert not outcome.ok
    assert "fact" in outcome.error
    outcome, _ = call("recall", {"query": "dog", "k": 500}, context)
    assert not outcome.ok
    outcome, _ = call("remember", {"fact": "x"}, ToolContext(tenant=None))
    assert outcome.error == "Memory needs a tenant; this call has none."


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("Food preferences", "food-preferences"),
        ("", "general"),
        (None, "general"),
        ("../../etc", "etc"),
        ("ok_1", "ok_1"),
    ],
)
def test_category_names_from_models_become_path_safe(raw, name):
    assert category_name(raw) == name


def test_remember_dry_run_describes_the_write_without_making_it(tenant, agent):
    tool = builtin_registry.get("remember")
    context = ToolContext(tenant=tenant, agent=agent)

    preview = tool.dry_run(context, {"fact": "Likes green tea", "category": "Food"})

    change = {"action": "create", "kind": "semantic", "collection": "semantic", "category": "food"}
    assert preview["changes"] == [{**change, "content": "Likes green tea"}]
    assert not MemoryEntry.objects.exists()
    call("remember", {"fact": "Likes green tea", "category": "Food"}, context)
    assert tool.dry_run(context, {"fact": "likes green tea", "category": "food"})["changes"] == []
