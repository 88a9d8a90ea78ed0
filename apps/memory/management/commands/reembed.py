"""`python manage.py reembed [--tenant SLUG] [--model NAME]`: give every entry a vector from one model.

Entries (episodic and semantic; working memory is not embedded) whose vector is missing or comes
from another model are embedded again, in batches, each
committed on its own. Progress therefore survives an interruption: run the command again and it
goes on with the entries still left (it walks them in id order and never revisits a batch).
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.memory.embedders import EmbeddingError, embedder_by_name, get_embedder
from apps.memory.models import MemoryEntry, needs_embedding
from apps.memory.services import memory_entries_embed
from apps.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Embed memory entries whose vector is missing or from another model (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="", help="Only this tenant (slug).")
        parser.add_argument(
            "--model",
            default="",
            help="Embed with this model or backend (minilm, hashing, openai, all-MiniLM-L6-v2, hashing-384, or an "
            "OpenAI-compatible model name). Default: the configured embedder. Search uses the configured one.",
        )
        parser.add_argument(
            "--batch-size", type=int, default=0, help="Entries per batch (default EMBEDDING_BATCH_SIZE)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (logs, CI).")

    def handle(self, *args, tenant: str, model: str, batch_size: int, no_progress: bool, **options):
        try:
            embedder = embedder_by_name(model) if model else get_embedder()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if embedder.name != get_embedder().name:
            self.stderr.write(
                self.style.WARNING(
                    f"{embedder.name} is not the configured embedder ({get_embedder().name}); vector search "
                    "only compares entries embedded by the configured one."
                )
            )
        entries = MemoryEntry.objects.filter(needs_embedding(embedder.name))
        if tenant:
            found = Tenant.objects.filter(slug=tenant).first()
            if found is None:
                raise CommandError(f"No tenant '{tenant}'.")
            entries = entries.filter(tenant=found)
        total = entries.count()
        if not total:
            self.stdout.write(self.style.SUCCESS(f"Nothing to do: every entry is embedded by {embedder.name}."))
            return
        self.stdout.write(f"Embedding {total} entries with {embedder.name} ({embedder.dimensions}-d)")
        size = batch_size or settings.EMBEDDING_BATCH_SIZE
        done, after = 0, None
        with tqdm(total=total, unit="entry", disable=no_progress, file=self.stderr) as bar:
            while True:
                page = entries.order_by("id")
                if after is not None:
                    page = page.filter(id__gt=after)
                ids = list(page.values_list("id", flat=True)[:size])
                if not ids:
                    break
                try:
                    done += memory_entries_embed(entry_ids=ids, embedder=embedder)
                except EmbeddingError as exc:
                    raise CommandError(f"{exc} ({done} embedded so far; run the command again to go on)") from exc
                after = ids[-1]
                bar.update(len(ids))
        self.stdout.write(self.style.SUCCESS(f"Embedded {done} entries with {embedder.name}."))
