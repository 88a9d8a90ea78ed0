"""/api/providers, their keys, live model lists and reachability tests, /api/models/available."""

from __future__ import annotations

import pytest

from apps.agents.crypto import decrypt_secret
from apps.agents.models import CatalogModel, Provider
from apps.tenancy.models import AuditLog, Role
from tests.stubs.model_server import Reply

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_providers")]

SECRET = "sk-proj-SuperSecretValue0123456789abcd"


def create(client, **body):
    payload = {"name": "main", "kind": "openai", **body}
    return client.post("/api/providers", payload, format="json")


def test_create_stores_the_key_encrypted_and_never_returns_it(tenant, owner_client):
    response = create(owner_client, api_key=SECRET)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["has_api_key"] is True
    assert body["api_key_hint"] == "sk-…abcd"
    assert "api_key" not in body
    provider = Provider.objects.get(pk=body["id"])
    assert SECRET not in provider.api_key_encrypted
    assert decrypt_secret(provider.api_key_encrypted) == SECRET
    for url in ("/api/providers", f"/api/providers/{body['id']}", "/api/breaker/status"):
        text = owner_client.get(url).content.decode()
        assert SECRET not in text
        assert provider.api_key_encrypted not in text
    assert AuditLog.objects.filter(tenant=tenant, action="provider.created", target_id=body["id"]).exists()


def test_a_new_provider_gets_the_price_table_models_of_its_kind(tenant, owner_client):
    body = create(owner_client, kind="anthropic", name="claude").json()
    models = set(CatalogModel.objects.filter(provider_id=body["id"]).values_list("model_id", flat=True))
    assert {"claude-sonnet-4-0", "claude-3-5-haiku-latest"} <= models
    assert not any(m.startswith("gpt-") for m in models)


def test_explicit_models_replace_the_default_catalog(owner_client):
    body = create(
        owner_client, kind="ollama", name="local", base_url="http://ollama:11434/v1", models=["llama3.2", "qwen2.5"]
    ).json()
    assert sorted(CatalogModel.objects.filter(provider_id=body["id"]).values_list("model_id", flat=True)) == [
        "llama3.2",
        "qwen2.5",
    ]


def test_viewer_reads_member_and_viewer_cannot_write(tenant, make_client, owner_client):
    create(owner_client)
    viewer = make_client(tenant, role=Role.VIEWER)
    assert viewer.get("/api/providers").status_code == 200
    assert create(viewer, name="v").status_code == 403
    member = make_client(tenant, role=Role.MEMBER)
    response = create(member, name="m")
    assert response.status_code == 403
    assert "admin" in response.json()["message"]
    admin = make_client(tenant, role=Role.ADMIN)
    assert create(admin, name="a").status_code == 201


def test_validation_errors_name_the_fields(owner_client):
    response = create(owner_client, kind="openai_compatible", name="vllm")
    assert response.status_code == 400
    assert "base_url" in response.json()["fields"]
    response = create(owner_client, name="x", options={"headers": {"Authorization": "Bearer leak"}})
    assert response.status_code == 400
    assert "options" in response.json()["fields"]
    response = create(owner_client, name="Not a slug!", kind="nope")
    assert set(response.json()["fields"]) == {"name", "kind"}


def test_in_cluster_hostnames_are_accepted(owner_client):
    response = create(owner_client, kind="openai_compatible", name="vllm", base_url="http://vllm:8000/v1")
    assert response.status_code == 201, response.json()


def test_duplicate_name_is_a_conflict(owner_client):
    create(owner_client)
    response = create(owner_client)
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"


def test_update_and_delete(tenant, owner_client):
    provider_id = create(owner_client).json()["id"]
    updated = owner_client.patch(
        f"/api/providers/{provider_id}", {"name": "renamed", "enabled": False, "api_key": SECRET}, format="json"
    )
    assert updated.status_code == 200, updated.json()
    assert (updated.json()["name"], updated.json()["enabled"], updated.json()["has_api_key"]) == (
        "renamed",
        False,
        True,
    )
    assert SECRET not in updated.content.decode()
    assert owner_client.delete(f"/api/providers/{provider_id}").status_code == 204
    assert not Provider.objects.filter(pk=provider_id).exists()
    assert not CatalogModel.objects.filter(provider_id=provider_id).exists()


def test_set_and_delete_the_key_by_provider_name(tenant, owner_client, make_client):
    create(owner_client)
    response = owner_client.put("/api/providers/main/key", {"api_key": "sk-new-key-ABCDEFGH9999"}, format="json")
    assert response.status_code == 200
    assert response.json()["api_key_hint"] == "sk-…9999"
    assert "sk-new-key" not in response.content.decode()
    assert decrypt_secret(Provider.objects.get(tenant=tenant, name="main").api_key_encrypted) == (
        "sk-new-key-ABCDEFGH9999"
    )

    member = make_client(tenant, role=Role.MEMBER)
    assert member.put("/api/providers/main/key", {"api_key": "x" * 20}, format="json").status_code == 403
    assert member.delete("/api/providers/main/key").status_code == 403

    deleted = owner_client.delete("/api/providers/main/key")
    assert deleted.status_code == 200
    assert (deleted.json()["has_api_key"], deleted.json()["api_key_hint"]) == (False, "")
    assert owner_client.put("/api/providers/main/key", {"api_key": ""}, format="json").status_code == 400
    assert owner_client.put("/api/providers/ghost/key", {"api_key": "x" * 20}, format="json").status_code == 404
    actions = set(AuditLog.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert {"provider.key_set", "provider.key_deleted"} <= actions


def test_another_tenants_provider_is_not_found(other_tenant, owner_client, make_provider):
    theirs = make_provider(other_tenant, name="theirs")
    assert owner_client.get(f"/api/providers/{theirs.pk}").status_code == 404
    assert owner_client.put("/api/providers/theirs/key", {"api_key": "x" * 20}, format="json").status_code == 404
    assert owner_client.get(f"/api/providers/{theirs.pk}/models").status_code == 404


def test_live_model_list(tenant, owner_client, make_provider, model_server):
    provider = make_provider(tenant, models=["stub-small"])
    model_server.models = ["stub-small", "stub-new"]
    response = owner_client.get(f"/api/providers/{provider.pk}/models")
    assert response.status_code == 200
    assert response.json() == {
        "provider": provider.name,
        "models": [
            {"id": "stub-small", "owned_by": "stub", "in_catalog": True},
            {"id": "stub-new", "owned_by": "stub", "in_catalog": False},
        ],
    }


@pytest.mark.parametrize("failure", ["status_500", "server_down"])
def test_live_model_list_is_502_when_the_provider_fails(tenant, owner_client, make_provider, model_server, failure):
    provider = make_provider(tenant)
    if failure == "server_down":
        model_server.stop()
    else:
        model_server.script([Reply(status=500, error="upstream exploded")])
    response = owner_client.get(f"/api/providers/{provider.pk}/models")
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "Provider error"
    assert body["message"]


def test_reachability_test(tenant, owner_client, make_provider, model_server):
    provider = make_provider(tenant)
    ok = owner_client.post(f"/api/providers/{provider.pk}/test")
    assert ok.status_code == 200
    assert ok.json()["reachable"] is True
    assert ok.json()["models_seen"] == 2
    assert ok.json()["latency_ms"] >= 0
    model_server.stop()
    down = owner_client.post(f"/api/providers/{provider.pk}/test").json()
    assert (down["reachable"], down["models_seen"]) == (False, 0)
    assert down["error"]


def test_available_models_are_enabled_models_of_enabled_providers(tenant, owner_client):
    openai_id = create(owner_client).json()["id"]
    create(owner_client, kind="anthropic", name="claude", enabled=False)
    CatalogModel.objects.filter(provider_id=openai_id, model_id="gpt-4o").update(enabled=False)

    body = owner_client.get("/api/models/available", {"limit": 200}).json()
    refs = {row["ref"]: row for row in body["results"]}
    assert "main/gpt-4o-mini" in refs
    assert "main/gpt-4o" not in refs
    assert not any(ref.startswith("claude/") for ref in refs)
    mini = refs["main/gpt-4o-mini"]
    assert (mini["input_per_mtok"], mini["output_per_mtok"]) == ("0.1500", "0.6000")
    assert (mini["provider"], mini["provider_kind"], mini["supports_tools"], mini["supports_vision"]) == (
        "main",
        "openai",
        True,
        True,
    )
    no_vision = owner_client.get("/api/models/available", {"supports_vision": "false", "limit": 200}).json()
    assert [row["ref"] for row in no_vision["results"]] == ["main/o3-mini"]
