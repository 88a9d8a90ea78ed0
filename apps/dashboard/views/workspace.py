"""Workspace files: browse the tenant's folders, view a file, edit it (every save keeps the
previous content as a backup), and restore a backup (which is itself backed up first).

The same storage and functions as the `/api/editor/*` views and the workspace_* tools
(apps/tools/workspace.py): paths are confined there (absolute paths, `..`, links out are
refused), sizes and the quota are checked there, and a save sends the sha256 it read so a change
made meanwhile is refused rather than overwritten. Everyone reads; admins write and restore.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from apps.dashboard.access import member_required
from apps.dashboard.nav import NavItem, nav_add
from apps.tenancy.models import Role
from apps.tools import workspace

nav_add("Build", NavItem("Workspace", "workspace", "folder"))


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _crumbs(path: str) -> list[dict]:
    parts = [p for p in path.split("/") if p]
    return [{"name": name, "path": "/".join(parts[: i + 1])} for i, name in enumerate(parts)]


def _file_url(path: str) -> str:
    return f"{reverse('dashboard:workspace_file')}?{urlencode({'path': path})}"


@member_required
def browse(request):
    path = request.GET.get("path", "")
    try:
        listing = workspace.file_list(tenant=request.principal.tenant, path=path)
    except workspace.WorkspaceError as exc:
        context = {"error": str(exc), "path": path, "entries": [], "crumbs": []}
        return render(request, "dashboard/workspace/browse.html", context, status=exc.status_code)
    entries = [
        {**e, "name": e["path"].rsplit("/", 1)[-1], "modified": _when(e["modified_at"])} for e in listing["entries"]
    ]
    entries.sort(key=lambda e: (e["type"] != "dir", e["name"].lower()))
    context = {
        "path": listing["path"],
        "parent": listing["path"].rpartition("/")[0] if listing["path"] else None,
        "entries": entries,
        "truncated": listing["truncated"],
        "crumbs": _crumbs(listing["path"]),
    }
    return render(request, "dashboard/workspace/browse.html", context)


def _file_context(tenant, path: str) -> dict:
    """The file (or an empty new one), its backups and its folder's breadcrumbs."""
    try:
        found = workspace.file_read(tenant=tenant, path=path)
        content, sha256, exists = found["content"], found["sha256"], True
        modified = _when(found["modified_at"])
        relative = found["path"]
    except workspace.WorkspaceNotFound:
        relative = workspace.clean_path(path)
        content, sha256, exists, modified = "", "", False, None
    backups = [{**b, "created": _when(b["created_at"])} for b in workspace.backup_list(tenant=tenant, path=relative)]
    folder = relative.rpartition("/")[0]
    return {
        "path": relative,
        "folder": folder,
        "crumbs": _crumbs(folder),
        "name": relative.rsplit("/", 1)[-1],
        "content": content,
        "sha256": sha256,
        "exists": exists,
        "modified": modified,
        "backups": backups,
    }


@member_required
def file_view(request):
    tenant = request.principal.tenant
    path = request.POST.get("path", "") if request.method == "POST" else request.GET.get("path", "")
    if request.method == "POST" and not request.principal.has_role(Role.ADMIN):
        return render(request, "dashboard/forbidden.html", {"role_needed": Role.ADMIN.label}, status=403)
    try:
        context = _file_context(tenant, path)
    except workspace.WorkspaceError as exc:
        context = {"error": str(exc), "path": path, "entries": [], "crumbs": []}
        return render(request, "dashboard/workspace/browse.html", context, status=exc.status_code)
    if request.method != "POST":
        return render(request, "dashboard/workspace/file.html", context)
    content = request.POST.get("content", "").replace("\r\n", "\n")  # browsers send CRLF from a textarea
    try:
        result = workspace.file_write(
            tenant=tenant, path=context["path"], content=content, expected_sha256=request.POST.get("sha256", "")
        )
    except workspace.WorkspaceError as exc:
        context.update(content=content, save_error=str(exc))
        return render(request, "dashboard/workspace/file.html", context, status=exc.status_code)
    if result["created"]:
        messages.success(request, f"{result['path']} created.")
    else:
        messages.success(request, f"{result['path']} saved; the previous version is kept as a backup.")
    return HttpResponseRedirect(_file_url(result["path"]))


@require_POST
@member_required(role=Role.ADMIN)
def restore(request):
    path, backup_id = request.POST.get("path", ""), request.POST.get("backup_id", "")
    try:
        result = workspace.backup_restore(tenant=request.principal.tenant, path=path, backup_id=backup_id)
    except workspace.WorkspaceError as exc:
        messages.error(request, str(exc))
        return HttpResponseRedirect(_file_url(path) if path else reverse("dashboard:workspace"))
    messages.success(request, f"{result['path']} restored from the backup; the content it replaced is a backup too.")
    return HttpResponseRedirect(_file_url(result["path"]))
