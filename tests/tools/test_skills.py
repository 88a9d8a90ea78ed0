"""Skills: the catalog on disk, installation, per-agent activation, the prompt helper, reload and audit."""

from __future__ import annotations

import pytest

from apps.agents.models import Agent
from apps.tenancy.models import Role
from apps.tenancy.principal import Actor
from apps.tools import skills
from apps.tools.models import AgentSkill, Skill

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("skills_dir")]
ACTOR = Actor.system("test")


@pytest.fixture
def agent(tenant) -> Agent:
    return Agent.objects.create(tenant=tenant, name="writer", system_prompt="You write.")


def activate(tenant, agent, name: str) -> Skill:
    return skills.skill_activate(tenant=tenant, actor=ACTOR, name=name, agent=agent)


# --- the catalog ---------------------------------------------------------------------------------------


def test_the_shipped_catalog_has_valid_skills(settings):
    found, problems = skills.catalog_scan()
    assert problems == []
    assert {"summarizer", "code-reviewer", "researcher"} <= set(found)
    for entry in found.values():
        assert entry.description
        assert entry.version
        assert entry.instructions


def test_invalid_catalog_files_are_reported_not_loaded(skills_dir):
    (skills_dir / "nofront.md").write_text("just text")
    (skills_dir / "mismatch.md").write_text("---\nname: other\ndescription: x\nversion: 1\n---\nBody")
    (skills_dir / "folder-skill").mkdir()
    (skills_dir / "folder-skill" / "SKILL.md").write_text("---\nname: folder-skill\nversion: 2\n---\nDo it.")
    found, problems = skills.catalog_scan()
    assert "folder-skill" in found
    assert "nofront" not in found
    assert "other" not in found
    assert len(problems) == 2


def test_a_symlink_out_of_the_catalog_is_not_read(skills_dir, tmp_path):
    outside = tmp_path / "evil.md"
    outside.write_text("---\nname: evil\n---\nLeak.")
    (skills_dir / "evil.md").symlink_to(outside)
    assert skills.catalog_get("evil") is None
    assert "evil" not in skills.catalog_scan()[0]


# --- the prompt ------------------------------------------------------------------------------------------


def test_enabled_skills_of_the_agent_go_into_the_prompt(tenant, agent, other_tenant):
    activate(tenant, agent, "summarizer")
    activate(tenant, agent, "code-reviewer")
    other_agent = Agent.objects.create(tenant=tenant, name="other")
    activate(tenant, other_agent, "researcher")

    text, used = skills.skills_prompt_for(agent, token_budget=5000)
    assert text.startswith("# Skills")
    assert "## Skill: code-reviewer (v1.0.0)" in text
    assert "## Skill: summarizer (v1.0.0)" in text
    assert "researcher" not in text
    assert [(s["name"], s["included"]) for s in used] == [("code-reviewer", True), ("summarizer", True)]
    assert all(len(s["sha256"]) == 64 for s in used)


def test_a_disabled_skill_leaves_the_prompt(tenant, agent):
    skill = activate(tenant, agent, "summarizer")
    skills.skill_toggle(tenant=tenant, actor=ACTOR, skill=skill, enabled=False)
    assert skills.skills_prompt_for(agent) == ("", [])


def test_skills_that_do_not_fit_the_budget_are_left_out(tenant, agent):
    skills.skill_create(tenant=tenant, actor=ACTOR, name="big", instructions="x" * 4000)
    skills.skill_create(tenant=tenant, actor=ACTOR, name="small", instructions="Be brief.")
    activate(tenant, agent, "big")
    activate(tenant, agent, "small")
    text, used = skills.skills_prompt_for(agent, token_budget=200)
    assert "## Skill: small" in text
    assert "## Skill: big" not in text
    assert {s["name"]: s["included"] for s in used} == {"big": False, "small": True}
    assert skills.skills_prompt_for(agent, token_budget=0)[0] == ""


def test_the_prompt_helper_is_one_query(tenant, agent, django_assert_num_queries):
    activate(tenant, agent, "summarizer")
    with django_assert_num_queries(1):
        skills.skills_prompt_for(agent)


def test_an_agent_without_skills_gets_nothing(agent):
    assert skills.skills_prompt_for(agent) == ("", [])
    assert skills.skills_prompt_for(None) == ("", [])


# --- reload and audit ------------------------------------------------------------------------------------


def test_the_audit_finds_a_file_edited_on_disk_and_reload_takes_it(tenant, skills_dir):
    skill = skills.skill_install(tenant=tenant, actor=ACTOR, name="summarizer")
    assert skills.skills_audit(tenant=tenant) == {"ok": True, "checked": 1, "problems": []}

    path = skills_dir / "summarizer.md"
    path.write_text(path.read_text().replace("version: 1.0.0", "version: 1.1.0") + "\nAlso: be kind.\n")
    audit = skills.skills_audit(tenant=tenant)
    assert audit["ok"] is False
    assert audit["problems"] == [
        {
            "skill_id": str(skill.pk),
            "name": "summarizer",
            "problem": "hash_mismatch",
            "db_sha256": skill.sha256,
            "disk_sha256": skills.sha256_text(path.read_text()),
            "path": "summarizer.md",
        }
    ]

    report = skills.skills_reload(tenant=tenant, actor=ACTOR)
    assert report == {"updated": ["summarizer"], "unchanged": [], "missing": []}
    skill.refresh_from_db()
    assert skill.version == "1.1.0"
    assert "be kind" in skill.instructions
    assert skills.skills_audit(tenant=tenant)["ok"] is True


def test_the_audit_finds_a_missing_file(tenant, skills_dir):
    skills.skill_install(tenant=tenant, actor=ACTOR, name="researcher")
    (skills_dir / "researcher.md").unlink()
    audit = skills.skills_audit(tenant=tenant)
    assert [(p["name"], p["problem"], p["disk_sha256"]) for p in audit["problems"]] == [
        ("researcher", "missing_file", None)
    ]
    assert skills.skills_reload(tenant=tenant, actor=ACTOR)["missing"] == ["researcher"]


# --- the API ---------------------------------------------------------------------------------------------


def test_catalog_install_activate_and_list(tenant, agent, owner_client):
    catalog = owner_client.get("/api/skills/catalog").json()
    by_name = {entry["name"]: entry for entry in catalog["skills"]}
    assert by_name["summarizer"]["installed"] is False

    installed = owner_client.post("/api/skills/catalog/install", {"name": "summarizer"}, format="json")
    assert installed.status_code == 201, installed.content
    skill_id = installed.json()["id"]
    assert installed.json()["source"] == "catalog"
    assert owner_client.post("/api/skills/catalog/install", {"name": "summarizer"}, format="json").status_code == 409
    assert owner_client.post("/api/skills/catalog/install", {"name": "nope"}, format="json").status_code == 400

    activated = owner_client.post(
        "/api/skills/catalog/activate", {"name": "researcher", "agent": "writer"}, format="json"
    )
    assert activated.status_code == 200, activated.content
    assert activated.json()["agents"] == ["writer"]  # installed on the way
    assert (
        owner_client.post("/api/skills/catalog/activate", {"name": "researcher", "agent": "ghost"}, format="json")
    ).status_code == 400

    listed = owner_client.get("/api/skills").json()
    assert [s["name"] for s in listed["results"]] == ["researcher", "summarizer"]
    assert owner_client.get(f"/api/skills/{skill_id}").json()["name"] == "summarizer"
    after = {e["name"]: e for e in owner_client.get("/api/skills/catalog").json()["skills"]}
    assert after["summarizer"]["up_to_date"] is True
    assert after["summarizer"]["skill_id"] == skill_id
    assert after["code-reviewer"]["installed"] is False

    deactivated = owner_client.post(
        "/api/skills/catalog/deactivate", {"name": "researcher", "agent": "writer"}, format="json"
    )
    assert deactivated.json()["agents"] == []


def test_toggle_delete_reload_and_audit_over_http(tenant, agent, owner_client, skills_dir):
    skill_id = owner_client.post("/api/skills/catalog/install", {"name": "code-reviewer"}, format="json").json()["id"]
    toggled = owner_client.put(f"/api/skills/{skill_id}/toggle", {"enabled": False}, format="json")
    assert toggled.json()["enabled"] is False
    assert owner_client.put(f"/api/skills/{skill_id}/toggle").json()["enabled"] is True

    (skills_dir / "code-reviewer.md").write_text((skills_dir / "code-reviewer.md").read_text() + "\nMore.\n")
    audit = owner_client.get("/api/skills/audit").json()
    assert audit["ok"] is False
    assert audit["problems"][0]["problem"] == "hash_mismatch"
    assert owner_client.post("/api/skills/reload").json()["updated"] == ["code-reviewer"]
    assert owner_client.get("/api/skills/audit").json()["ok"] is True

    assert owner_client.delete(f"/api/skills/{skill_id}").status_code == 204
    assert owner_client.get(f"/api/skills/{skill_id}").status_code == 404
    assert not AgentSkill.objects.filter(skill_id=skill_id).exists()


def test_custom_skills_and_bad_input(owner_client):
    created = owner_client.post(
        "/api/skills", {"name": "tone", "instructions": "Be warm.", "description": "Warmth"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["source"] == "custom"
    assert len(created.json()["sha256"]) == 64
    assert owner_client.post("/api/skills", {"name": "tone", "instructions": "x"}, format="json").status_code == 409
    assert owner_client.post("/api/skills", {"name": "Bad Name", "instructions": "x"}, format="json").status_code == 400
    assert owner_client.get("/api/skills/not-a-uuid").status_code == 404
    assert owner_client.get("/api/skills/bad.id").status_code == 400


def test_skill_writes_need_the_admin_role(tenant, make_client, owner_client):
    skill_id = owner_client.post("/api/skills/catalog/install", {"name": "summarizer"}, format="json").json()["id"]
    member = make_client(tenant, role=Role.MEMBER)
    assert member.get("/api/skills").status_code == 200
    assert member.get("/api/skills/catalog").status_code == 200
    assert member.get("/api/skills/audit").status_code == 200
    assert member.put(f"/api/skills/{skill_id}/toggle").status_code == 403
    assert member.delete(f"/api/skills/{skill_id}").status_code == 403
    assert member.post("/api/skills/reload").status_code == 403
    assert member.post("/api/skills/catalog/install", {"name": "researcher"}, format="json").status_code == 403
