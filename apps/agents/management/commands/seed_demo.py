"""`manage.py seed_demo`: the demo tenant, its owner, a key and a default agent. Here, not in
tenancy, because it bootstraps agents, and tenancy sits below agents (docs/architecture.md)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from apps.agents.services import tenant_bootstrap_agents
from apps.tenancy import services
from apps.tenancy.models import Role, Scope, Tenant
from apps.tenancy.principal import Actor

DEMO_SLUG = "demo"
ADMIN_USERNAME = "admin"


class Command(BaseCommand):
    help = (
        "Create, once, the demo tenant, an admin user who owns it and an API key; print the login "
        "and the key. Later runs change nothing and say how to get a new key."
    )

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url: str, **options):
        if Tenant.objects.filter(slug=DEMO_SLUG).exists():
            self.stdout.write(
                "\n".join(
                    [
                        f"Demo tenant exists. Admin: {base_url}/admin/  user: {ADMIN_USERNAME} "
                        "(password printed on first run;",
                        f"  reset it: python manage.py changepassword {ADMIN_USERNAME})",
                        "  New API key: python manage.py create_api_key "
                        f"--tenant {DEMO_SLUG} --name mykey --role owner --scopes read write admin "
                        f"--user {ADMIN_USERNAME}",
                    ]
                )
            )
            return
        password = secrets.token_urlsafe(12)
        actor = Actor.system("seed_demo")
        with transaction.atomic():
            user_model = get_user_model()
            admin = user_model.objects.filter(username=ADMIN_USERNAME).first()
            if admin is None:
                admin = user_model.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", password)
                password_line = f"password: {password}"
            else:
                password_line = "password: unchanged (the user existed already)"  # noqa: S105 - a message
            tenant = services.tenant_create(slug=DEMO_SLUG, name="Demo", owner=admin, actor=actor)
            agent = tenant_bootstrap_agents(tenant=tenant, actor=actor)
            _, key = services.api_key_create(
                tenant=tenant, actor=actor, name="demo", scopes=list(Scope.values), role=Role.OWNER, created_by=admin
            )
        banner = "=" * 72
        self.stdout.write(
            "\n".join(
                [
                    banner,
                    "Demo tenant created. These secrets are shown once; copy them now.",
                    f"  Admin:    {base_url}/admin/   user: {ADMIN_USERNAME}   {password_line}",
                    f"  API key:  {key}",
                    f"  Try:      curl -H 'Authorization: Bearer {key}' {base_url}/api/tenants/current",
                    f"  API docs: {base_url}/api/docs/",
                    f"  Agent:    {agent.name} on {agent.guide_model.ref if agent.guide_model else 'no model'}",
                    banner,
                ]
            )
        )
