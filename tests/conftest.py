"""Shared fixtures. Tests run against the embedded PostgreSQL (a test database with pgvector)
and Redis that `make test` starts; Redis is switched to its own database number here so a
running `make run` keeps its data."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from agentplatform.celery import app as celery_app
from apps.agents import services as agent_services
from apps.agents.models import Provider, ProviderKind
from apps.tenancy import services
from apps.tenancy.models import Role, Scope, Tenant
from apps.tenancy.principal import Actor
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.live_workers import celery_worker_process, real_worker, start_beat  # noqa: F401 - fixtures for every test
from tests.stubs.listener import fake_dns, listener  # noqa: F401 - fixtures for every test
from tests.stubs.model_server import StubModelServer, model_server  # noqa: F401 - a fixture for every test

# Another test run on the same Redis at the same time sets TEST_REDIS_DB to keep out of the way.
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "15"))


def _with_db(url: str, db: int) -> str:
    return re.sub(r"(redis://[^/]+)(/\d+)?$", rf"\g<1>/{db}", url)


# Nothing has connected to Redis yet when this module is imported: every Redis client in the
# project reads these settings lazily.
settings.REDIS_URL = _with_db(settings.REDIS_URL, TEST_REDIS_DB)
settings.CACHES["default"]["LOCATION"] = settings.REDIS_URL
settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [settings.REDIS_URL]
settings.CELERY_BROKER_URL = settings.REDIS_URL
# Outside the end-to-end tests (which run a real worker), queued tasks run inline when the
# transaction that queued them commits.
celery_app.conf.broker_url = settings.REDIS_URL
celery_app.conf.task_always_eager = True
celery_app.conf.task_eager_propagates = True
# Static files come from the app folders (no collectstatic run needed for tests).
settings.STORAGES = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
settings.WHITENOISE_USE_FINDERS = True
settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Turns record memory, which is embedded; the model-free embedder keeps every test process from
# loading MiniLM. Tests about meaning ask for the real model (the `minilm` fixture in tests/memory).
settings.EMBEDDING_BACKEND = "hashing"


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with no rate-limit windows or cached values from the one before."""
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def _generous_rate_limits(settings):
    """Most tests make many requests with one key; the rate-limit tests set their own limits."""
    settings.API_RATE_LIMIT = "100000/minute"
    settings.CHAT_RATE_LIMIT = "100000/minute"
    settings.AUTH_FAILURE_RATE_LIMIT = "100000/minute"


@pytest.fixture(autouse=True)
def _heartbeat_out_of_the_way(settings):
    """Most tests run inside a transaction that the lease heartbeat's own connection cannot see: a
    beat would find no turn and call it lost. Tests of the heartbeat (transactional ones, the
    real worker's) set their own intervals."""
    settings.TURN_HEARTBEAT_SECONDS = 3600.0


@pytest.fixture(autouse=True)
def _attachments_in_tmp(settings, tmp_path_factory):
    """Uploaded attachments go under the test run's temporary directory, not var/."""
    settings.ATTACHMENT_ROOT = tmp_path_factory.getbasetemp() / "attachments"


@pytest.fixture
def tenant(db) -> Tenant:
    return TenantFactory()


@pytest.fixture
def other_tenant(db) -> Tenant:
    return TenantFactory()


def create_key(tenant: Tenant, *, role: str = Role.OWNER, scopes: list[str] | None = None, user=None, **kwargs):
    """An API key for `tenant` with a given ceiling role and scopes; returns (row, plaintext)."""
    return services.api_key_create(
        tenant=tenant,
        actor=Actor.system("test"),
        name=kwargs.pop("name", "test"),
        scopes=scopes or list(Scope.values),
        role=role,
        created_by=user,
        **kwargs,
    )


@pytest.fixture
def make_client(db) -> Callable[..., APIClient]:
    """`make_client(tenant, role="admin", scopes=[...])`: an APIClient holding a fresh key."""

    def make(tenant: Tenant, *, role: str = Role.OWNER, scopes: list[str] | None = None, user=None) -> APIClient:
        if user is None:
            user = UserFactory()
            MembershipFactory(tenant=tenant, user=user, role=role)
        _, plaintext = create_key(tenant, role=role, scopes=scopes, user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        client.api_key = plaintext
        client.user = user
        return client

    return make


@pytest.fixture
def owner_client(tenant, make_client) -> APIClient:
    return make_client(tenant, role=Role.OWNER)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


@pytest.fixture
def fast_providers(settings):
    """No SDK retries and a short timeout: a scripted failure surfaces at once."""
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def make_provider(db, model_server: StubModelServer) -> Callable[..., Provider]:  # noqa: F811 - the imported fixture
    """`make_provider(tenant, kind="openai", name=..., api_key=..., models=[...])`: a provider whose
    endpoint is the stub server (the right base URL for the kind's protocol)."""

    def make(
        tenant: Tenant,
        *,
        kind: str = ProviderKind.OPENAI,
        name: str | None = None,
        api_key: str = "sk-test-key-0123456789",
        models: list[str] | None = None,
        **kwargs,
    ) -> Provider:
        base_url = model_server.anthropic_base_url if kind == ProviderKind.ANTHROPIC else model_server.openai_base_url
        return agent_services.provider_create(
            tenant=tenant,
            actor=Actor.system("test"),
            kind=kind,
            name=name or f"stub-{kind}".replace("_", "-"),
            base_url=base_url,
            api_key=api_key,
            models=["stub-small"] if models is None else models,
            **kwargs,
        )

    return make
