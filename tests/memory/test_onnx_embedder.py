"""all-MiniLM-L6-v2 on ONNX Runtime: the same vectors as sentence-transformers on torch, batched
like it, exported once (also with several processes at once), and a logged fallback to torch."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings

from apps.memory import embedders, onnx_export
from apps.memory.embedders import EmbeddingError, MiniLMEmbedder

ROOT = Path(__file__).resolve().parents[2]

LONG = " ".join(f"paragraph {n} of the quarterly planning notes, owner Dana" for n in range(60))  # ~600 tokens
VARIED = [
    "hi",
    "what did I say about the budget for the third quarter?",
    "Remind me to call the dentist on Tuesday at 9",
    "Der Zug nach Berlin hat wieder Verspätung.",
    "Mi perro se llama Toby y le encanta correr en la playa",
    "日本語のテキストも埋め込めますか",
    "Привет, как дела?",
    LONG,  # past 256 tokens: truncated
    "",
    "   ",
    "?!",
    "🙂🙂🙂",
]


@pytest.fixture(scope="module")
def torch_minilm() -> MiniLMEmbedder:
    """sentence-transformers on torch: what every row embedded before ONNX came from."""
    embedder = MiniLMEmbedder("torch")
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def onnx_minilm() -> MiniLMEmbedder:
    """ONNX Runtime, from the graph under EMBEDDING_ONNX_DIR (exported on the first run)."""
    embedder = MiniLMEmbedder("onnx")
    embedder.load()
    assert embedder.runtime == "onnx"
    return embedder


def _cosines(a, b) -> np.ndarray:
    return np.sum(np.asarray(a) * np.asarray(b), axis=1)


def test_onnx_vectors_match_sentence_transformers_on_varied_texts(onnx_minilm, torch_minilm):
    got, expected = onnx_minilm.embed(VARIED), torch_minilm.embed(VARIED)

    assert onnx_minilm.name == torch_minilm.name == "all-MiniLM-L6-v2"  # rows keep one model name
    assert np.asarray(got).shape == (len(VARIED), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # The bar for sharing rows is 0.99; the exported graph is the same arithmetic (measured 1.0000).
    assert _cosines(got, expected).min() >= 0.999


def test_texts_past_256_tokens_are_truncated_as_sentence_transformers_does(onnx_minilm, torch_minilm):
    # Identical for their first 256 tokens, different after: truncated, they are the same text.
    a, b = LONG + " the end is about cats", LONG + " the end is about spreadsheets and invoices"
    vec_a, vec_b = onnx_minilm.embed([a, b])
    assert float(np.dot(vec_a, vec_b)) > 0.99999
    assert _cosines([vec_a], torch_minilm.embed([a])).min() >= 0.999


def test_a_batch_gives_each_text_the_vector_it_gets_alone_in_order(onnx_minilm, settings):
    settings.EMBEDDING_BATCH_SIZE = 3  # several batches of texts of mixed lengths, sorted by length
    batch = np.asarray(onnx_minilm.embed(VARIED))
    alone = np.asarray([onnx_minilm.embed([text])[0] for text in VARIED])

    assert np.abs(batch - alone).max() < 1e-5
    assert onnx_minilm.embed([]) == []


def test_rows_embedded_on_torch_are_found_by_a_query_embedded_on_onnx(onnx_minilm, torch_minilm, tenant):
    from apps.memory import services
    from apps.memory.search import MemoryFilter, search

    texts = ["My car broke down on the highway", "I love baking sourdough bread", "The quarterly report is due"]
    entries = [services.memory_entry_create(tenant=tenant, content=text, kind="semantic") for text in texts]
    services.memory_entries_embed(entry_ids=[e.pk for e in entries], embedder=torch_minilm)

    hits = search(
        MemoryFilter(tenant_id=tenant.pk), "my automobile stopped working", mode="vector", embedder=onnx_minilm
    )
    assert hits[0].entry_id == entries[0].pk


# --- choosing the runtime ----------------------------------------------------------------------------


def test_auto_is_onnx_and_describe_and_health_say_so(settings, onnx_minilm):
    settings.EMBEDDING_BACKEND = "minilm"
    settings.EMBEDDING_RUNTIME = "auto"
    assert embedders.describe_embedder()["runtime"] == "onnx"  # before loading: what will be tried
    embedder = embedders.get_embedder()
    embedder.embed(["warm"])
    assert embedder.runtime == "onnx"
    assert embedders.describe_embedder()["runtime"] == "onnx"
    assert embedders.describe_embedder()["loaded"] is True

    from apps.memory.health import check_embedder

    assert check_embedder().detail == ("all-MiniLM-L6-v2 (local on ONNX Runtime; 384-d; loaded in this process)")


def test_auto_falls_back_to_torch_when_onnxruntime_is_missing(settings, monkeypatch, caplog, torch_minilm):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what `import onnxruntime` does when not installed
    embedder = MiniLMEmbedder("auto")
    with caplog.at_level(logging.WARNING, logger="apps.memory.embedders"):
        vectors = embedder.embed(["the car would not start"])

    assert embedder.runtime == "torch"
    assert "ONNX Runtime did not load" in caplog.text
    assert "onnxruntime" in caplog.text
    assert _cosines(vectors, torch_minilm.embed(["the car would not start"])).min() > 0.9999


def test_auto_falls_back_to_torch_when_the_graph_cannot_be_written(settings, tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.EMBEDDING_ONNX_DIR = blocker / "onnx"
    embedder = MiniLMEmbedder("auto")
    with caplog.at_level(logging.WARNING, logger="apps.memory.embedders"):
        embedder.embed(["hello"])

    assert embedder.runtime == "torch"
    assert "NotADirectoryError" in caplog.text


def test_onnx_asked_for_explicitly_fails_clearly_instead_of_falling_back(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(EmbeddingError, match="EMBEDDING_RUNTIME=onnx"):
        MiniLMEmbedder("onnx").embed(["hello"])


def test_an_unknown_runtime_is_a_clear_error(settings):
    settings.EMBEDDING_BACKEND = "minilm"
    settings.EMBEDDING_RUNTIME = "tensorrt"
    with pytest.raises(ValueError, match="EMBEDDING_RUNTIME must be one of"):
        embedders.get_embedder()


# --- the export ---------------------------------------------------------------------------------------


def test_the_cached_graph_is_named_by_the_weights_hash_and_records_its_check(onnx_minilm):
    path = onnx_minilm.load().path
    digest = onnx_export.weights_sha256()
    assert path == onnx_export.cached_path(Path(django_settings.EMBEDDING_ONNX_DIR), digest)
    assert digest[:16] in path.name
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["weights_sha256"] == digest
    assert meta["min_probe_cosine"] >= onnx_export.MIN_PROBE_COSINE


def test_a_graph_that_does_not_match_torch_is_refused_and_leaves_nothing(settings, tmp_path, monkeypatch):
    settings.EMBEDDING_ONNX_DIR = tmp_path
    monkeypatch.setattr(onnx_export, "MIN_PROBE_COSINE", 1.5)  # no graph can pass: the refusal path
    with pytest.raises(onnx_export.ExportError, match="differs from torch"):
        onnx_export.ensure_exported()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".lock"]  # no graph, no temporary file


def _run_python(code: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "agentplatform.settings", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


EXPORTER = """
    import logging, os, sys, time
    import django
    django.setup()
    from apps.memory.onnx_export import ensure_exported
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    open(os.environ["READY"], "w").close()
    while not os.path.exists(os.environ["GO"]):  # every process calls at the same moment
        time.sleep(0.01)
    print("PATH", ensure_exported())
"""


def test_processes_starting_together_export_once_and_load_the_same_file(tmp_path):
    cache, gate = tmp_path / "onnx", tmp_path / "go"
    workers = [
        _run_python(EXPORTER, {"EMBEDDING_ONNX_DIR": str(cache), "READY": str(tmp_path / f"ready{n}"), "GO": str(gate)})
        for n in range(3)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{n}").exists() for n in range(3)):
        assert time.monotonic() < deadline, "the workers did not start in time"
        assert all(w.poll() is None for w in workers), "a worker died before the gate"
        time.sleep(0.05)
    gate.touch()
    outputs = [w.communicate(timeout=300)[0] for w in workers]

    assert all(w.returncode == 0 for w in workers), outputs
    paths = {line for out in outputs for line in out.splitlines() if line.startswith("PATH ")}
    assert len(paths) == 1
    text = "\n".join(outputs)
    assert text.count("Exporting all-MiniLM-L6-v2 to ONNX") == 1
    assert text.count("Another process is exporting") == 2
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".lock", ".onnx"]  # no temporary left


def test_a_cached_graph_embeds_without_importing_torch(onnx_minilm):
    reader = _run_python(
        """
        import sys
        import django
        django.setup()
        from apps.memory.onnx_embedder import load_onnx_minilm
        vector = load_onnx_minilm(threads=1).embed(["no torch on the query path"])[0]
        print(len(vector), "torch" in sys.modules, "sentence_transformers" in sys.modules)
        """,
        {"EMBEDDING_ONNX_DIR": str(django_settings.EMBEDDING_ONNX_DIR)},
    )
    out = reader.communicate(timeout=120)[0]
    assert reader.returncode == 0, out
    assert out.strip().splitlines()[-1] == "384 False False"


def test_embedder_prepare_exports_loads_and_says_which_runtime(settings, capsys, onnx_minilm):
    from django.core.management import call_command

    settings.EMBEDDING_BACKEND = "minilm"
    settings.EMBEDDING_RUNTIME = "onnx"
    call_command("embedder_prepare")
    out = capsys.readouterr().out
    assert "all-MiniLM-L6-v2 ready on onnx from " in out
    assert ".onnx" in out
