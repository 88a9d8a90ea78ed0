from __future__ import annotations

from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "apps.memory"
    label = "memory"
    verbose_name = "Memory"

    def ready(self) -> None:
        # The `remember` and `recall` tools use memory's models, so they join the built-in tools
        # once the app registry is ready (apps/tools/builtins/memory.py says why not earlier).
        from apps.tools.builtins.memory import MEMORY_TOOLS
        from apps.tools.registry import builtin_registry

        for tool in MEMORY_TOOLS:
            if builtin_registry.get(tool.name) is None:
                builtin_registry.register(tool)

        # A Celery worker process loads the local embedding model when it starts, not in its first turn.
        from celery.signals import worker_process_init

        worker_process_init.connect(_warm_up_embedder, weak=False, dispatch_uid="memory-warm-up-embedder")


def _warm_up_embedder(**_kwargs) -> None:
    import threading

    from apps.memory.embedders import warm_up

    threading.Thread(target=warm_up, name="embedder-warm-up", daemon=True).start()
