"""The chat page's server side with Django's test client (no browser needed): what is drawn,
who may write, and where the live stream resumes after a reload."""

from __future__ import annotations

import pytest

from apps.agents.models import Agent
from apps.agents.services import tenant_bootstrap_agents
from apps.conversations import services
from apps.conversations.models import ChatSession, Message, Turn
from apps.events.services import publish
from apps.tenancy.principal import Actor
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant_with_agent():
    tenant = TenantFactory(name="Acme")
    tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("test"))
    return tenant


def signed_in(client, tenant, role):
    user = MembershipFactory(tenant=tenant, role=role).user
    client.force_login(user)
    return user


def a_session(tenant, title="Trip planning"):
    from apps.agents.selectors import agent_resolve

    return services.session_create(tenant=tenant, agent=agent_resolve(tenant=tenant, name_or_id=None), title=title)


def test_the_home_page_is_the_chat(client, tenant_with_agent):
    signed_in(client, tenant_with_agent, "viewer")
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/chat/"


def test_the_sessions_list_searches_titles_and_hides_archived_ones(client, tenant_with_agent):
    signed_in(client, tenant_with_agent, "member")
    a_session(tenant_with_agent, "Trip planning")
    a_session(tenant_with_agent, "Tax questions")
    archived = a_session(tenant_with_agent, "Old trip")
    services.session_update(tenant=tenant_with_agent, session=archived, archived=True)

    page = client.get("/chat/").content.decode()
    assert "Trip planning" in page
    assert "Tax questions" in page
    assert "Old trip" not in page

    found = client.get("/chat/?q=trip", HTTP_HX_REQUEST="true").content.decode()
    assert "Trip planning" in found
    assert "Tax questions" not in found
    assert "<html" not in found  # htmx gets the list alone
    with_archived = client.get("/chat/?q=trip&archived=1", HTTP_HX_REQUEST="true").content.decode()
    assert "Old trip" in with_archived
    assert "No session matches" in client.get("/chat/?q=zebra").content.decode()


def test_a_member_starts_renames_archives_and_deletes_a_session(client, tenant_with_agent):
    signed_in(client, tenant_with_agent, "member")
    agent = Agent.objects.filter(tenant=tenant_with_agent, enabled=True).first()
    created = client.post("/chat/new/", {"agent": str(agent.pk), "title": ""})
    session = ChatSession.objects.get(tenant=tenant_with_agent)
    assert created["Location"] == f"/chat/{session.pk}/"

    too_long = client.post(f"/chat/{session.pk}/rename/", {"title": "x" * 201})
    assert too_long.status_code == 400
    assert "at most 200 characters" in too_long.content.decode()
    client.post(f"/chat/{session.pk}/rename/", {"title": "Weekend"})
    session.refresh_from_db()
    assert session.title == "Weekend"

    client.post(f"/chat/{session.pk}/archive/")
    session.refresh_from_db()
    assert session.archived
    page = client.get(f"/chat/{session.pk}/").content.decode()
    assert "Unarchive it to continue" in page
    assert 'id="composer"' not in page

    deleted = client.post(f"/chat/{session.pk}/delete/")
    assert deleted["Location"] == "/chat/"
    assert not ChatSession.objects.filter(pk=session.pk).exists()


def test_a_viewer_reads_but_the_server_refuses_every_write(client, tenant_with_agent):
    signed_in(client, tenant_with_agent, "viewer")
    session = a_session(tenant_with_agent)
    page = client.get(f"/chat/{session.pk}/").content.decode()
    assert 'id="composer"' not in page
    assert "you can read this conversation but not post" in page
    assert 'data-can-write="0"' in page
    for url in (
        "/chat/new/",
        f"/chat/{session.pk}/rename/",
        f"/chat/{session.pk}/archive/",
        f"/chat/{session.pk}/delete/",
    ):
        assert client.post(url, {"title": "x", "agent": "x"}).status_code == 403, url
    refused = client.post(
        f"/api/sessions/{session.pk}/messages", {"text": "hi"}, content_type="application/json"
    )  # the API the composer uses refuses too
    assert refused.status_code == 403
    assert ChatSession.objects.get(pk=session.pk).title == "Trip planning"


def test_a_tenant_without_agents_is_told_what_to_do(client):
    signed_in(client, TenantFactory(), "member")
    assert "No agent to talk to yet" in client.get("/chat/").content.decode()


def test_the_page_resumes_a_running_turn_from_just_before_its_first_event(client, tenant_with_agent):
    signed_in(client, tenant_with_agent, "member")
    session = a_session(tenant_with_agent)
    done_q = Message.objects.create(
        tenant=tenant_with_agent, session=session, role="user", parts=[{"type": "text", "text": "first"}]
    )
    done_a = Message.objects.create(
        tenant=tenant_with_agent, session=session, role="assistant", parts=[{"type": "text", "text": "**answer one**"}]
    )
    done = Turn.objects.create(
        tenant=tenant_with_agent, session=session, input_message=done_q, output_message=done_a, status="completed"
    )
    publish(tenant_with_agent, "chat_complete", {"text": "answer one"}, session=session, turn=done)
    running_q = Message.objects.create(
        tenant=tenant_with_agent, session=session, role="user", parts=[{"type": "text", "text": "second"}]
    )
    running = Turn.objects.create(tenant=tenant_with_agent, session=session, input_message=running_q, status="running")
    first = publish(tenant_with_agent, "turn_started", {}, session=session, turn=running)
    publish(tenant_with_agent, "chat_token", {"delta": "half an ans", "step": 1}, session=session, turn=running)

    page = client.get(f"/chat/{session.pk}/").content.decode()
    assert f'data-last-event-id="{first["id"] - 1}"' in page
    assert "**answer one**" in page  # a finished answer is drawn (Markdown rendered by the page)
    assert "half an ans" not in page  # a running one is left to its replayed events
    assert f'data-turn-id="{running.pk}" data-status="running" data-final="0"' in page

    partial = client.get(f"/chat/{session.pk}/turns/{done.pk}/").content.decode()
    assert "first" in partial
    assert "**answer one**" in partial
    assert 'data-final="1"' in partial


def test_another_tenants_session_is_a_404_page(client, tenant_with_agent):
    signed_in(client, tenant_with_agent, "owner")
    other = TenantFactory()
    tenant_bootstrap_agents(tenant=other, actor=Actor.system("test"))
    theirs = a_session(other, "Secret plans")
    response = client.get(f"/chat/{theirs.pk}/")
    assert response.status_code == 404
    assert "Secret plans" not in response.content.decode()
