"""The memory page (`/memory/`, `/memory/timeline/`): hybrid search, collections, deleting one
entry, ticked entries, clearing a collection (admin), the episodic timeline of real turns, the
empty states, and the roles the memory API asks for."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from apps.agents.models import Agent
from apps.agents.services import tenant_bootstrap_agents
from apps.conversations import services as conversations
from apps.memory.models import MemoryEntry
from apps.memory.services import memory_entry_create
from apps.tenancy.principal import Actor
from tests.factories import MembershipFactory, TenantFactory

pytestmark = [pytest.mark.django_db(transaction=True)]

FACTS = {
    "preferences": ["Ada prefers green tea in the morning", "Ada likes short answers", "Ada reads in French"],
    "projects": ["The billing migration ships in March"],
}


def remember(tenant) -> dict[str, MemoryEntry]:
    made = {}
    for collection, texts in FACTS.items():
        for text in texts:
            made[text] = memory_entry_create(tenant=tenant, content=text, collection=collection, category=collection)
    return made


def accept_dialogs(page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


@pytest.mark.e2e
def test_a_member_searches_and_deletes_one_entry_and_ticked_ones(page, sign_in):
    _, tenant = sign_in("member")
    made = remember(tenant)
    accept_dialogs(page)
    page.goto("/memory/")
    entries = page.get_by_test_id("memory-entries")
    expect(entries.locator("tbody tr")).to_have_count(4)
    expect(page.locator(".collection-chips")).to_contain_text("preferences")
    expect(page.get_by_role("button", name="Clear")).to_have_count(0)  # admins only

    page.get_by_label("Search memory").fill("green tea")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name="for “green tea”")).to_be_visible()
    expect(entries.locator("tbody tr").first).to_contain_text("green tea")

    page.get_by_role("link", name="Clear filters").click()
    tea = made["Ada prefers green tea in the morning"]
    page.locator(f"#entry-{tea.pk}").get_by_role("button", name="Delete entry").click()
    expect(page.locator(f"#entry-{tea.pk}")).to_have_count(0)
    expect(page.locator(".toast")).to_contain_text("Memory entry deleted")
    assert not MemoryEntry.objects.filter(pk=tea.pk).exists()

    bulk = page.get_by_role("button", name="Delete selected")
    expect(bulk).to_be_disabled()
    for text in ("Ada likes short answers", "The billing migration ships in March"):
        page.get_by_label(f"Select {text}"[:47]).check()
    bulk.click()
    expect(page.locator(".flash.success")).to_contain_text("Deleted 2 memory entries")
    expect(entries.locator("tbody tr")).to_have_count(1)
    assert list(MemoryEntry.objects.filter(tenant=tenant).values_list("content", flat=True)) == ["Ada reads in French"]


@pytest.mark.e2e
def test_an_admin_clears_a_collection_and_a_viewer_cannot_delete(page, sign_in):
    _user, tenant = sign_in("admin")
    remember(tenant)
    accept_dialogs(page)
    page.goto("/memory/?collection=preferences")
    page.get_by_role("button", name="Clear “preferences”").click()
    expect(page.locator(".flash.success")).to_contain_text("Cleared “preferences”: 3 entries deleted")
    assert set(MemoryEntry.objects.filter(tenant=tenant).values_list("collection", flat=True)) == {"projects"}

    viewer_tenant = TenantFactory()
    remember(viewer_tenant)
    page.context.clear_cookies()
    sign_in("viewer", tenant=viewer_tenant)
    page.goto("/memory/?collection=preferences")
    expect(page.get_by_test_id("memory-entries").locator("tbody tr")).to_have_count(3)
    expect(page.get_by_role("button", name="Delete entry")).to_have_count(0)
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("button", name="Clear “preferences”")).to_have_count(0)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the table scrolls, the page does not
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


@pytest.mark.e2e
def test_the_timeline_shows_the_episodes_of_answered_turns_and_empty_states(page, sign_in):
    _, tenant = sign_in("viewer")
    page.goto("/memory/")
    expect(page.get_by_role("heading", name="No memories yet")).to_be_visible()
    page.get_by_role("link", name="Episodic timeline").click()
    expect(page.get_by_role("heading", name="No episodes yet")).to_be_visible()

    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    agent = Agent.objects.get(tenant=tenant, name="assistant")
    session = conversations.session_create(tenant=tenant, agent=agent, title="Planning")
    _, turn = conversations.message_post(
        tenant=tenant,
        session=session,
        role="user",
        parts=[{"type": "text", "text": "plan the quarterly roadmap review"}],
    )
    page.reload()
    item = page.get_by_test_id("timeline").locator(".timeline-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("roadmap")
    expect(item.get_by_role("link", name="Turn")).to_have_attribute("href", f"/turns/{turn.pk}/")
    expect(item.get_by_role("link", name="Planning")).to_have_attribute("href", f"/chat/{session.pk}/")
    item.get_by_role("link", name="only this session").click()
    expect(page.get_by_text("in one session")).to_be_visible()
    expect(page.get_by_test_id("timeline").locator(".timeline-item")).to_have_count(1)


def test_memory_writes_need_the_roles_the_api_needs(client):
    tenant = TenantFactory()
    made = remember(tenant)
    entry = next(iter(made.values()))
    viewer = MembershipFactory(tenant=tenant, role="viewer").user
    client.force_login(viewer)
    assert client.post(f"/memory/entries/{entry.pk}/delete/").status_code == 403
    assert client.post("/memory/delete/", {"entry_ids": [str(entry.pk)]}).status_code == 403
    member = MembershipFactory(tenant=tenant, role="member").user
    client.force_login(member)
    assert client.post("/memory/clear/", {"collection": "preferences"}).status_code == 403
    assert MemoryEntry.objects.filter(tenant=tenant).count() == 4

    admin = MembershipFactory(tenant=TenantFactory(), role="admin").user  # another tenant's admin
    client.force_login(admin)
    assert client.post("/memory/clear/", {"collection": "preferences"}).status_code == 404
    assert client.post("/memory/delete/", {"entry_ids": [str(entry.pk)]}).status_code == 302  # skipped
    assert MemoryEntry.objects.filter(tenant=tenant).count() == 4


def test_a_bad_search_is_an_inline_error(client):
    client.force_login(MembershipFactory(role="viewer").user)
    page = client.get("/memory/", {"q": "x" * 2001}).content.decode()
    assert 'aria-invalid="true"' in page
    assert "no more than 2000 characters" in page
