from __future__ import annotations

from django.apps import AppConfig


class MemoryConfig(AppConfig):
    name = "apps.memory"
    label = "memory"
    verbose_name = "Memory"

    def ready(self) -> None:
        # /api/health reports the embedder; core probes only what every app shares.
        from apps.core.health import health_probe_register
        from apps.memory.health import check_embedder

        health_probe_register("embedder", check_embedder)

        # A Celery worker process loads the local embedding model when it starts, not in its first turn.
        from celery.signals import worker_process_init

        worker_process_init.connect(_warm_up_embedder, weak=False, dispatch_uid="memory-warm-up-embedder")


def _warm_up_embedder(**_kwargs) -> None:
    import threading

    from apps.memory.embedders import warm_up

    threading.Thread(target=warm_up, name="embedder-warm-up", daemon=True).start()
