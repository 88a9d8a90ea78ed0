"""Each tenant's workspace: text files under WORKSPACE_ROOT/<tenant id>/files, with a backup of
the previous content on every write, under WORKSPACE_ROOT/<tenant id>/backups.

Paths come from models and API callers, so every one is checked before the filesystem sees it:
relative, `/`-separated, no `..`, no NUL or control characters, no backslashes or drive letters;
and once joined to the tenant's folder, its real path (symlinks resolved) must still be inside
that folder. The tenant is always an argument from the server (ToolContext, the request's key),
never part of the path.

Writes hold a per-tenant lock (flock, so across processes on one machine) and replace files
atomically; a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.core.redaction import redact_text
from apps.tools.registry import ToolError

PATH_MAX_CHARS = 512
NAME_MAX_BYTES = 255
LIST_MAX_ENTRIES = 1000
DIFF_MAX_CHARS = 20000
BACKUP_ID_RE = re.compile(r"^\d{8}T\d{12}Z-[0-9a-f]{6}$")
_TMP_PREFIX = ".~tmp-"
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


class WorkspaceError(ToolError):
    """A refused or failed workspace operation; the message is safe to show (model or API caller)."""

    status_code = 400


class PathRefused(WorkspaceError):
    status_code = 400


class WorkspaceNotFound(WorkspaceError):
    status_code = 404


class WorkspaceConflict(WorkspaceError):
    status_code = 409


class WorkspaceTooLarge(WorkspaceError):
    status_code = 413


# --- paths ---------------------------------------------------------------------------------------


def clean_path(path: Any, *, allow_root: bool = False) -> str:
    """The canonical relative form of `path` (`a/b.txt`), or PathRefused saying why not."""
    if not isinstance(path, str):
        raise PathRefused("The path must be a string.")
    if "\x00" in path:
        raise PathRefused("The path contains a NUL byte.")
    if len(path) > PATH_MAX_CHARS:
        raise PathRefused(f"The path is longer than {PATH_MAX_CHARS} characters.")
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        raise PathRefused("The path contains control characters.")
    if path.startswith(("/", "~")) or _DRIVE_RE.match(path):
        raise PathRefused("Absolute paths are refused; give a path relative to the workspace.")
    if "\\" in path:
        raise PathRefused("Use / to separate folders; backslashes are refused.")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PathRefused("'..' is refused: paths stay inside the workspace.")
    if any(len(part.encode()) > NAME_MAX_BYTES for part in parts):
        raise PathRefused(f"A file or folder name is longer than {NAME_MAX_BYTES} bytes.")
    if any(part.startswith(_TMP_PREFIX) for part in parts):
        raise PathRefused(f"Names starting with '{_TMP_PREFIX}' are reserved.")
    if not parts and not allow_root:
        raise PathRefused("The path is empty; name a file.")
    return "/".join(parts)


def tenant_root(tenant) -> Path:
    return Path(settings.WORKSPACE_ROOT) / str(tenant.pk)


def _files_dir(tenant) -> Path:
    directory = tenant_root(tenant) / "files"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def _inside(tenant, relative: str) -> Path:
    """The absolute path of `relative` in the tenant's files, refused if it resolves elsewhere
    (a symlink anywhere on the way that points out of the workspace)."""
    base = _files_dir(tenant)
    target = base / relative if relative else base
    real_base = os.path.realpath(base)
    real = os.path.realpath(target)
    if real != real_base and not real.startswith(real_base + os.sep):
        raise PathRefused("The path leads out of the workspace (through a symbolic link); refused.")
    return target


@contextlib.contextmanager
def _tenant_lock(tenant) -> Iterator[None]:
    root = tenant_root(tenant)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(root / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(target: Path) -> bytes | None:
    """The file's bytes, None if there is no file; never follows a symlink at the last step and
    never opens anything but a regular file (a FIFO would block the worker)."""
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except IsADirectoryError as exc:
        raise PathRefused("That path is a folder, not a file.") from exc
    except OSError as exc:  # ELOOP: the last component is a symlink
        raise PathRefused(f"Cannot open that path: {exc.strerror}.") from exc
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise PathRefused("That path is a folder, not a file.")
        if not stat.S_ISREG(mode):
            raise PathRefused("That path is not a regular file.")
        data = handle.read(settings.WORKSPACE_MAX_FILE_BYTES + 1)
    if len(data) > settings.WORKSPACE_MAX_FILE_BYTES:
        raise WorkspaceTooLarge(f"The file is larger than {settings.WORKSPACE_MAX_FILE_BYTES} bytes.")
    return data


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f"{_TMP_PREFIX}{secrets.token_hex(8)}"
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _usage_bytes(tenant) -> int:
    total = 0
    for folder, _dirs, files in os.walk(tenant_root(tenant)):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _isoformat(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


# --- backups ---------------------------------------------------------------------------------------


def _backup_dir(tenant, relative: str) -> Path:
    # One folder per file, named by the hash of its path: no user text becomes a backup path.
    return tenant_root(tenant) / "backups" / _sha256(relative.encode())[:32]


def _new_backup_id() -> str:
    now = datetime.now(tz=UTC)
    return f"{now:%Y%m%dT%H%M%S}{now.microsecond:06d}Z-{secrets.token_hex(3)}"


def _backup(tenant, relative: str, data: bytes) -> str:
    directory = _backup_dir(tenant, relative)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / "path.json").write_text(json.dumps({"path": relative}))
    backup_id = _new_backup_id()
    _write_atomically(directory / backup_id, data)
    kept = sorted(name for name in os.listdir(directory) if BACKUP_ID_RE.match(name))
    for old in kept[: max(0, len(kept) - settings.WORKSPACE_MAX_BACKUPS)]:
        with contextlib.suppress(FileNotFoundError):
            (directory / old).unlink()
    return backup_id


def backup_list(*, tenant, path: str) -> list[dict[str, Any]]:
    """The backups of one file, newest first: `{backup_id, created_at, size, sha256}`."""
    relative = clean_path(path)
    directory = _backup_dir(tenant, relative)
    if not directory.is_dir():
        return []
    backups = []
    for name in sorted((n for n in os.listdir(directory) if BACKUP_ID_RE.match(n)), reverse=True):
        data = (directory / name).read_bytes()
        created = datetime.strptime(name[:22], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        backups.append(
            {
                "backup_id": name,
                "created_at": created.isoformat().replace("+00:00", "Z"),
                "size": len(data),
                "sha256": _sha256(data),
            }
        )
    return backups


# --- files -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WritePlan:
    relative: str
    old: bytes | None
    new: bytes


def _plan_write(tenant, path: str, content: Any) -> WritePlan:
    relative = clean_path(path)
    if not isinstance(content, str):
        raise WorkspaceError("The content must be a string.")
    new = content.encode("utf-8")
    if len(new) > settings.WORKSPACE_MAX_FILE_BYTES:
        raise WorkspaceTooLarge(f"The content is larger than {settings.WORKSPACE_MAX_FILE_BYTES} bytes.")
    return WritePlan(relative=relative, old=_read_bytes(_inside(tenant, relative)), new=new)


def _redacted(content: Any) -> Any:
    return redact_text(content) if isinstance(content, str) else content  # _plan_write refuses non-strings


def file_read(*, tenant, path: str) -> dict[str, Any]:
    relative = clean_path(path)
    target = _inside(tenant, relative)
    data = _read_bytes(target)
    if data is None:
        raise WorkspaceNotFound(f"No file '{relative}' in the workspace.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkspaceError(f"'{relative}' is not a UTF-8 text file.") from exc
    return {
        "path": relative,
        "content": text,
        "size": len(data),
        "sha256": _sha256(data),
        "modified_at": _isoformat(target.stat().st_mtime),
    }


def file_write(
    *, tenant, path: str, content: str, expected_sha256: str | None = None, redact: bool = False
) -> dict[str, Any]:
    """Write a text file, keeping the previous content as a backup.

    `expected_sha256` makes the write conditional: it must be the hash of the current content
    ("" for a file that must not exist yet), else WorkspaceConflict; an editor sends the hash it
    read so a concurrent change is not overwritten unseen.

    `redact` replaces secrets in the content first: tools pass it, because what a model writes
    comes from a conversation (a page it read, a key someone pasted) and a file is read back into
    later prompts and shown in the editor. A person saving in the editor writes what they typed
    (their own config file may need its key)."""
    content = _redacted(content) if redact else content
    with _tenant_lock(tenant):
        plan = _plan_write(tenant, path, content)
        current = _sha256(plan.old) if plan.old is not None else ""
        if expected_sha256 is not None and expected_sha256 != current:
            now = current or "none: the file does not exist"
            raise WorkspaceConflict(f"'{plan.relative}' changed since it was read (its sha256 is now {now}).")
        growth = len(plan.new)  # the old content moves to a backup, so only the new bytes are added
        if _usage_bytes(tenant) + growth > settings.WORKSPACE_QUOTA_BYTES:
            raise WorkspaceTooLarge(f"The workspace would pass its quota of {settings.WORKSPACE_QUOTA_BYTES} bytes.")
        backup_id = _backup(tenant, plan.relative, plan.old) if plan.old is not None else None
        _write_atomically(_inside(tenant, plan.relative), plan.new)
    return {
        "path": plan.relative,
        "size": len(plan.new),
        "sha256": _sha256(plan.new),
        "created": plan.old is None,
        "backup_id": backup_id,
    }


def write_preview(*, tenant, path: str, content: str, redact: bool = False) -> dict[str, Any]:
    """What `file_write` would do, without doing it: the dry run of `workspace_write`."""
    content = _redacted(content) if redact else content
    plan = _plan_write(tenant, path, content)
    old_text = plan.old.decode("utf-8", errors="replace") if plan.old is not None else ""
    diff = "".join(
        difflib.unified_diff(
            old_text.splitlines(keepends=True),
            content.splitlines(keepends=True),
            fromfile="/dev/null" if plan.old is None else f"a/{plan.relative}",
            tofile=f"b/{plan.relative}",
        )
    )
    warnings = []
    if len(diff) > DIFF_MAX_CHARS:
        diff = diff[:DIFF_MAX_CHARS] + f"\n[diff truncated at {DIFF_MAX_CHARS} characters]"
        warnings.append("The diff is long and was truncated.")
    if plan.old is None:
        action = "create"
        rollback = "The file is new; restoring means writing its old state by hand (there is nothing to restore)."
        warnings.append(f"Creates a new file '{plan.relative}'.")
    elif plan.old == plan.new:
        action, rollback = "unchanged", "Nothing to undo: the content is the same."
    else:
        action = "modify"
        rollback = "The current content is backed up first; POST /api/editor/restore with that backup_id restores it."
    if _usage_bytes(tenant) + len(plan.new) > settings.WORKSPACE_QUOTA_BYTES:
        warnings.append("The write would pass the workspace quota and be refused.")
    return {
        "changes": [
            {
                "path": plan.relative,
                "action": action,
                "size_before": len(plan.old) if plan.old is not None else None,
                "size_after": len(plan.new),
            }
        ],
        "diff": diff,
        "reversible": plan.old is not None,
        "rollback": rollback,
        "warnings": warnings,
    }


def file_list(*, tenant, path: str = "", recursive: bool = False) -> dict[str, Any]:
    """Files and folders under `path` (the workspace root by default), sorted by path."""
    relative = clean_path(path, allow_root=True)
    base = _inside(tenant, relative)
    if relative and not base.exists():
        raise WorkspaceNotFound(f"No folder '{relative}' in the workspace.")
    if not base.is_dir():
        raise PathRefused(f"'{relative}' is a file, not a folder.")
    real_root = os.path.realpath(_files_dir(tenant))
    entries: list[dict[str, Any]] = []
    truncated = False
    for folder, dirs, files in os.walk(os.path.realpath(base)):
        # Links are never listed or entered: what they point to is not the workspace's to show.
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
        names = [(d, "dir") for d in dirs] + [(f, "file") for f in sorted(files)]
        for name, kind in names:
            full = os.path.join(folder, name)
            if name.startswith(_TMP_PREFIX) or os.path.islink(full):
                continue
            info = os.lstat(full)
            entries.append(
                {
                    "path": os.path.relpath(full, real_root),
                    "type": kind,
                    "size": info.st_size if kind == "file" else None,
                    "modified_at": _isoformat(info.st_mtime),
                }
            )
            if len(entries) >= LIST_MAX_ENTRIES:
                truncated = True
                break
        if truncated or not recursive:
            break
    entries.sort(key=lambda entry: entry["path"])
    return {"path": relative, "entries": entries, "truncated": truncated}


def backup_restore(*, tenant, path: str, backup_id: str) -> dict[str, Any]:
    """Put a backup's content back; the content it replaces is backed up first, so a restore
    can itself be undone."""
    relative = clean_path(path)
    if not isinstance(backup_id, str) or not BACKUP_ID_RE.match(backup_id):
        raise WorkspaceError("Invalid backup_id format.")
    with _tenant_lock(tenant):
        source = _backup_dir(tenant, relative) / backup_id
        if not source.is_file():
            raise WorkspaceNotFound(f"No backup '{backup_id}' of '{relative}'.")
        data = source.read_bytes()
        target = _inside(tenant, relative)
        current = _read_bytes(target)
        previous_backup = _backup(tenant, relative, current) if current is not None else None
        _write_atomically(target, data)
    return {
        "path": relative,
        "restored_from": backup_id,
        "backup_id": previous_backup,
        "size": len(data),
        "sha256": _sha256(data),
    }
