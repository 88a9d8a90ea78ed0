"""Memory's probe for /api/health: which embedder memory uses. Added by MemoryConfig.ready()."""

from __future__ import annotations

from apps.core.health import Probe, timed


def check_embedder() -> Probe:
    def run() -> str:
        # Which embedder memory uses, and whether this process has loaded it. Never loads a model:
        # that takes seconds and is the worker's job (it loads at start), not a probe's.
        from apps.memory.embedders import describe_embedder

        info = describe_embedder()
        where = {"minilm": "local", "openai": "OpenAI-compatible endpoint", "hashing": "no model"}[info["backend"]]
        if info.get("runtime"):
            where += f" on {'ONNX Runtime' if info['runtime'] == 'onnx' else 'torch'}"
        state = "loaded in this process" if info["loaded"] else "loads on first use in this process"
        if info["backend"] == "minilm" and info["configured"] == "auto":
            where += ", requirements/ml.txt installed"
        elif info["backend"] == "hashing" and info["configured"] == "auto":
            where += ", requirements/ml.txt not installed"
        return f"{info['model']} ({where}; {info['dimensions']}-d; {state})"

    return timed(run)
