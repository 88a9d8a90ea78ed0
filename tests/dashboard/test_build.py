"""The Build pages in a real browser: an admin creates and edits an agent (an inline error first),
adds a provider against the stub model server and tests it, sets a policy rule and simulates the
tool, edits a workspace file and restores it; a member sees no edit controls and is refused."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.agents import services as agent_services
from apps.agents.models import Agent, Provider
from apps.tenancy.principal import Actor
from apps.tools import workspace
from tests.stubs.model_server import model_server  # noqa: F401 - the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _offline_provider(tenant):
    return agent_services.provider_create(
        tenant=tenant, actor=Actor.system("test"), kind="offline", name="offline", models=["offline-small"]
    )


def test_an_admin_creates_an_agent_after_an_inline_error_then_edits_it(page, sign_in):
    _, tenant = sign_in("admin")
    _offline_provider(tenant)
    page.goto("/agents/")
    expect(page.get_by_role("heading", name="No agents yet")).to_be_visible()
    page.get_by_role("link", name="Create an agent").click()

    page.get_by_label("Name", exact=True).fill("research helper")  # a space: not a slug
    page.get_by_label("Guide model").select_option("offline/offline-small")
    page.get_by_label("System prompt").fill("You answer research questions.")
    page.get_by_label("calculator").check()
    page.get_by_role("button", name="Create agent").click()
    expect(page.locator("#f-name-error")).to_contain_text("letters, numbers, underscores or hyphens")
    expect(page.get_by_label("System prompt")).to_have_value("You answer research questions.")  # kept
    expect(page.get_by_label("calculator")).to_be_checked()

    page.get_by_label("Name", exact=True).fill("research-helper")
    page.get_by_role("button", name="Create agent").click()
    expect(page.locator(".flash.success")).to_contain_text("Agent research-helper created")
    agent = Agent.objects.get(tenant=tenant, name="research-helper")
    assert agent.guide_model.ref == "offline/offline-small"
    assert agent.enabled_tools == ["calculator"]

    page.get_by_label("Persona").fill("Dry and precise.")
    page.get_by_label("Max steps").fill("4")
    page.get_by_label("Max cost per turn (USD)").fill("0.05")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator(".flash.success")).to_contain_text("saved")
    agent.refresh_from_db()
    assert (agent.persona, agent.max_steps, agent.model_policy["max_cost_usd"]) == ("Dry and precise.", 4, 0.05)

    page.goto("/agents/")
    row = page.locator(f"#agent-{agent.pk}")
    row.get_by_role("button", name="Disable").click()  # htmx swaps the row
    expect(row.get_by_text("Disabled")).to_be_visible()
    agent.refresh_from_db()
    assert agent.enabled is False


def test_an_admin_adds_a_provider_on_the_stub_tests_it_and_lists_its_models(page, sign_in, model_server):  # noqa: F811
    sign_in("admin")
    page.goto("/providers/")
    expect(page.get_by_role("heading", name="No providers yet")).to_be_visible()
    page.get_by_label("Kind").select_option("openai_compatible")
    page.get_by_label("Name").fill("stub")
    page.get_by_label("Base URL").fill(model_server.openai_base_url)
    page.get_by_label("API key").fill("sk-stub-0123456789abcdefWXYZ")
    page.get_by_role("button", name="Add provider").click()
    expect(page.locator(".flash.success")).to_contain_text("Provider stub added")
    expect(page.get_by_test_id("key-hint")).to_have_text(re.compile(r"…WXYZ$"))
    assert "0123456789abcdef" not in page.content()  # the key is write-only

    page.get_by_role("button", name="Test connection").click()
    # The first call out of the server process imports the provider SDK: seconds on a busy machine.
    expect(page.locator("#probe")).to_contain_text("stub is reachable: 2 models listed", timeout=30_000)
    assert [r.path for r in model_server.log] == ["/v1/models"]
    page.get_by_role("link", name="List the endpoint's models").click()
    expect(page.locator(".live-models")).to_contain_text("stub-small")
    expect(page.locator(".live-models")).to_contain_text("stub-large")
    assert Provider.objects.get(name="stub").api_key_hint.endswith("WXYZ")


def test_a_policy_rule_then_simulating_the_tool_shows_the_rule_decides(page, sign_in):
    sign_in("admin")
    page.goto("/policy/")
    expect(page.get_by_text("No tool rules")).to_be_visible()
    page.locator("#r-tool").fill("calculator")
    page.get_by_label("Decision").select_option("require_approval")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator(".flash.success")).to_contain_text("calculator is require approval for the tenant")
    expect(page.locator("#tool-rules")).to_contain_text("Require approval")

    page.locator("#sim-tool").fill("calculator")
    page.get_by_label("Arguments (JSON)").fill('{"expression": "2+2"')  # not JSON
    page.get_by_role("button", name="Simulate").click()
    expect(page.locator("#simulation")).to_contain_text("Not JSON")
    page.get_by_label("Arguments (JSON)").fill('{"expression": "2+2"}')
    page.get_by_role("button", name="Simulate").click()
    expect(page.locator("#simulation .badge")).to_have_text("Require approval")
    expect(page.locator("#simulation .sim-reason")).to_have_text("tenant rule for calculator: require_approval")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove the rule for calculator").click()
    expect(page.locator(".flash.success")).to_contain_text("the default applies again")
    page.locator("#sim-tool").fill("calculator")
    page.get_by_label("Arguments (JSON)").fill('{"expression": "2+2"}')
    page.get_by_role("button", name="Simulate").click()
    expect(page.locator("#simulation .sim-reason")).to_contain_text("no rule for this tool")


def test_a_workspace_edit_keeps_a_backup_that_restores_the_old_text(page, sign_in):
    _, tenant = sign_in("admin")
    workspace.file_write(tenant=tenant, path="notes/plan.md", content="first draft")
    page.goto("/workspace/")
    page.get_by_role("link", name="notes/").click()
    page.get_by_role("link", name="plan.md").click()
    expect(page.get_by_label("Content")).to_have_value("first draft")
    expect(page.get_by_text("No backups yet")).to_be_visible()

    page.get_by_label("Content").fill("second draft")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash.success")).to_contain_text("notes/plan.md saved")
    expect(page.get_by_label("Content")).to_have_value("second draft")
    assert workspace.file_read(tenant=tenant, path="notes/plan.md")["content"] == "second draft"

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".backup-list").get_by_role("button", name="Restore").click()
    expect(page.locator(".flash.success")).to_contain_text("restored from the backup")
    expect(page.get_by_label("Content")).to_have_value("first draft")
    expect(page.locator(".backup-list li")).to_have_count(2)  # the restore backed up "second draft"


def test_a_member_sees_no_edit_controls_and_the_server_refuses_a_post(page, sign_in, dashboard_server):
    _, tenant = sign_in("member")
    model = _offline_provider(tenant).models.get()
    agent = agent_services.agent_create(
        tenant=tenant, actor=Actor.system("test"), name="helper", system_prompt="Be kind.", guide_model=model
    )
    page.goto("/agents/")
    expect(page.get_by_role("link", name="helper")).to_be_visible()
    expect(page.get_by_role("link", name="New agent")).to_have_count(0)
    expect(page.get_by_role("button", name="Disable")).to_have_count(0)
    page.get_by_role("link", name="View").click()
    expect(page.get_by_label("System prompt")).to_be_disabled()
    expect(page.get_by_role("button", name="Save changes")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)

    page.goto("/policy/")
    expect(page.get_by_role("button", name="Save rule")).to_have_count(0)
    expect(page.get_by_role("button", name="Enter safe mode")).to_have_count(0)
    expect(page.get_by_role("button", name="Simulate")).to_be_visible()  # members may simulate

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"/agents/{agent.pk}/",
        form={"name": "hijacked", "system_prompt": "Be mean."},
        headers={"X-CSRFToken": csrf, "Referer": dashboard_server.url + "/"},
    )
    assert response.status == 403
    agent.refresh_from_db()
    assert (agent.name, agent.system_prompt) == ("helper", "Be kind.")
