"""The tenant workspace: files, backups, restore, and every way a path could leave the tenant's folder."""

from __future__ import annotations

import json
import os

import pytest

from apps.tools import workspace
from apps.tools.registry import ToolContext, builtin_registry, execute_tool
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def run(tool: str, owner, **arguments):
    return execute_tool(tool=builtin_registry.get(tool), arguments=arguments, context=ToolContext(tenant=owner))


# --- files and backups -------------------------------------------------------------------------------


def test_a_written_file_reads_back_with_its_hash(tenant):
    written = workspace.file_write(tenant=tenant, path="notes/plan.md", content="# Plan\n")
    assert written["created"] is True
    assert written["backup_id"] is None
    read = workspace.file_read(tenant=tenant, path="notes/plan.md")
    assert read["content"] == "# Plan\n"
    assert read["sha256"] == written["sha256"]
    assert (workspace.tenant_root(tenant) / "files" / "notes" / "plan.md").is_file()


def test_every_write_backs_up_the_previous_content_and_restore_brings_it_back(tenant):
    workspace.file_write(tenant=tenant, path="a.txt", content="one")
    second = workspace.file_write(tenant=tenant, path="a.txt", content="two")
    workspace.file_write(tenant=tenant, path="a.txt", content="three")

    backups = workspace.backup_list(tenant=tenant, path="a.txt")
    assert [b["size"] for b in backups] == [3, 3]  # "two", then "one": newest first
    assert backups[-1]["backup_id"] == second["backup_id"]

    restored = workspace.backup_restore(tenant=tenant, path="a.txt", backup_id=second["backup_id"])
    assert workspace.file_read(tenant=tenant, path="a.txt")["content"] == "one"
    # The restore backed up what it replaced, so it can be undone too.
    workspace.backup_restore(tenant=tenant, path="a.txt", backup_id=restored["backup_id"])
    assert workspace.file_read(tenant=tenant, path="a.txt")["content"] == "three"


def test_backups_past_the_limit_drop_the_oldest(tenant, settings):
    settings.WORKSPACE_MAX_BACKUPS = 2
    for n in range(5):
        workspace.file_write(tenant=tenant, path="log.txt", content=str(n))
    backups = workspace.backup_list(tenant=tenant, path="log.txt")
    assert len(backups) == 2
    assert workspace.file_read(tenant=tenant, path="log.txt")["content"] == "4"


def test_a_stale_expected_hash_is_a_conflict(tenant):
    first = workspace.file_write(tenant=tenant, path="a.txt", content="one")
    workspace.file_write(tenant=tenant, path="a.txt", content="two", expected_sha256=first["sha256"])
    with pytest.raises(workspace.WorkspaceConflict):
        workspace.file_write(tenant=tenant, path="a.txt", content="three", expected_sha256=first["sha256"])
    with pytest.raises(workspace.WorkspaceConflict):
        workspace.file_write(tenant=tenant, path="a.txt", content="x", expected_sha256="")  # must not exist


def test_size_and_quota_limits(tenant, settings):
    settings.WORKSPACE_MAX_FILE_BYTES = 10
    with pytest.raises(workspace.WorkspaceTooLarge):
        workspace.file_write(tenant=tenant, path="big.txt", content="x" * 11)
    settings.WORKSPACE_QUOTA_BYTES = 15
    workspace.file_write(tenant=tenant, path="a.txt", content="x" * 10)
    with pytest.raises(workspace.WorkspaceTooLarge, match="quota"):
        workspace.file_write(tenant=tenant, path="b.txt", content="x" * 10)


def test_a_binary_file_is_not_read_as_text(tenant):
    target = workspace.tenant_root(tenant) / "files" / "blob.bin"
    workspace.file_list(tenant=tenant)  # creates the folder
    target.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(workspace.WorkspaceError, match="UTF-8"):
        workspace.file_read(tenant=tenant, path="blob.bin")


def test_listing_is_sorted_and_recursive_on_demand(tenant):
    for path in ("b.txt", "docs/x.md", "a.txt"):
        workspace.file_write(tenant=tenant, path=path, content="x")
    top = workspace.file_list(tenant=tenant)
    assert [(e["path"], e["type"]) for e in top["entries"]] == [("a.txt", "file"), ("b.txt", "file"), ("docs", "dir")]
    everything = workspace.file_list(tenant=tenant, recursive=True)
    assert "docs/x.md" in [e["path"] for e in everything["entries"]]
    assert [e["path"] for e in workspace.file_list(tenant=tenant, path="docs")["entries"]] == ["docs/x.md"]


def test_tenants_never_see_each_others_files(tenant, other_tenant):
    workspace.file_write(tenant=other_tenant, path="secret.txt", content="theirs")
    with pytest.raises(workspace.WorkspaceNotFound):
        workspace.file_read(tenant=tenant, path="secret.txt")
    assert workspace.file_list(tenant=tenant)["entries"] == []
    assert workspace.backup_list(tenant=tenant, path="secret.txt") == []


# --- path escapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "../x.txt",
        "a/../../x.txt",
        "a/..",
        "..",
        "/etc/passwd",
        "~/x",
        "C:/Windows/x",
        "a\\..\\b",
        "a\x00b",
        "a\nb",
        "",
        "x" * 600,
        ".~tmp-abc",
    ],
)
def test_paths_that_could_leave_the_workspace_are_refused(tenant, path):
    with pytest.raises(workspace.PathRefused):
        workspace.file_write(tenant=tenant, path=path, content="x")
    with pytest.raises(workspace.PathRefused):
        workspace.file_read(tenant=tenant, path=path)


def test_harmless_spellings_are_normalised(tenant):
    workspace.file_write(tenant=tenant, path="./notes//a.txt", content="x")
    assert workspace.file_read(tenant=tenant, path="notes/a.txt")["path"] == "notes/a.txt"


def test_a_symlink_pointing_out_of_the_workspace_is_refused(tenant, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret")
    files = workspace.tenant_root(tenant) / "files"
    files.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, files / "link-dir")
    os.symlink(outside / "secret.txt", files / "link-file")

    for path in ("link-dir/secret.txt", "link-file"):
        with pytest.raises(workspace.PathRefused, match="out of the workspace"):
            workspace.file_read(tenant=tenant, path=path)
        with pytest.raises(workspace.PathRefused):
            workspace.file_write(tenant=tenant, path=path, content="overwritten")
    assert (outside / "secret.txt").read_text() == "host secret"
    assert [e["path"] for e in workspace.file_list(tenant=tenant, recursive=True)["entries"]] == []


def test_a_symlink_to_another_tenants_folder_is_refused(tenant, other_tenant):
    workspace.file_write(tenant=other_tenant, path="theirs.txt", content="theirs")
    files = workspace.tenant_root(tenant) / "files"
    files.mkdir(parents=True, exist_ok=True)
    os.symlink(workspace.tenant_root(other_tenant) / "files", files / "neighbour")
    with pytest.raises(workspace.PathRefused):
        workspace.file_read(tenant=tenant, path="neighbour/theirs.txt")


def test_a_restore_with_a_forged_backup_id_is_refused(tenant):
    workspace.file_write(tenant=tenant, path="a.txt", content="x")
    for backup_id in ("../../files/a.txt", "20250101T000000000000Z-zzzzzz", ""):
        with pytest.raises(workspace.WorkspaceError):
            workspace.backup_restore(tenant=tenant, path="a.txt", backup_id=backup_id)
    with pytest.raises(workspace.WorkspaceNotFound):
        workspace.backup_restore(tenant=tenant, path="a.txt", backup_id="20250101T000000000000Z-abcdef")


# --- the tools -------------------------------------------------------------------------------------------


def test_the_workspace_tools_use_the_tenant_from_the_context_only(tenant, other_tenant):
    assert run("workspace_write", tenant, path="report.md", content="mine").ok
    listed = run("workspace_list", other_tenant)
    assert json.loads(listed.output)["entries"] == []
    read = run("workspace_read", tenant, path="report.md")
    assert json.loads(read.output)["content"] == "mine"
    # A tenant named in the arguments is a schema error, not a way in.
    sneaky = run("workspace_read", tenant, path="report.md", tenant=str(other_tenant.pk))
    assert not sneaky.ok
    assert "Additional properties" in sneaky.error


def test_a_refused_path_reaches_the_model_as_a_tool_error(tenant):
    outcome = run("workspace_read", tenant, path="../../etc/passwd")
    assert not outcome.ok
    assert "'..' is refused" in outcome.error


def test_the_write_tool_dry_run_shows_a_diff_and_changes_nothing(tenant):
    workspace.file_write(tenant=tenant, path="a.txt", content="hello\nworld\n")
    tool = builtin_registry.get("workspace_write")
    plan = tool.dry_run(ToolContext(tenant=tenant), {"path": "a.txt", "content": "hello\nthere\n"})
    assert plan["changes"] == [{"path": "a.txt", "action": "modify", "size_before": 12, "size_after": 12}]
    assert "-world" in plan["diff"]
    assert "+there" in plan["diff"]
    assert plan["reversible"] is True
    assert "restore" in plan["rollback"]
    assert workspace.file_read(tenant=tenant, path="a.txt")["content"] == "hello\nworld\n"
    assert workspace.backup_list(tenant=tenant, path="a.txt") == []

    new = tool.dry_run(ToolContext(tenant=tenant), {"path": "b.txt", "content": "x"})
    assert new["changes"][0]["action"] == "create"
    assert new["reversible"] is False


def test_the_dry_run_refuses_what_the_write_would_refuse(tenant):
    tool = builtin_registry.get("workspace_write")
    with pytest.raises(workspace.PathRefused):
        tool.dry_run(ToolContext(tenant=tenant), {"path": "/etc/passwd", "content": "x"})


def test_a_tool_call_without_a_tenant_fails_cleanly():
    outcome = execute_tool(tool=builtin_registry.get("workspace_list"), arguments={}, context=ToolContext(tenant=None))
    assert not outcome.ok
    assert "tenant" in outcome.error


def test_each_tenant_has_its_own_folder(settings):
    a, b = TenantFactory(), TenantFactory()
    workspace.file_write(tenant=a, path="x.txt", content="a")
    workspace.file_write(tenant=b, path="x.txt", content="b")
    assert workspace.tenant_root(a) != workspace.tenant_root(b)
    assert workspace.tenant_root(a).parent == settings.WORKSPACE_ROOT
    assert workspace.file_read(tenant=a, path="x.txt")["content"] == "a"
