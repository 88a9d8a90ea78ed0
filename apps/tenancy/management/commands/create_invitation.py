from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import APIException

from apps.tenancy.invitations import invitation_create
from apps.tenancy.models import Role, Tenant
from apps.tenancy.principal import Actor


class Command(BaseCommand):
    help = (
        "Invite an email address to a tenant and print the invitation token once (only its hash is "
        "stored). The invitee accepts it signed in with that address: POST /api/invitations/accept."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug")
        parser.add_argument("email", help="The address to invite")
        parser.add_argument("--role", choices=Role.values, default=Role.MEMBER)

    def handle(self, *args, tenant: str, email: str, role: str, **options):
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant '{tenant}'. Create it with `python manage.py create_tenant {tenant}`.")
        try:
            # The operator stands above every tenant role, owner included.
            invitation, token = invitation_create(
                tenant=found, actor=Actor.system("cli"), actor_role=Role.OWNER, email=email, role=role
            )
        except APIException as exc:
            raise CommandError(str(exc.detail)) from exc
        self.stdout.write(
            f"Invitation for {invitation.email} to {found.slug} as {invitation.role}, "
            f"valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC. Send this token; it is not shown again:"
        )
        self.stdout.write(self.style.SUCCESS(token))
