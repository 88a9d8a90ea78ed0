"""`manage.py seed_demo`: the demo tenant, its owner, a key and a default agent. Here, not in
tenancy, because it bootstraps agents, and tenancy sits below agents (docs/architecture.md)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.agents.services import tenant_bootstrap_agents
from apps.tenancy import services
from apps.tenancy.models import Membership, Role, Scope, Tenant
from apps.tenancy.principal import Actor

DEMO_SLUG = "demo"
ADMIN_USERNAME = "admin"  # the operator: Django admin, no tenant membership needed
DEMO_USERNAME = "demo"  # the demo tenant's owner: the dashboard


class Command(BaseCommand):
    help = (
        "Create, once, the demo tenant, its owner (the dashboard's demo user), an operator for the "
        "admin site and an API key; print the logins and the key. Later runs change nothing and "
        "say how to get a new key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url: str, **options):
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is not None:
            lines = [
                f"Demo tenant exists. Dashboard: {base_url}/  user: {DEMO_USERNAME}   Admin: {base_url}/admin/  "
                f"user: {ADMIN_USERNAME}",
                "  (passwords were printed on the first run; reset one: python manage.py changepassword <user>)",
                "  New API key: python manage.py create_api_key "
                f"--tenant {DEMO_SLUG} --name mykey --role owner --scopes read write admin --user {DEMO_USERNAME}",
            ]
            if not get_user_model().objects.filter(username=DEMO_USERNAME).exists():
                # Installs seeded before the dashboard existed have no demo user yet.
                password = self._demo_user(tenant)
                lines.insert(1, f"  Created the dashboard's demo user: {DEMO_USERNAME}   password: {password}")
            self.stdout.write("\n".join(lines))
            return
        actor = Actor.system("seed_demo")
        with transaction.atomic():
            user_model = get_user_model()
            admin_password = secrets.token_urlsafe(12)
            if user_model.objects.filter(username=ADMIN_USERNAME).exists():
                admin_line = "password: unchanged (the user existed already)"
            else:
                user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", admin_password)
                admin_line = f"password: {admin_password}"
            demo_password = secrets.token_urlsafe(12)
            demo_user = user_model.objects.filter(username=DEMO_USERNAME).first()
            if demo_user is None:
                demo_user = user_model.objects.create_user(DEMO_USERNAME, "demo@example.com", demo_password)
                demo_line = f"password: {demo_password}"
            else:
                demo_line = "password: unchanged (the user existed already)"
            tenant = services.tenant_create(slug=DEMO_SLUG, name="Demo", owner=demo_user, actor=actor)
            agent = tenant_bootstrap_agents(tenant=tenant, actor=actor)
            _, key = services.api_key_create(
                tenant=tenant,
                actor=actor,
                name="demo",
                scopes=list(Scope.values),
                role=Role.OWNER,
                created_by=demo_user,
            )
        banner = "=" * 72
        self.stdout.write(
            "\n".join(
                [
                    banner,
                    "Demo tenant created. These secrets are shown once; copy them now.",
                    f"  Dashboard: {base_url}/   user: {DEMO_USERNAME}   {demo_line}",
                    f"  Admin:     {base_url}/admin/   user: {ADMIN_USERNAME}   {admin_line}",
                    f"  API key:   {key}",
                    f"  Try:       curl -H 'Authorization: Bearer {key}' {base_url}/api/tenants/current",
                    f"  API docs:  {base_url}/api/docs/",
                    f"  Agent:     {agent.name} on {agent.guide_model.ref if agent.guide_model else 'no model'}",
                    banner,
                ]
            )
        )

    def _demo_user(self, tenant: Tenant) -> str:
        password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = get_user_model().objects.create_user(DEMO_USERNAME, "demo@example.com", password)
            Membership.objects.create(tenant=tenant, user=user, role=Role.OWNER)
        return password
