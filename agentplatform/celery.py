"""The Celery application: configured from Django settings (keys prefixed CELERY_)."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_ready

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


logger = logging.getLogger(__name__)


@worker_ready.connect
def dispatch_turns_at_worker_start(**_signal) -> None:
    """Beat needs the broker too, so the first moment the broker is known to be back is often
    a worker (re)starting: turns committed while it was down are sent from here at once."""
    from apps.conversations.dispatch import turns_dispatch_pending

    try:
        turns_dispatch_pending()
    except Exception:  # a failed sweep must not stop the worker; beat sweeps again shortly
        logger.exception("the start-up turn dispatch failed")
