"""Fixtures for the agents app: the stub model server and providers that point at it."""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps as django_apps

from apps.tenancy.principal import Actor

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
