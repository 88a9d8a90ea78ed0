"""Bad input is a 400 naming what is wrong, never a 500 (issue 10, section 8)."""

from __future__ import annotations

import io

import pytest

from apps.core.parsers import BoundedJSONParser, JSONTooDeep, loads_bounded

pytestmark = pytest.mark.django_db


def test_impossible_calendar_date_in_audit_since_is_400_naming_the_parameter(owner_client):
    response = owner_client.get("/api/audit/log", {"since": "2026-02-30T00:00:00Z"})
    assert response.status_code == 400
    assert response.json()["error"] == "Validation failed"
    assert "since" in response.json()["fields"]


def test_audit_since_that_is_not_a_date_is_400(owner_client):
    response = owner_client.get("/api/audit/log", {"since": "yesterday"})
    assert response.status_code == 400
    assert "since" in response.json()["fields"]


def test_audit_since_with_an_offset_postgres_refuses_is_converted_to_utc(owner_client):
    # Python accepts offsets up to ±24 h, PostgreSQL only ±15:59; this once reached the query and was a 500.
    assert owner_client.get("/api/audit/log", {"since": "0626-06-28T03:20:50-19:12"}).status_code == 200


def test_audit_since_before_the_first_utc_instant_is_400(owner_client):
    response = owner_client.get("/api/audit/log", {"since": "0001-01-01T00:00:00+01:00"})
    assert response.status_code == 400
    assert "since" in response.json()["fields"]


def test_naive_audit_since_is_read_as_utc(owner_client):
    response = owner_client.get("/api/audit/log", {"since": "2020-01-01T00:00:00"})
    assert response.status_code == 200
    assert "results" in response.json()


def test_body_of_200k_nested_brackets_is_400_not_a_recursion_500(owner_client):
    body = "[" * 200_000 + "]" * 200_000
    response = owner_client.generic("PATCH", "/api/tenants/current", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid JSON body"
    assert "nested deeper" in response.json()["message"]


def test_body_nested_past_json_max_depth_is_400(owner_client, settings):
    settings.JSON_MAX_DEPTH = 8
    body = '{"name": ' + "[" * 9 + "]" * 9 + "}"
    response = owner_client.generic("PATCH", "/api/tenants/current", body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON_MAX_DEPTH" in response.json()["message"]


def test_parser_keeps_a_body_within_the_depth_limit():
    body = b'{"a": {"b": [1, [2, [3]]]}, "s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'
    parsed = BoundedJSONParser().parse(io.BytesIO(body), parser_context={"encoding": "utf-8"})
    assert parsed["a"] == {"b": [1, [2, [3]]]}


def test_bounded_loads_counts_depth_of_dicts_and_lists():
    assert loads_bounded('{"a": [{"b": 1}]}', max_depth=3) == {"a": [{"b": 1}]}
    with pytest.raises(JSONTooDeep):
        loads_bounded('{"a": [{"b": []}]}', max_depth=3)
    with pytest.raises(JSONTooDeep):
        loads_bounded(b"[" * 100_000, max_depth=64)
