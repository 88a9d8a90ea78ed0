"""`workspace_read`, `workspace_write`, `workspace_list`: the tenant's own files (apps.tools.workspace).

The tenant comes from the ToolContext the server fills; the model only names a relative path.
"""

from __future__ import annotations

from typing import Any

from apps.tools import workspace
from apps.tools.registry import SideEffect, Tool, ToolContext, ToolError

# No maxLength here: apps.tools.workspace checks the length (and everything else about a path),
# and may itself be mid-import when this module loads (see builtins/__init__.py).
_PATH = {
    "type": "string",
    "minLength": 1,
    "description": "Relative to the workspace, '/'-separated, e.g. 'notes/plan.md'.",
}


def _tenant(context: ToolContext):
    if context.tenant is None:
        raise ToolError("The workspace needs a tenant; this call has none.")
    return context.tenant


def workspace_read(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return workspace.file_read(tenant=_tenant(context), path=arguments["path"])


def workspace_write(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return workspace.file_write(
        tenant=_tenant(context), path=arguments["path"], content=arguments["content"], redact=True
    )


def workspace_write_dry_run(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return workspace.write_preview(
        tenant=_tenant(context), path=arguments["path"], content=arguments["content"], redact=True
    )


def workspace_list(context: ToolContext, arguments: dict[str, Any]) -> dict[str, Any]:
    return workspace.file_list(
        tenant=_tenant(context), path=arguments.get("path") or "", recursive=bool(arguments.get("recursive"))
    )


workspace_read_tool = Tool(
    name="workspace_read",
    description="Read a UTF-8 text file from the workspace; returns its content, size and sha256.",
    parameters={
        "type": "object",
        "properties": {"path": _PATH},
        "required": ["path"],
        "additionalProperties": False,
    },
    handler=workspace_read,
    side_effect=SideEffect.READ,
)

workspace_write_tool = Tool(
    name="workspace_write",
    description=(
        "Create or replace a UTF-8 text file in the workspace (folders are created as needed). "
        "The previous content is kept as a backup."
    ),
    parameters={
        "type": "object",
        "properties": {
            "path": _PATH,
            "content": {"type": "string", "description": "The whole new content of the file."},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    handler=workspace_write,
    side_effect=SideEffect.WRITE,
    dry_run=workspace_write_dry_run,
)

workspace_list_tool = Tool(
    name="workspace_list",
    description="List the files and folders of the workspace, or of one folder in it.",
    parameters={
        "type": "object",
        "properties": {
            "path": {**_PATH, "minLength": 0, "description": "A folder; empty or absent: the workspace root."},
            "recursive": {"type": "boolean", "description": "Also list the folders' contents (default false)."},
        },
        "additionalProperties": False,
    },
    handler=workspace_list,
    side_effect=SideEffect.READ,
)
