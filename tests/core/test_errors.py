from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_invalid_json_body_is_400(owner_client):
    response = owner_client.generic("PATCH", "/api/tenants/current", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid JSON body"


def test_unknown_api_route_is_json_404(owner_client):
    response = owner_client.get("/api/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"] == "Not found"


def test_unknown_object_is_404(owner_client):
    response = owner_client.get("/api/keys/0190a1c2-0000-7000-8000-000000000000")
    assert response.status_code == 404
    assert response.json() == {
        "error": "Not found",
        "message": "No object at /api/keys/0190a1c2-0000-7000-8000-000000000000 in your tenant.",
    }


def test_well_formed_id_that_is_not_a_uuid_is_404(owner_client):
    assert owner_client.get("/api/keys/not-a-uuid_123").status_code == 404


@pytest.mark.parametrize("bad_id", ["a.b", "x" * 129, "semi;colon", "%20"])
def test_malformed_path_id_is_400(owner_client, bad_id):
    response = owner_client.get(f"/api/keys/{bad_id}")
    assert response.status_code == 400
    assert response.json()["error"] == "Invalid key ID format"


def test_wrong_method_is_405(owner_client):
    response = owner_client.put("/api/tenants/current", {}, format="json")
    assert response.status_code == 405
    assert response.json()["error"] == "Method not allowed"


def test_wrong_content_type_is_415(owner_client):
    response = owner_client.generic("PATCH", "/api/tenants/current", "name=x", content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["error"] == "Unsupported media type"


def test_body_over_the_cap_is_413(owner_client, settings):
    settings.MAX_BODY_BYTES = 1024
    response = owner_client.generic(
        "PATCH", "/api/tenants/current", '{"name": "' + "x" * 2000 + '"}', content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"] == "Payload too large"
    assert "MAX_BODY_BYTES" in response.json()["message"]


@pytest.mark.urls("tests.core.urls_probe")
def test_crash_is_a_json_500_without_internals(owner_client, settings, caplog):
    settings.DEBUG = False
    owner_client.raise_request_exception = False
    response = owner_client.get("/api/probe/crash")
    assert response.status_code == 500
    assert response.json()["error"] == "Internal server error"
    assert "secret internal detail" not in response.content.decode()
    assert "secret internal detail" in caplog.text  # but the operator sees it in the log


def test_database_outage_is_a_json_503(owner_client, monkeypatch):
    from django.db import OperationalError

    from apps.tenancy import selectors

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(selectors, "membership_list", down)
    owner_client.raise_request_exception = False
    response = owner_client.get("/api/members")
    assert response.status_code == 503
    assert response.json()["error"] == "Service unavailable"


def test_request_id_is_echoed_or_made(anon_client):
    given = anon_client.get("/health", HTTP_X_REQUEST_ID="abc-123")
    assert given["X-Request-ID"] == "abc-123"
    made = anon_client.get("/health", HTTP_X_REQUEST_ID="bad id with spaces")
    assert len(made["X-Request-ID"]) == 32


def test_cors_preflight_is_204_with_allow_headers(anon_client):
    response = anon_client.options(
        "/api/tenants/current",
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "authorization" in response["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize("path", ["/api/audit/log?actor=a%00b", "/api/sessions?search=%00", "/chat/?q=x%00"])
def test_a_nul_byte_in_the_query_string_is_a_400_not_a_500(owner_client, path):
    response = owner_client.get(path)
    assert response.status_code == 400
    assert "NUL byte" in response.json()["message"]
