from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "apps.agents"
    label = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        # Every deploy runs migrate: the environment's platform providers (a rotated
        # OPENAI_API_KEY, a new OLLAMA_HOST) reach their rows then, not only at the next bootstrap.
        from django.db.models.signals import post_migrate

        from apps.agents.services.platform import platform_providers_sync_receiver

        post_migrate.connect(platform_providers_sync_receiver, sender=self, dispatch_uid="agents.platform_sync")
