"""Fixtures for the agents app: the stub model server and providers that point at it."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

import pytest
from django.apps import apps as django_apps

from apps.agents import services
from apps.agents.models import Provider, ProviderKind
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor
from tests.stubs.model_server import StubModelServer, model_server  # noqa: F401 - a fixture, re-exported

ACTOR = Actor.system("test")
BREAKER_REDIS_DB = 14


@pytest.fixture(autouse=True)
def _breaker_redis_db(settings):
    """Breaker state lives under REDIS_URL; the shared test database (15) is flushed at the start
    of every test by every test session on this machine, which would close a breaker under a
    test that is waiting for it to half-open. Breaker keys are namespaced by provider id, so a
    database of their own needs no flushing."""
    settings.REDIS_URL = re.sub(r"(redis://[^/]+)(/\d+)?$", rf"\g<1>/{BREAKER_REDIS_DB}", settings.REDIS_URL)


@pytest.fixture(autouse=True)
def _price_table(request):
    """The price table is seed data from migration 0002. A transactional test anywhere in the
    session (`django_db(transaction=True)`) truncates every table when it ends, seed data
    included, so database tests here re-seed it (idempotent: update_or_create by model id)."""
    if request.node.get_closest_marker("django_db") is None:
        return
    request.getfixturevalue("db")
    importlib.import_module("apps.agents.migrations.0002_price_table").seed_prices(django_apps, None)


@pytest.fixture
def fast_providers(settings):
    """No SDK retries and a short timeout: a scripted failure surfaces at once."""
    settings.PROVIDER_MAX_RETRIES = 0
    settings.PROVIDER_TIMEOUT_SECONDS = 5.0


@pytest.fixture
def make_provider(db, model_server: StubModelServer) -> Callable[..., Provider]:  # noqa: F811 - the fixture above
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
        return services.provider_create(
            tenant=tenant,
            actor=ACTOR,
            kind=kind,
            name=name or f"stub-{kind}".replace("_", "-"),
            base_url=base_url,
            api_key=api_key,
            models=["stub-small"] if models is None else models,
            **kwargs,
        )

    return make
