"""Schemathesis against the whole API: no server error, no undocumented status or content type,
no response that breaks its schema.

The app runs in-process (schemathesis' WSGI transport, the real Django stack and middleware)
with the admin key of a tenant that has one of everything (tests.factories.populate_tenant), so
list and detail routes answer with real rows. The seed is fixed and each operation gets
FUZZ_EXAMPLES cases of valid input and as many of invalid input (10: about 2,300 calls in about
60 s on two cores); FUZZ_EXAMPLES=50 in the environment digs deeper.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.agents.models import Provider
from apps.tenancy.models import Role
from tests.conftest import create_key
from tests.factories import TenantFactory, populate_tenant

# transaction=True: every request commits like a real one, and queued turns run (inline) on commit.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# Valid input (every documented answer, real rows) and invalid input (which must be a 4xx).
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@schemathesis.check
def no_undocumented_server_error(ctx, response, case):
    """not_a_server_error, except for a 5xx the operation documents: 502/503/504 are answers the
    contract promises (a model provider down, a health probe failing, a wait timed out), which
    status_code_conformance holds to the schema. A 500 is always a bug."""
    documented = case.operation.definition.raw.get("responses", {})
    if response.status_code != 500 and str(response.status_code) in documented:
        return True
    return not_a_server_error(ctx, response, case)


CHECKS = [no_undocumented_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Calls that would take the fuzzer's own key or membership away, after which every call is a 401.
SELF_DESTRUCTIVE = {
    ("DELETE", "/api/keys/{id}"),
    ("POST", "/api/keys/{id}/revoke"),
    ("DELETE", "/api/members/{id}"),
    ("PATCH", "/api/members/{id}"),
}


def _failure_summary(exc: BaseException) -> list[str]:
    inner = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
    return [" ".join(str(e).split())[:300] for e in inner]


def _fuzz(operation, mode, label: tuple[str, str], headers: dict, calls: Counter, failures: dict) -> None:
    @seed(20261201)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        calls[mode.value] += 1
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:
            # Recorded, not raised: Hypothesis would spend the budget shrinking one failure.
            found = failures.setdefault(f"{label[0]} {label[1]} ({mode.value})", set())
            found.update(f"{response.status_code} {line}" for line in _failure_summary(exc))

    try:
        run()
    except Unsatisfiable:
        assert mode == schemathesis.GenerationMode.NEGATIVE  # an operation with nothing to get wrong


def test_fuzzing_every_operation_finds_no_server_error_and_no_contract_violation(model_server):
    tenant = TenantFactory(slug="fuzz")
    populate_tenant(tenant)
    # The tenant's provider answers from the stub model server, so the synchronous faces reach
    # their 200 (and its schema) instead of a documented 502.
    Provider.objects.filter(tenant=tenant).update(base_url=model_server.openai_base_url)
    _, key = create_key(tenant, role=Role.ADMIN, name="fuzzer")
    headers = {"Authorization": f"Bearer {key}"}

    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    operations, calls, failures = 0, Counter(), {}
    for result in schema.get_all_operations():
        operation = result.ok()
        label = (operation.method.upper(), operation.path)
        if label in SELF_DESTRUCTIVE:
            continue
        operations += 1
        for mode in MODES:
            _fuzz(operation, mode, label, headers, calls, failures)

    made = ", ".join(f"{count} {mode}" for mode, count in calls.items())
    print(f"\nschemathesis: {operations} operations, {sum(calls.values())} calls ({made}), {len(failures)} failing")
    report = "\n".join(f"{op}:\n    " + "\n    ".join(sorted(found)) for op, found in sorted(failures.items()))
    assert not failures, report
