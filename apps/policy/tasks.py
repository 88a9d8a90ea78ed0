from __future__ import annotations

from celery import shared_task

from apps.policy import services


@shared_task(ignore_result=True)
def expire_approvals() -> int:
    """Pending approvals past their time count as denied, and their turns go on."""
    return services.approvals_expire()
