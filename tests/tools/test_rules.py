"""AI rules: CRUD at /api/settings/ai-rules and the prompt helper."""

from __future__ import annotations

import pytest

from apps.tenancy.models import Role
from apps.tenancy.principal import Actor
from apps.tools import rules

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def test_crud_over_http(owner_client):
    created = owner_client.post(
        "/api/settings/ai-rules", {"text": "Answer in French.", "priority": 5, "category": "language"}, format="json"
    )
    assert created.status_code == 201, created.content
    rule_id = created.json()["id"]
    assert created.json() == {**created.json(), "enabled": True, "priority": 5, "category": "language"}

    default = owner_client.post("/api/settings/ai-rules", {"text": "Be brief."}, format="json").json()
    assert (default["priority"], default["category"]) == (0, "general")

    listed = owner_client.get("/api/settings/ai-rules").json()
    assert [r["text"] for r in listed["results"]] == ["Answer in French.", "Be brief."]

    patched = owner_client.patch(f"/api/settings/ai-rules/{rule_id}", {"enabled": False}, format="json")
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    assert patched.json()["text"] == "Answer in French."
    replaced = owner_client.put(f"/api/settings/ai-rules/{rule_id}", {"text": "Answer in German."}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["text"] == "Answer in German."

    assert owner_client.delete(f"/api/settings/ai-rules/{rule_id}").status_code == 204
    assert owner_client.get(f"/api/settings/ai-rules/{rule_id}").status_code == 404


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ""}, {"text": "x" * 2001}, {"text": "x", "priority": 5000}, {"text": "x", "category": "Bad Cat"}],
)
def test_invalid_rules_are_400(owner_client, body):
    response = owner_client.post("/api/settings/ai-rules", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "Validation failed"


def test_only_admins_write_rules(tenant, make_client):
    member = make_client(tenant, role=Role.MEMBER)
    assert member.get("/api/settings/ai-rules").status_code == 200
    assert member.post("/api/settings/ai-rules", {"text": "x"}, format="json").status_code == 403
    assert (
        make_client(tenant, role=Role.ADMIN).post("/api/settings/ai-rules", {"text": "x"}, format="json").status_code
        == 201
    )


def test_the_prompt_has_enabled_rules_by_priority(tenant, other_tenant):
    rules.rule_create(tenant=tenant, actor=ACTOR, text="Low.", priority=-1)
    rules.rule_create(tenant=tenant, actor=ACTOR, text="High.", priority=10, category="safety")
    rules.rule_create(tenant=tenant, actor=ACTOR, text="Off.", enabled=False)
    rules.rule_create(tenant=other_tenant, actor=ACTOR, text="Theirs.")
    text, used = rules.rules_prompt_for(tenant)
    assert text.splitlines()[2:] == ["- [safety] High.", "- [general] Low."]
    assert "Theirs" not in text
    assert "Off" not in text
    assert [(r["priority"], r["included"]) for r in used] == [(10, True), (-1, True)]


def test_rules_past_the_budget_drop_the_lowest_priority(tenant):
    rules.rule_create(tenant=tenant, actor=ACTOR, text="Keep me.", priority=9)
    rules.rule_create(tenant=tenant, actor=ACTOR, text="x" * 1000, priority=1)
    text, used = rules.rules_prompt_for(tenant, token_budget=60)
    assert "Keep me." in text
    assert "xxxx" not in text
    assert [r["included"] for r in used] == [True, False]


def test_no_rules_no_text(tenant, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert rules.rules_prompt_for(tenant) == ("", [])
    assert rules.rules_prompt_for(None) == ("", [])
