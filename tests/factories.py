from __future__ import annotations

import functools

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from apps.tenancy.models import Membership, Role, Tenant
from tests.agents.populate import populate_agents
from tests.memory.populate import populate_memory
from tests.scheduling.populate import populate_scheduling
from tests.tools.populate import populate_tools

PASSWORD = "correct horse battery staple"


@functools.cache
def _password_hash() -> str:
    # One real hash (Django's PBKDF2, a million rounds: ~0.7 s here) shared by every test user,
    # rather than one per user: a live daphne checks it with the production hashers, and the
    # suite creates hundreds of users.
    return make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.LazyFunction(_password_hash)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


def populate_tenant(tenant: Tenant) -> list[str]:
    """Create one of every tenant-owned object for `tenant`; return every id and name a route
    could be given for them. The isolation test checks that each tenant-owned model has a row
    here, so a new model has to be added as it lands."""
    from apps.tenancy.models import AuditLog
    from tests.conftest import create_key

    owner = UserFactory()
    membership = MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    api_key, _ = create_key(tenant, user=owner, name=f"{tenant.slug}-key")
    from apps.tenancy.invitations import invitation_create
    from apps.tenancy.principal import Actor

    invitation, _ = invitation_create(
        tenant=tenant, actor=Actor.system("test"), actor_role=Role.OWNER, email=f"invitee@{tenant.slug}.example"
    )
    audit = AuditLog.objects.filter(tenant=tenant).first()
    identifiers = [str(membership.pk), str(api_key.pk), str(tenant.pk), tenant.slug, api_key.name, api_key.prefix]
    identifiers.append(str(invitation.pk))
    if audit is not None:
        identifiers.append(str(audit.pk))
    identifiers += populate_agents(tenant)
    identifiers += populate_tools(tenant)
    identifiers += _populate_conversations(tenant, owner)
    identifiers += populate_memory(tenant)
    identifiers += populate_scheduling(tenant)
    return identifiers


def _populate_conversations(tenant: Tenant, user) -> list[str]:
    from apps.agents.models import Agent
    from apps.conversations.models import ChatSession, Feedback, Message, ToolCall, Turn
    from apps.events.services import publish

    agent = Agent.objects.filter(tenant=tenant).first()
    session = ChatSession.objects.create(tenant=tenant, agent=agent, created_by=user, title=f"{tenant.slug} chat")
    question = Message.objects.create(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": "q"}]
    )
    answer = Message.objects.create(
        tenant=tenant, session=session, role="assistant", parts=[{"type": "text", "text": "a"}]
    )
    turn = Turn.objects.create(
        tenant=tenant,
        session=session,
        agent=agent,
        input_message=question,
        output_message=answer,
        status=Turn.Status.COMPLETED,
    )
    from decimal import Decimal

    from apps.conversations.budgets import budget_settle

    budget_settle(turn=turn, cost_usd=Decimal("0.0001"))  # the spend ledger's row, as a model call writes it
    call = ToolCall.objects.create(tenant=tenant, turn=turn, step=1, call_id=f"call-{tenant.slug}", name="calculator")
    feedback = Feedback.objects.create(tenant=tenant, turn=turn, user=user, grade=5)
    event = publish(tenant, "chat_complete", {"text": "a"}, session=session, turn=turn)
    from apps.conversations.attachments import attachment_create
    from apps.conversations.forks import session_fork

    attachment = attachment_create(
        tenant=tenant, session=session, filename="notes.txt", declared_type="text/plain", data=b"notes"
    )
    fork = session_fork(tenant=tenant, session=session, message_id=question.pk)
    from apps.policy.models import Approval, PolicySettings, ToolRule
    from apps.policy.services import approval_request

    PolicySettings.objects.create(tenant=tenant, default_action="allow")
    rule = ToolRule.objects.create(tenant=tenant, tool_name=f"tool_{tenant.slug.replace('-', '_')}", action="deny")
    approval = approval_request(tenant=tenant, turn=turn, tool_call=call, reason="test")
    assert approval.status == Approval.Status.PENDING
    return [
        str(session.pk),
        str(question.pk),
        str(answer.pk),
        str(turn.pk),
        str(call.pk),
        call.call_id,
        str(feedback.pk),
        str(event["id"]),
        rule.tool_name,
        str(approval.pk),
        attachment.ref,
        str(fork.pk),
    ]


def turn_for_message(*, tenant: Tenant, agent, text: str = "x", session=None, **fields):
    """A turn answering a new user message, written straight to the table (no dispatch): the
    state a worker finds, for tests of the claim, leases and takeovers. `fields` set the turn's
    columns (status, attempt, lease_expires_at, progress...)."""
    from apps.conversations import services
    from apps.conversations.models import Message, Turn

    session = session or services.session_create(tenant=tenant, agent=agent)
    message = Message.objects.create(
        tenant=tenant, session=session, role="user", parts=[{"type": "text", "text": text}]
    )
    return Turn.objects.create(tenant=tenant, session=session, agent=agent, input_message=message, **fields)
