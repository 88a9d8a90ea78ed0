"""The Celery application: configured from Django settings (keys prefixed CELERY_)."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")

app = Celery("agentplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_worker_logs(logger, **_kwargs) -> None:
    """The worker replaces the root logger's handlers with its own: they get the redacting
    filter too (docs/security.md, "Redaction")."""
    from apps.core.logging import install_redaction

    install_redaction(logger)
