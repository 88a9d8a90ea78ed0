"""Base classes for tenant-scoped API views.

The tenant is resolved once, by authentication, into `request.auth` (a Principal); views read
it through `self.tenant` and hand it to selectors and services. Path ids are checked against
the documented format before any lookup, and an id that is not the tenant's is a 404.
"""

from __future__ import annotations

import uuid

from django.http import Http404
from rest_framework import viewsets
from rest_framework.views import APIView

from apps.core.errors import InvalidPathId
from apps.core.ids import is_valid_path_id, parse_uuid


class TenantScopedMixin:
    #: names the resource in "Invalid <label> ID format"; defaults to the kwarg's name
    id_label: str = "resource"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication and permissions first: no probing
        for name, value in kwargs.items():
            if not is_valid_path_id(str(value)):
                label = self.id_label if name in ("pk", "id") else name.removesuffix("_id").replace("_", " ")
                raise InvalidPathId(label)

    @property
    def principal(self):
        return self.request.auth

    @property
    def tenant(self):
        return self.request.auth.tenant

    def actor(self):
        from apps.core.ratelimit import client_address

        # The principal (apps.tenancy.principal) makes its own Actor: core sits below tenancy.
        return self.principal.as_actor(
            ip=client_address(self.request), request_id=getattr(self.request, "request_id", "")
        )

    def uuid_or_404(self, value: str) -> uuid.UUID:
        parsed = parse_uuid(value)
        if parsed is None:
            raise Http404
        return parsed


class TenantAPIView(TenantScopedMixin, APIView):
    """For small actions (`POST /api/.../cancel`)."""


class TenantViewSet(TenantScopedMixin, viewsets.GenericViewSet):
    """For resources. Subclasses implement `get_queryset()` with a selector taking the tenant."""

    lookup_value_regex = "[^/]+"  # let malformed ids reach initial() for a clear 400

    def get_object(self):
        pk = self.uuid_or_404(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        obj = self.get_queryset().filter(pk=pk).first()
        if obj is None:
            raise Http404
        self.check_object_permissions(self.request, obj)
        return obj
