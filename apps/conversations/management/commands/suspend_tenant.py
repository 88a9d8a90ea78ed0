"""`manage.py suspend_tenant`: here, not in tenancy, because suspending also stops the tenant's
turns and sockets, which only conversations can do (docs/architecture.md, "Import map")."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.conversations.services import tenant_suspend_and_stop
from apps.tenancy import services
from apps.tenancy.models import Tenant
from apps.tenancy.principal import Actor


class Command(BaseCommand):
    help = (
        "Suspend a tenant: its keys and sessions stop working, its queued and running turns are "
        "cancelled (reason 'tenant suspended'), its live sockets close with 4401. --reactivate undoes it."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument("--reason", default="", help="Recorded in the audit log and shown in the admin")
        parser.add_argument("--reactivate", action="store_true", help="Reactivate a suspended tenant instead")

    def handle(self, *args, tenant: str, reason: str, reactivate: bool, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant '{tenant}'.")
        actor = Actor.system("cli")
        if reactivate:
            changed = services.tenant_reactivate(tenant=found, actor=actor)
            self.stdout.write(f"Reactivated {found.slug}." if changed else f"{found.slug} was not suspended.")
            return
        changed = tenant_suspend_and_stop(tenant=found, actor=actor, reason=reason or "suspended from the command line")
        self.stdout.write(f"Suspended {found.slug}." if changed else f"{found.slug} was already suspended.")
