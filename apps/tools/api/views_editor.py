"""The workspace editor: the tenant's files over HTTP (the same storage as the workspace_* tools)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.core.api.views import TenantAPIView
from apps.core.errors import error_body
from apps.core.openapi import ERROR_RESPONSES, ErrorSerializer
from apps.tools import workspace
from apps.tools.api.serializers import (
    BackupListSerializer,
    EditorFileSerializer,
    EditorWriteResultSerializer,
    EditorWriteSerializer,
    RestoreResultSerializer,
    RestoreSerializer,
)
from apps.tools.api.views import READ_VIEWER_WRITE_ADMIN

PATH_PARAMETER = OpenApiParameter(
    "path", OpenApiTypes.STR, required=True, description="Relative to the workspace, e.g. `notes/plan.md`."
)
WORKSPACE_ERRORS = {
    **ERROR_RESPONSES,
    400: OpenApiResponse(ErrorSerializer, description="A refused path (absolute, `..`, NUL, a link out) or bad input."),
    409: OpenApiResponse(ErrorSerializer, description="`expected_sha256` does not match the file."),
    413: OpenApiResponse(ErrorSerializer, description="Larger than WORKSPACE_MAX_FILE_BYTES, or past the quota."),
}
_TITLES = {400: "Invalid path", 404: "Not found", 409: "Conflict", 413: "Payload too large"}


def _refused(exc: workspace.WorkspaceError) -> Response:
    return Response(error_body(_TITLES.get(exc.status_code, "Invalid request"), str(exc)), status=exc.status_code)


def _path_param(request) -> str:
    path = request.query_params.get("path")
    if not path:
        raise ValidationError({"path": ["This query parameter is required."]})
    return path


class EditorFileView(TenantAPIView):
    required_roles = READ_VIEWER_WRITE_ADMIN

    @extend_schema(
        tags=["editor"],
        summary="Read a workspace file",
        parameters=[PATH_PARAMETER],
        responses={200: EditorFileSerializer, **WORKSPACE_ERRORS},
    )
    def get(self, request):
        try:
            found = workspace.file_read(tenant=self.tenant, path=_path_param(request))
        except workspace.WorkspaceError as exc:
            return _refused(exc)
        return Response(EditorFileSerializer(found).data)

    @extend_schema(
        tags=["editor"],
        summary="Write a workspace file (admin)",
        description="Creates folders as needed. The previous content is kept as a backup (`backup_id`; see "
        "GET /api/editor/backups). Send the `sha256` you read as `expected_sha256` to refuse (409) a write "
        "over someone else's change.",
        request=EditorWriteSerializer,
        responses={200: EditorWriteResultSerializer, **WORKSPACE_ERRORS},
    )
    def post(self, request):
        payload = EditorWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        try:
            result = workspace.file_write(
                tenant=self.tenant,
                path=data["path"],
                content=data["content"],
                expected_sha256=data.get("expected_sha256"),
            )
        except workspace.WorkspaceError as exc:
            return _refused(exc)
        return Response(EditorWriteResultSerializer(result).data)


class EditorBackupsView(TenantAPIView):
    @extend_schema(
        tags=["editor"],
        summary="The backups of a workspace file, newest first",
        parameters=[PATH_PARAMETER],
        responses={200: BackupListSerializer, **WORKSPACE_ERRORS},
    )
    def get(self, request):
        path = _path_param(request)
        try:
            backups = workspace.backup_list(tenant=self.tenant, path=path)
        except workspace.WorkspaceError as exc:
            return _refused(exc)
        return Response(BackupListSerializer({"path": workspace.clean_path(path), "backups": backups}).data)


class EditorRestoreView(TenantAPIView):
    required_roles = READ_VIEWER_WRITE_ADMIN

    @extend_schema(
        tags=["editor"],
        summary="Restore a workspace file from a backup (admin)",
        description="The content the restore replaces is backed up first (`backup_id` in the answer), so a "
        "restore can be undone the same way.",
        request=RestoreSerializer,
        responses={200: RestoreResultSerializer, **WORKSPACE_ERRORS},
    )
    def post(self, request):
        payload = RestoreSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            result = workspace.backup_restore(tenant=self.tenant, **payload.validated_data)
        except workspace.WorkspaceError as exc:
            return _refused(exc)
        return Response(RestoreResultSerializer(result).data)
