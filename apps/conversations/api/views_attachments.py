"""Attachments of a session (upload, list, download, delete) and session forks."""

from __future__ import annotations

from django.conf import settings
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from apps.conversations import attachments, forks
from apps.conversations.api.serializers import (
    AttachmentMultipartSerializer,
    AttachmentSerializer,
    AttachmentUploadSerializer,
    SessionDetailSerializer,
    SessionForkSerializer,
)
from apps.conversations.api.views import SESSION_LIMIT_RESPONSE, SessionScopedMixin, paginated
from apps.core.api.views import TenantAPIView
from apps.core.errors import json_error
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.core.pagination import DefaultPagination
from apps.core.parsers import BoundedJSONParser
from apps.tenancy.models import Role

UPLOAD_ERRORS = {
    413: OpenApiResponse(ErrorSerializer, description="The file is over ATTACHMENT_MAX_BYTES."),
    415: OpenApiResponse(
        ErrorSerializer,
        description="The file's type is not in ATTACHMENT_ALLOWED_TYPES, or the body is neither multipart nor JSON.",
    ),
    422: OpenApiResponse(
        ErrorSerializer,
        description="The bytes are not what the type says: not a readable image of that format, not UTF-8 text, "
        "not a PDF, or empty.",
    ),
}
# Text and other non-image files are always downloads, so a hostile upload (HTML sent as
# text/plain, say) is never rendered in our origin; images may be shown inline.
INLINE_TYPES = frozenset(attachments.IMAGE_FORMATS)


class SessionAttachmentsView(SessionScopedMixin, TenantAPIView):
    parser_classes = [MultiPartParser, BoundedJSONParser]
    required_roles = {"GET": Role.VIEWER, "POST": Role.MEMBER}
    pagination_class = DefaultPagination

    @extend_schema(
        tags=["attachments"],
        summary="The session's attachments, oldest first (paginated)",
        responses={200: AttachmentSerializer(many=True), **ERROR_RESPONSES},
    )
    def get(self, request, session_id):
        listed = attachments.attachment_list(tenant=self.tenant, session=self.get_session(session_id))
        return paginated(self, request, listed, AttachmentSerializer)

    @extend_schema(
        tags=["attachments"],
        summary="Upload a file to the session; name it in message parts by its `ref`",
        description=(
            "Multipart with the file in a `file` field (browsers), or JSON `{filename, mime_type, data}` with the "
            "bytes in base64 (programs). Up to ATTACHMENT_MAX_BYTES (default 10 MiB); types in "
            "ATTACHMENT_ALLOWED_TYPES (images, text, CSV, Markdown, JSON, PDF). Images must decode as the format "
            "their type names, text must be UTF-8. Then post a message with a part "
            '`{"type": "image", "ref": "att_..."}` (or `"file"`): images reach vision models as data, text '
            "files are read into the context within ATTACHMENT_TEXT_TOKEN_BUDGET tokens."
        ),
        request={
            "multipart/form-data": AttachmentMultipartSerializer,
            "application/json": AttachmentUploadSerializer,
        },
        responses={201: AttachmentSerializer, **UPLOAD_ERRORS, **ERROR_RESPONSES},
    )
    def post(self, request, session_id):
        session = self.get_session(session_id)
        try:
            filename, declared, data = self._upload(request)
            attachment = attachments.attachment_create(
                tenant=self.tenant,
                session=session,
                filename=filename,
                declared_type=declared,
                data=data,
                principal=self.principal,
            )
        except attachments.AttachmentRejected as rejected:
            return json_error(rejected.status, rejected.error, rejected.message)
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)

    def _upload(self, request) -> tuple[str, str, bytes]:
        limit = settings.ATTACHMENT_MAX_BYTES
        try:
            body = request.data
            files = request.FILES
        except ParseError as exc:
            raise ValidationError({"file": [f"Malformed upload: {exc.detail}"]}) from None
        if request.content_type.startswith("multipart/"):
            upload = files.get("file")
            if upload is None:
                raise ValidationError({"file": ["Send the file in a multipart field named `file`."]})
            if upload.size > limit:
                raise attachments.AttachmentRejected(
                    413, "Payload too large", f"The file is {upload.size} bytes; the limit is {limit}."
                )
            return upload.name or "", upload.content_type or "", upload.read()
        payload = AttachmentUploadSerializer(data=body)
        payload.is_valid(raise_exception=True)
        encoded = payload.validated_data["data"]
        if len(encoded) * 3 // 4 > limit + 3:  # refused before decoding what cannot fit anyway
            raise attachments.AttachmentRejected(
                413, "Payload too large", f"The file is over the limit of {limit} bytes (ATTACHMENT_MAX_BYTES)."
            )
        return (
            payload.validated_data["filename"],
            payload.validated_data.get("mime_type", ""),
            attachments.decode_base64(encoded),
        )


class SessionAttachmentView(SessionScopedMixin, TenantAPIView):
    required_roles = {"GET": Role.VIEWER, "DELETE": Role.MEMBER}
    id_label = "attachment"

    def get_attachment(self, session_id: str, ref: str):
        attachment = attachments.attachment_get(tenant=self.tenant, session=self.get_session(session_id), ref=ref)
        if attachment is None:
            raise Http404
        return attachment

    @extend_schema(
        tags=["attachments"],
        summary="Download the file",
        description="The stored bytes with their type. Images may be shown inline; every other type is sent as a "
        "download (`Content-Disposition: attachment`), and `X-Content-Type-Options: nosniff` is always set.",
        responses={(200, "*/*"): OpenApiResponse(OpenApiTypes.BINARY, description="The file."), **ERROR_RESPONSES},
    )
    def get(self, request, session_id, ref):
        attachment = self.get_attachment(session_id, ref)
        try:
            handle = attachments.attachment_path(attachment).open("rb")
        except OSError:
            return json_error(404, "Not found", "The attachment's file is gone.")
        response = FileResponse(
            handle,
            content_type=attachment.mime_type,
            as_attachment=attachment.mime_type not in INLINE_TYPES,
            filename=attachment.filename,
        )
        response["X-Content-Type-Options"] = "nosniff"
        # Even an image is never a document that runs scripts (SVG is not accepted, but say so anyway).
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response

    @extend_schema(
        tags=["attachments"],
        summary="Delete the attachment (messages naming it keep their parts; models are told it is gone)",
        responses={204: None, **ERROR_RESPONSES},
    )
    def delete(self, request, session_id, ref):
        attachments.attachment_delete(tenant=self.tenant, attachment=self.get_attachment(session_id, ref))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionForkView(SessionScopedMixin, TenantAPIView):
    required_roles = {"POST": Role.MEMBER}

    @extend_schema(
        tags=["sessions"],
        summary="Fork the session at a message into a new session",
        description=(
            "A new session of the same agent and owner with a copy of the history: up to and including "
            "`at_message_id`, or strictly before `before_message_id` (edit and resend: post the edited message "
            "to the fork). The session's attachments are copied with the same refs. The parent is unchanged and "
            "lists the fork in `forks`. 404 when the message is not one of this session's."
        ),
        request=SessionForkSerializer,
        responses={201: SessionDetailSerializer, **SESSION_LIMIT_RESPONSE, **ERROR_RESPONSES},
    )
    def post(self, request, session_id):
        session = self.get_session(session_id)
        payload = SessionForkSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        kind = forks.AT if data.get("at_message_id") else forks.BEFORE
        fork = forks.session_fork(
            tenant=self.tenant,
            session=session,
            message_id=data.get("at_message_id") or data.get("before_message_id"),
            kind=kind,
        )
        return Response(SessionDetailSerializer(fork).data, status=status.HTTP_201_CREATED)
