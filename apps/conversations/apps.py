from __future__ import annotations

from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "apps.conversations"
    label = "conversations"
    verbose_name = "Conversations"

    def ready(self) -> None:
        # Memory and events ask about sessions and turns through this port instead of importing
        # them (apps/core/chat_sessions.py says why).
        from apps.conversations import directory
        from apps.core.chat_sessions import session_directory_register

        session_directory_register(directory)

        from django.db.models.signals import pre_delete

        from apps.conversations.attachments import attachments_forget_tenant
        from apps.tenancy.models import Tenant

        pre_delete.connect(attachments_forget_tenant, sender=Tenant, dispatch_uid="attachments-forget-tenant")
