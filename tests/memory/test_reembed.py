"""`manage.py reembed`: embeds what is missing or from another model, and resumes after a failure."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.memory import services
from apps.memory.embedders import EmbeddingError, HashingEmbedder
from apps.memory.management.commands import reembed
from apps.memory.models import MemoryEntry

pytestmark = pytest.mark.django_db


class FlakyEmbedder(HashingEmbedder):
    """Fails on the `fail_on`-th call (an endpoint going down mid-run); counts the texts."""

    def __init__(self, fail_on: int | None = None):
        super().__init__(384)
        self.fail_on, self.calls = fail_on, []

    def embed(self, texts):
        self.calls.append(len(texts))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise EmbeddingError("connection refused")
        return super().embed(texts)


def _run(embedder, monkeypatch, *args) -> tuple[str, str]:
    monkeypatch.setattr(reembed, "get_embedder", lambda: embedder)
    monkeypatch.setattr(reembed, "embedder_by_name", lambda _name: embedder)
    out, err = io.StringIO(), io.StringIO()
    call_command("reembed", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_reembed_resumes_where_an_interrupted_run_stopped(tenant, monkeypatch, hashing):
    ids = [services.memory_entry_create(tenant=tenant, content=f"fact number {n}").pk for n in range(10)]
    MemoryEntry.objects.filter(pk__in=ids[:2]).update(embedding=[1.0] + [0.0] * 383, embedding_model="older-model")

    failing = FlakyEmbedder(fail_on=3)
    with pytest.raises(CommandError, match="8 embedded so far; run the command again"):
        _run(failing, monkeypatch, "--batch-size", "4")
    assert failing.calls == [4, 4, 2]
    assert MemoryEntry.objects.filter(embedding_model="hashing-384").count() == 8

    working = FlakyEmbedder()
    out, err = _run(working, monkeypatch, "--batch-size", "4")

    assert working.calls == [2]  # only what the first run left
    assert "Embedding 2 entries with hashing-384" in out
    assert "Embedded 2 entries" in out
    assert "entry" in err  # the progress bar
    assert MemoryEntry.objects.exclude(embedding_model="hashing-384").count() == 0


def test_reembed_with_nothing_left_says_so(tenant, monkeypatch, hashing):
    entry = services.memory_entry_create(tenant=tenant, content="fact")
    services.memory_entries_embed(entry_ids=[entry.pk])

    out, _ = _run(FlakyEmbedder(), monkeypatch)

    assert "Nothing to do" in out


def test_reembed_can_be_limited_to_one_tenant(tenant, other_tenant, monkeypatch, hashing):
    mine = services.memory_entry_create(tenant=tenant, content="mine")
    theirs = services.memory_entry_create(tenant=other_tenant, content="theirs")

    _run(FlakyEmbedder(), monkeypatch, "--tenant", tenant.slug, "--no-progress")

    assert MemoryEntry.objects.get(pk=mine.pk).embedding_model == "hashing-384"
    assert MemoryEntry.objects.get(pk=theirs.pk).embedding is None
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        _run(FlakyEmbedder(), monkeypatch, "--tenant", "nope")


def test_reembed_with_another_model_warns_that_search_uses_the_configured_one(tenant, hashing):
    services.memory_entry_create(tenant=tenant, content="fact")
    out, err = io.StringIO(), io.StringIO()

    call_command("reembed", "--model", "all-MiniLM-L6-v2", "--no-progress", stdout=out, stderr=err)

    assert "not the configured embedder (hashing-384)" in err.getvalue()
    assert MemoryEntry.objects.get().embedding_model == "all-MiniLM-L6-v2"
    with pytest.raises(CommandError, match="does not fit"):
        call_command("reembed", "--model", "hashing-12", stdout=out, stderr=err)
