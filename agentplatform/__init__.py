"""The agentplatform Django project package."""

from __future__ import annotations

from agentplatform.celery import app as celery_app

__all__ = ["celery_app"]
__version__ = "0.1.0"
