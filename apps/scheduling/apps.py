from __future__ import annotations

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "apps.scheduling"
    label = "scheduling"
    verbose_name = "Schedules"

    def ready(self) -> None:
        # Scheduling is a face: nothing below imports it, so it adds its tools to the built-in
        # registry and its beat hook to Celery's signals from here.
        from apps.scheduling import beat
        from apps.scheduling.tools import SCHEDULING_TOOLS
        from apps.tools.registry import builtin_tool_register

        for tool in SCHEDULING_TOOLS:
            builtin_tool_register(tool)
        beat.connect_signals()
