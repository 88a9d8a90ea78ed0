from __future__ import annotations

from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "apps.tools"
    label = "tools"
    verbose_name = "Tools"

    def ready(self) -> None:
        # The `remember` and `recall` tools use memory's models, so they join the built-in tools
        # once the app registry is ready (apps/tools/builtins/memory.py says why not earlier).
        from apps.tools.builtins.memory import MEMORY_TOOLS
        from apps.tools.registry import builtin_registry

        for tool in MEMORY_TOOLS:
            if builtin_registry.get(tool.name) is None:
                builtin_registry.register(tool)
