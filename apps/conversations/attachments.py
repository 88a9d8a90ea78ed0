"""Attachments: files uploaded to a session and named in message parts by their `ref`.

Storage is tenant-confined and never takes a path from the client: the bytes of an attachment
are at ATTACHMENT_ROOT/<tenant id>/<attachment id>. What the client says about a file (its name,
its type) is checked against the bytes: the type must be in ATTACHMENT_ALLOWED_TYPES, an image
must decode as that image format (Pillow), text must decode as UTF-8, a PDF must start as one.

A ref is unique within its session. A fork copies its parent's attachment rows with the same
refs, and the copy's file is a hard link to the parent's (a copy where links are refused), so
deleting one session never takes the files of another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import mimetypes
import os
import secrets
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError

from apps.conversations.models import Attachment, ChatSession

REF_PREFIX = "att_"
TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/csv", "application/json"})
# Pillow's format name for each image type we accept: the declared type must match the bytes.
IMAGE_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
# Names the platform's mimetypes table may not know.
_EXTRA_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".csv": "text/csv", ".webp": "image/webp"}
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
FILENAME_MAX = 255


class AttachmentRejected(Exception):
    """The upload is well-formed but not acceptable. `status`: 413 (too large), 415 (a type
    that is not allowed) or 422 (the bytes are not what the type says)."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


# --- storage ----------------------------------------------------------------------------------------


def attachment_path(attachment: Attachment) -> Path:
    return _path_for(tenant_id=attachment.tenant_id, attachment_id=attachment.pk)


def _path_for(*, tenant_id, attachment_id) -> Path:
    # Both parts are UUIDs we made: nothing the client sent can steer the path.
    return settings.ATTACHMENT_ROOT / str(uuid.UUID(str(tenant_id))) / str(uuid.UUID(str(attachment_id)))


def _write_file(path: Path, data: bytes) -> None:
    """Written to a temporary file beside it and renamed: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _unlink_after_commit(paths: list[Path]) -> None:
    def unlink() -> None:
        for path in paths:
            path.unlink(missing_ok=True)

    transaction.on_commit(unlink)


def attachments_forget_tenant(sender, instance, **kwargs) -> None:  # noqa: ARG001 - a pre_delete receiver
    """A deleted tenant's attachment rows cascade; its folder of files goes too, once the delete
    commits (a rolled-back delete keeps them)."""
    folder = settings.ATTACHMENT_ROOT / str(uuid.UUID(str(instance.pk)))
    transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


def attachment_read(attachment: Attachment) -> bytes:
    return attachment_path(attachment).read_bytes()


# --- checking an upload --------------------------------------------------------------------------


def normalize_type(declared: str, filename: str) -> str:
    """`text/plain; charset=utf-8` -> `text/plain`; a missing or generic type is guessed from the name."""
    mime = (declared or "").split(";", 1)[0].strip().lower()
    if mime in _GENERIC_TYPES:
        suffix = Path(filename).suffix.lower()
        mime = ""
        if suffix:
            mime = _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0] or ""
    return mime or "application/octet-stream"


def clean_filename(name: str) -> str:
    """The last path segment, without control characters: it is a label, never a path."""
    base = str(name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '"').strip()
    return (base or "attachment")[:FILENAME_MAX]


@dataclass(frozen=True)
class CheckedFile:
    mime_type: str
    width: int | None = None
    height: int | None = None


def check_content(*, data: bytes, mime_type: str) -> CheckedFile:
    """Raises AttachmentRejected unless the bytes are an allowed type and are what it says."""
    limit = settings.ATTACHMENT_MAX_BYTES
    if len(data) > limit:
        raise AttachmentRejected(
            413, "Payload too large", f"The file is {len(data)} bytes; the limit is {limit} (ATTACHMENT_MAX_BYTES)."
        )
    allowed = [t.strip().lower() for t in settings.ATTACHMENT_ALLOWED_TYPES]
    if mime_type not in allowed:
        raise AttachmentRejected(
            415, "Unsupported media type", f"{mime_type} files are not accepted; allowed: {', '.join(allowed)}."
        )
    if not data:
        raise AttachmentRejected(422, "Invalid file", "The file is empty.")
    if mime_type in IMAGE_FORMATS:
        return _check_image(data, mime_type)
    if mime_type in TEXT_TYPES or mime_type.startswith("text/"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AttachmentRejected(
                422, "Invalid file", f"A {mime_type} file must be UTF-8 text (byte {exc.start} is not)."
            ) from None
    elif mime_type == "application/pdf" and not data.startswith(b"%PDF-"):
        raise AttachmentRejected(422, "Invalid file", "The file is not a PDF (it does not start with %PDF-).")
    return CheckedFile(mime_type=mime_type)


def _check_image(data: bytes, mime_type: str) -> CheckedFile:
    from PIL import Image

    expected = IMAGE_FORMATS[mime_type]
    try:
        with Image.open(io.BytesIO(data)) as image:
            found, (width, height) = image.format, image.size
            image.verify()  # walks the file's structure and checksums without decoding the pixels
    except Image.DecompressionBombError:
        raise AttachmentRejected(422, "Invalid image", "The image has too many pixels.") from None
    except Exception:  # noqa: BLE001 - Pillow raises many types for a broken file; all mean "not an image"
        raise AttachmentRejected(422, "Invalid image", f"The file is not a readable {mime_type} image.") from None
    if found != expected:
        raise AttachmentRejected(
            422, "Invalid image", f"The file is a {found} image, not {mime_type}; send it with its real type."
        )
    return CheckedFile(mime_type=mime_type, width=width, height=height)


def decode_base64(value: str) -> bytes:
    """Standard base64 (a data: URL prefix is allowed); ValidationError (400) otherwise."""
    text = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError({"data": ["Not valid base64."]}) from None


# --- services ---------------------------------------------------------------------------------------


def attachment_create(
    *, tenant, session: ChatSession, filename: str, declared_type: str, data: bytes, principal=None
) -> Attachment:
    """Check and store one upload. The file is in place before its row commits, so a ref that
    can be read always has its bytes; a failed transaction removes the file again."""
    name = clean_filename(filename)
    user = getattr(principal, "user", None)
    checked = check_content(data=data, mime_type=normalize_type(declared_type, name))
    attachment = Attachment(
        tenant=tenant,
        session=session,
        ref=REF_PREFIX + secrets.token_urlsafe(18),
        filename=name,
        mime_type=checked.mime_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        width=checked.width,
        height=checked.height,
        uploaded_by=user if getattr(user, "pk", None) else None,
        uploaded_by_label=getattr(principal, "label", "") or "",
    )
    path = attachment_path(attachment)
    _write_file(path, data)
    try:
        with transaction.atomic():
            attachment.save(force_insert=True)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return attachment


def attachment_delete(*, tenant, attachment: Attachment) -> None:
    """Messages that name it keep their parts; the turn context says the file is gone."""
    with transaction.atomic():
        Attachment.objects.filter(tenant=tenant, pk=attachment.pk).delete()
        _unlink_after_commit([attachment_path(attachment)])


def attachments_forget_session(*, tenant, session: ChatSession) -> None:
    """Called inside the transaction that deletes a session: its files go once it commits."""
    ids = Attachment.objects.filter(tenant=tenant, session=session).values_list("pk", flat=True)
    _unlink_after_commit([_path_for(tenant_id=tenant.pk, attachment_id=pk) for pk in ids])


def attachments_copy_to_session(*, tenant, source: ChatSession, target: ChatSession) -> int:
    """The fork's copies of the source's attachments, same refs; inside the fork's transaction
    (session_fork calls it last, so little can fail after the links are made; a link left by a
    rolled-back fork is an unreferenced file, never a wrong one)."""
    copies, written = [], []
    for original in Attachment.objects.filter(tenant=tenant, session=source).order_by("created_at"):
        copy = Attachment(
            tenant=tenant,
            session=target,
            **{
                field: getattr(original, field)
                for field in (
                    "ref",
                    "filename",
                    "mime_type",
                    "size",
                    "sha256",
                    "width",
                    "height",
                    "uploaded_by_id",
                    "uploaded_by_label",
                )
            },
        )
        source_path, target_path = attachment_path(original), attachment_path(copy)
        if not source_path.exists():
            continue  # its file was lost: the copy would be a ref with no bytes
        target_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source_path, target_path)
        except OSError:
            shutil.copyfile(source_path, target_path)
        written.append(target_path)
        copies.append(copy)
    try:
        Attachment.objects.bulk_create(copies)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return len(copies)


# --- selectors --------------------------------------------------------------------------------------


def attachment_list(*, tenant, session: ChatSession) -> QuerySet[Attachment]:
    return Attachment.objects.filter(tenant=tenant, session=session).order_by("created_at")


def attachment_get(*, tenant, session: ChatSession, ref: str) -> Attachment | None:
    return attachment_list(tenant=tenant, session=session).filter(ref=ref).first()


# --- message parts ----------------------------------------------------------------------------------


def parts_resolve_refs(*, tenant, session: ChatSession, parts: list[dict]) -> list[dict]:
    """Every image or file part with a `ref` must name an attachment of this session (a fork
    has its parent's): the part is completed from the stored row (type, name, size), so what the
    client claimed about the file never reaches a model. ValidationError names the bad parts."""
    refs = {p["ref"] for p in parts if p.get("type") in ("image", "file") and p.get("ref")}
    if not refs:
        return parts
    found = {a.ref: a for a in Attachment.objects.filter(tenant=tenant, session=session, ref__in=refs)}
    errors, resolved = {}, []
    for index, part in enumerate(parts):
        ref = part.get("ref") if part.get("type") in ("image", "file") else None
        if not ref:
            resolved.append(part)
            continue
        attachment = found.get(ref)
        if attachment is None:
            errors[str(index)] = [
                f"No attachment {ref!r} in this session; upload it to /api/sessions/{session.pk}/attachments first "
                "(refs belong to the session they were uploaded to, and to its forks)."
            ]
            continue
        if part["type"] == "image" and not attachment.is_image:
            errors[str(index)] = [f"{ref} is a {attachment.mime_type} file; send it as a `file` part."]
            continue
        resolved.append(
            {
                **{k: v for k, v in part.items() if k not in ("url", "mime_type")},
                "mime_type": attachment.mime_type,
                "filename": attachment.filename,
                "size": attachment.size,
            }
        )
    if errors:
        raise ValidationError({"parts": errors})
    return resolved
