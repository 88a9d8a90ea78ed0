from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from rest_framework.exceptions import APIException

from apps.tenancy import services
from apps.tenancy.models import ROLE_RANK, Membership, Role, Scope, Tenant
from apps.tenancy.principal import Actor


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="Tenant slug")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'ci' or 'billing-sync'")
        parser.add_argument("--scopes", nargs="+", choices=Scope.values, default=[Scope.READ, Scope.WRITE])
        parser.add_argument("--role", choices=Role.values, default=Role.ADMIN, help="The most the key may do")
        parser.add_argument(
            "--user",
            default="",
            help="Username of a member the key acts for (what it does is theirs); its role cannot exceed theirs",
        )
        parser.add_argument("--expires-in-days", type=int, default=None)
        parser.add_argument("--quiet", action="store_true", help="Print only the key")

    def handle(self, *args, tenant: str, name: str, scopes, role, user: str, expires_in_days, quiet, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant '{tenant}'. Create it with `python manage.py create_tenant {tenant}`.")
        created_by = self._member(found, user, role) if user else None
        expires_at = timezone.now() + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            api_key, plaintext = services.api_key_create(
                tenant=found,
                actor=Actor.system("cli"),
                name=name,
                scopes=scopes,
                role=role,
                expires_at=expires_at,
                created_by=created_by,
            )
        except APIException as exc:
            raise CommandError(str(exc.detail)) from exc
        if quiet:
            self.stdout.write(plaintext)
            return
        self.stdout.write(f"API key '{api_key.name}' for tenant {found.slug} (scopes: {', '.join(api_key.scopes)}):")
        self.stdout.write(self.style.SUCCESS(plaintext))
        self.stdout.write("Store it now: it is not shown again.")

    def _member(self, tenant: Tenant, username: str, role: str):
        membership = Membership.objects.filter(tenant=tenant, user__username=username).select_related("user").first()
        if membership is None:
            raise CommandError(f"'{username}' is not a member of {tenant.slug}.")
        if ROLE_RANK[role] > ROLE_RANK[membership.role]:
            raise CommandError(
                f"'{username}' is a {membership.role} of {tenant.slug}; a key acting for them can be at most that."
            )
        return membership.user
