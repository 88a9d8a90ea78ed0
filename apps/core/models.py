"""Bases every app's models share."""

from __future__ import annotations

from django.db import models

from apps.core.ids import new_id


class TimestampedModel(models.Model):
    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class TenantOwnedModel(TimestampedModel):
    """A row that belongs to exactly one tenant.

    There is no manager that filters on a "current tenant": selectors take the tenant as an
    argument and filter explicitly, so a reader always sees which tenant a query is for.
    """

    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, db_index=True, related_name="+")

    class Meta:
        abstract = True
