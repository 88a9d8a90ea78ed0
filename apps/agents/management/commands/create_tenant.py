"""`manage.py create_tenant`: a tenant and its default agent. Here, not in tenancy, because it
bootstraps agents, and tenancy sits below agents (docs/architecture.md, "Import map")."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.exceptions import APIException

from apps.agents.services import tenant_bootstrap_agents
from apps.tenancy import services
from apps.tenancy.principal import Actor


class Command(BaseCommand):
    help = "Create a tenant, optionally with an existing user as its owner."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Short unique name used in URLs and commands, e.g. acme")
        parser.add_argument("--name", default="", help="Display name (defaults to the slug)")
        parser.add_argument("--owner", default="", help="Username of an existing user to make owner")

    def handle(self, *args, slug: str, name: str, owner: str, **options):
        owner_user = None
        if owner:
            owner_user = get_user_model().objects.filter(username=owner).first()
            if owner_user is None:
                raise CommandError(f"No user '{owner}'. Create one with `python manage.py createsuperuser`.")
        try:
            with transaction.atomic():
                tenant = services.tenant_create(slug=slug, name=name, owner=owner_user, actor=Actor.system("cli"))
                # A new tenant can chat at once: the offline model, or a provider set in the environment.
                agent = tenant_bootstrap_agents(tenant=tenant, actor=Actor.system("cli"))
        except APIException as exc:
            raise CommandError(str(exc.detail)) from exc
        self.stdout.write(
            f"Default agent '{agent.name}' answers with {agent.guide_model.ref if agent.guide_model else '-'}"
        )
        self.stdout.write(self.style.SUCCESS(f"Created tenant {tenant.slug} ({tenant.pk})"))
