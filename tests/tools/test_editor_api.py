"""The workspace over HTTP: /api/editor/file, /api/editor/backups, /api/editor/restore."""

from __future__ import annotations

import pytest

from apps.tenancy.models import Role

pytestmark = pytest.mark.django_db


def write(client, path: str, content: str, **extra):
    return client.post("/api/editor/file", {"path": path, "content": content, **extra}, format="json")


def test_write_read_backups_and_restore(owner_client):
    first = write(owner_client, "docs/readme.md", "v1")
    assert first.status_code == 200, first.content
    assert first.json()["created"] is True
    second = write(owner_client, "docs/readme.md", "v2", expected_sha256=first.json()["sha256"])
    assert second.status_code == 200
    backup_id = second.json()["backup_id"]

    read = owner_client.get("/api/editor/file", {"path": "docs/readme.md"})
    assert read.status_code == 200
    assert read.json()["content"] == "v2"

    backups = owner_client.get("/api/editor/backups", {"path": "docs/readme.md"}).json()
    assert [b["backup_id"] for b in backups["backups"]] == [backup_id]

    restored = owner_client.post(
        "/api/editor/restore", {"path": "docs/readme.md", "backup_id": backup_id}, format="json"
    )
    assert restored.status_code == 200, restored.content
    assert owner_client.get("/api/editor/file", {"path": "docs/readme.md"}).json()["content"] == "v1"
    assert len(owner_client.get("/api/editor/backups", {"path": "docs/readme.md"}).json()["backups"]) == 2


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../b", "a\x00b"])
def test_escaping_paths_are_a_400_with_a_json_error(owner_client, path):
    response = write(owner_client, path, "x")
    assert response.status_code == 400
    assert response.json()["error"]
    assert owner_client.get("/api/editor/file", {"path": path}).status_code == 400


def test_missing_file_is_404_and_missing_path_is_400(owner_client):
    assert owner_client.get("/api/editor/file", {"path": "nope.txt"}).status_code == 404
    response = owner_client.get("/api/editor/file")
    assert response.status_code == 400
    assert "path" in response.json()["fields"]
    assert owner_client.get("/api/editor/backups").status_code == 400


def test_stale_hash_is_409_and_too_large_is_413(owner_client, settings):
    write(owner_client, "a.txt", "one")
    conflict = write(owner_client, "a.txt", "two", expected_sha256="0" * 64)
    assert conflict.status_code == 409
    assert conflict.json()["error"] == "Conflict"
    settings.WORKSPACE_MAX_FILE_BYTES = 5
    too_big = write(owner_client, "b.txt", "123456")
    assert too_big.status_code == 413
    assert too_big.json()["error"] == "Payload too large"


def test_bad_bodies_are_400(owner_client):
    assert owner_client.post("/api/editor/file", {"path": "a.txt"}, format="json").status_code == 400
    assert owner_client.post("/api/editor/file", {"path": "a.txt", "content": None}, format="json").status_code == 400
    bad_backup = owner_client.post("/api/editor/restore", {"path": "a.txt", "backup_id": "../x"}, format="json")
    assert bad_backup.status_code == 400
    unknown = owner_client.post(
        "/api/editor/restore", {"path": "a.txt", "backup_id": "20250101T000000000000Z-abcdef"}, format="json"
    )
    assert unknown.status_code == 404


def test_viewers_read_and_only_admins_write(tenant, make_client, owner_client):
    write(owner_client, "a.txt", "x")
    viewer = make_client(tenant, role=Role.VIEWER)
    member = make_client(tenant, role=Role.MEMBER)
    assert viewer.get("/api/editor/file", {"path": "a.txt"}).status_code == 200
    assert viewer.get("/api/editor/backups", {"path": "a.txt"}).status_code == 200
    assert write(member, "a.txt", "y").status_code == 403
    assert member.post("/api/editor/restore", {"path": "a.txt", "backup_id": "x"}, format="json").status_code == 403
    assert write(make_client(tenant, role=Role.ADMIN), "a.txt", "y").status_code == 200


def test_another_tenants_files_are_not_found(tenant, other_tenant, make_client, owner_client):
    write(make_client(other_tenant), "theirs.txt", "secret")
    assert owner_client.get("/api/editor/file", {"path": "theirs.txt"}).status_code == 404
    assert owner_client.get("/api/editor/backups", {"path": "theirs.txt"}).json()["backups"] == []
