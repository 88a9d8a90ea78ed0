from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import APIException

from apps.core.urls_public import public_base_url
from apps.tenancy.invitations import invitation_create, invitation_link
from apps.tenancy.models import Role, Tenant
from apps.tenancy.principal import Actor


class Command(BaseCommand):
    help = (
        "Invite an email address to a tenant and print the invitation token once (only its hash is "
        "stored) and its link. The invitee opens the link signed in with that address (or POSTs the token "
        "to /api/invitations/accept). The link is a path unless PUBLIC_BASE_URL is set."
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
            f"valid until {invitation.expires_at:%Y-%m-%d %H:%M} UTC. Send the link (or the token, last line); "
            "neither is shown again:"
        )
        self.stdout.write(f"Link: {invitation_link(token=token, base_url=public_base_url())}")
        self.stdout.write(self.style.SUCCESS(token))
