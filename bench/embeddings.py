"""Query-embedding latency of the local all-MiniLM-L6-v2, per runtime: torch vs ONNX Runtime.

    python bench/embeddings.py                       # both runtimes, 1 thread, 200 iterations
    python bench/embeddings.py --threads 1 2 --json  # also 2 intra-op threads; JSON last line

What a turn pays for its memory recall when the query is not in the Redis cache: one
`embedder.embed([query])` call (tokenizer + model + pooling), measured warm, in this process,
for a short query (~13 tokens), a long one (the full 256-token window; longer is truncated), and
a batch of 64 memory-sized texts (~40 tokens each, what the background embedding task sends).
Also reported: the load time (the first run of the ONNX runtime includes the one-time export
into EMBEDDING_ONNX_DIR) and the worst cosine between the runtimes' vectors (rows embedded by
one are searched with queries embedded by the other; the bar is 0.99).

No database or Redis: it only needs the settings and requirements/ml.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from _common import add_json_flag, emit_json, summary

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")

SHORT = "what did I say about the budget for the third quarter?"
LONG = " ".join(f"item {n}: the planning notes from the quarterly review meeting" for n in range(40))
MEMORY = [f"User asked about topic {n}; the assistant summarised the notes and set reminder {n}" for n in range(64)]


def _timed(embed, texts: list[str], iterations: int) -> list[float]:
    for _ in range(max(3, iterations // 20)):  # warm-up: allocator, caches, lazy inits
        embed(texts)
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        embed(texts)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnx"], choices=["torch", "onnx"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="intra-op threads to measure")
    parser.add_argument("--iterations", type=int, default=200, help="calls per short-query figure (long: 1/4)")
    add_json_flag(parser)
    args = parser.parse_args()

    import logging

    import django

    django.setup()
    logging.getLogger("apps.memory").setLevel(logging.WARNING)
    from django.conf import settings

    from apps.memory.embedders import MiniLMEmbedder

    results, vectors = [], {}
    for runtime in args.runtimes:
        for threads in args.threads:
            settings.EMBEDDING_THREADS = threads
            embedder = MiniLMEmbedder(runtime)
            started = time.perf_counter()
            embedder.load()
            load_s = time.perf_counter() - started
            vectors.setdefault(runtime, np.asarray(embedder.embed([SHORT, LONG, *MEMORY[:4]])))
            tokens = _token_count(LONG)
            results.append(
                {
                    "runtime": runtime,
                    "threads": threads,
                    "load_s": round(load_s, 2),
                    "short_ms": summary(_timed(embedder.embed, [SHORT], args.iterations)),
                    "long_ms": summary(_timed(embedder.embed, [LONG], max(10, args.iterations // 4))),
                    "batch64_ms": summary(_timed(embedder.embed, MEMORY, max(5, args.iterations // 20))),
                    "long_tokens": tokens,
                }
            )
    cosine = None
    if {"torch", "onnx"} <= set(vectors):
        cosine = round(float(np.min(np.sum(vectors["torch"] * vectors["onnx"], axis=1))), 6)

    print(f"Query embedding, all-MiniLM-L6-v2, warm, one process ({os.cpu_count()} CPUs; ms)")
    print(
        f"{'runtime':>8} {'threads':>7} {'load s':>7} | {'short p50':>9} {'p95':>7} | "
        f"{'long p50':>8} {'p95':>7} | {'64 texts p50':>12} {'p95':>7}"
    )
    for r in results:
        s, lg, b = r["short_ms"], r["long_ms"], r["batch64_ms"]
        print(
            f"{r['runtime']:>8} {r['threads']:>7} {r['load_s']:>7.2f} | {s['p50']:>9.2f} {s['p95']:>7.2f} | "
            f"{lg['p50']:>8.2f} {lg['p95']:>7.2f} | {b['p50']:>12.2f} {b['p95']:>7.2f}"
        )
    print(f"long query: {results[0]['long_tokens']} tokens (the model's window; longer text is truncated)")
    if cosine is not None:
        print(f"worst cosine torch vs onnx over the texts: {cosine:.6f} (the bar for sharing rows: 0.99)")
    if args.json:
        emit_json("embeddings", {"iterations": args.iterations, "results": results, "min_cosine_torch_onnx": cosine})
    return 0


def _token_count(text: str) -> int:
    from tokenizers import Tokenizer

    from apps.memory.onnx_export import model_dir

    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=256)
    return len(tokenizer.encode(text).ids)


if __name__ == "__main__":
    sys.exit(main())
