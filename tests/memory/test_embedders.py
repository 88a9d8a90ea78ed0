"""The three embedders behind one batched interface, and how the configured one is chosen."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.memory import embedders
from apps.memory.embedders import EmbeddingError, HashingEmbedder, OpenAIEmbedder


def _norm(vector) -> float:
    return math.sqrt(sum(x * x for x in vector))


def _cos(a, b) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_hashing_embedder_is_deterministic_unit_length_and_closer_for_shared_words():
    embedder = HashingEmbedder(384)
    a, b, c, again = embedder.embed(["the red car", "a red car parked", "pasta for dinner", "the red car"])

    assert a == again  # the same in every process: no Python hash() salt
    assert len(a) == 384
    assert _norm(a) == pytest.approx(1.0)
    assert _cos(a, b) > _cos(a, c) + 0.3
    assert embedder.name == "hashing-384"
    assert _norm(embedder.embed([""])[0]) == pytest.approx(1.0)  # empty text still a unit vector


def test_minilm_embeds_offline_to_384_unit_vectors(minilm):
    embedder = embedders.get_embedder()
    car, automobile, pasta = embedder.embed(["the car would not start", "my automobile broke down", "pasta"])

    assert embedder.name == "all-MiniLM-L6-v2"
    assert len(car) == 384
    assert _norm(car) == pytest.approx(1.0, abs=1e-4)
    assert _cos(car, automobile) > _cos(car, pasta) + 0.2
    assert embedders.describe_embedder()["loaded"] is True


def test_the_model_loads_once_per_process(minilm):
    first = embedders.get_embedder()
    first.embed(["warm"])
    assert embedders.get_embedder() is first
    assert embedders.get_embedder().load() is first.load()


def test_auto_uses_minilm_when_ml_requirements_are_installed_and_hashing_otherwise(settings, monkeypatch):
    settings.EMBEDDING_BACKEND = "auto"
    assert embedders.resolve_backend() == "minilm"
    monkeypatch.setattr(embedders, "minilm_available", lambda: False)
    assert embedders.resolve_backend() == "hashing"
    assert embedders.get_embedder().name == "hashing-384"


def test_an_unknown_backend_is_a_clear_error(settings):
    settings.EMBEDDING_BACKEND = "word2vec"
    with pytest.raises(ValueError, match="EMBEDDING_BACKEND must be one of"):
        embedders.get_embedder()


def test_minilm_refuses_a_column_of_another_width(settings):
    settings.EMBEDDING_DIMENSIONS = 768
    with pytest.raises(ValueError, match="384-d"):
        embedders.build_embedder("minilm")


def test_describe_reports_without_loading_anything(settings):
    settings.EMBEDDING_BACKEND = "openai"
    settings.EMBEDDING_MODEL = "text-embedding-3-small"
    info = embedders.describe_embedder()
    assert info == {
        "backend": "openai",
        "configured": "openai",
        "model": "text-embedding-3-small",
        "dimensions": 384,
        "loaded": False,
        "runtime": None,  # only the local model has a runtime
    }


def test_embedder_by_name_accepts_backends_and_model_names(settings):
    settings.EMBEDDING_BACKEND = "hashing"
    assert embedders.embedder_by_name("hashing").name == "hashing-384"
    assert embedders.embedder_by_name("hashing-384").name == "hashing-384"
    assert embedders.embedder_by_name("all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"
    assert embedders.embedder_by_name("nomic-embed-text").name == "nomic-embed-text"
    with pytest.raises(ValueError, match="does not fit"):
        embedders.embedder_by_name("hashing-768")


# --- OpenAI-compatible -------------------------------------------------------------------------------------


class _EmbeddingsStub:
    """A loopback /v1/embeddings that answers `width`-d vectors and records the requests."""

    def __init__(self, width: int = 384, status: int = 200, fail_first: int = 0):
        """`status`: answer every request with it; `fail_first`: answer that many with 503 first."""
        self.width, self.status, self.fail_first, self.requests = width, status, fail_first, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                if stub.status != 200 or len(stub.requests) <= stub.fail_first:
                    self.send_response(stub.status if stub.status != 200 else 503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = [
                    {"object": "embedding", "index": i, "embedding": [float(i + 1)] + [0.0] * (stub.width - 1)}
                    for i in range(len(body["input"]))
                ]
                payload = json.dumps({"object": "list", "data": list(reversed(data)), "model": body["model"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def embeddings_stub():
    stubs = []

    def start(**kwargs) -> _EmbeddingsStub:
        stubs.append(_EmbeddingsStub(**kwargs))
        return stubs[-1]

    yield start
    for stub in stubs:
        stub.close()


def test_openai_embedder_sends_model_input_and_dimensions_and_keeps_the_order(embeddings_stub):
    stub = embeddings_stub()
    embedder = OpenAIEmbedder(model="text-embedding-3-small", dimensions=384, base_url=stub.url, api_key="sk-test")

    vectors = embedder.embed(["one", "two", "three"])

    assert [v[0] for v in vectors] == [1.0, 1.0, 1.0]  # each normalised
    assert stub.requests[0]["path"] == "/v1/embeddings"
    assert stub.requests[0]["body"]["input"] == ["one", "two", "three"]
    assert stub.requests[0]["body"]["dimensions"] == 384
    assert stub.requests[0]["auth"] == "Bearer sk-test"
    assert embedder.name == "text-embedding-3-small"


def test_openai_embedder_batches_big_inputs(embeddings_stub, monkeypatch):
    stub = embeddings_stub()
    monkeypatch.setattr(OpenAIEmbedder, "MAX_BATCH", 2)
    embedder = OpenAIEmbedder(model="m", dimensions=384, base_url=stub.url, api_key="", send_dimensions=False)

    assert len(embedder.embed(["a", "b", "c", "d", "e"])) == 5
    assert [len(r["body"]["input"]) for r in stub.requests] == [2, 2, 1]
    assert "dimensions" not in stub.requests[0]["body"]
    assert stub.requests[0]["auth"] is None


def test_openai_embedder_rejects_the_wrong_width_and_reports_failures(embeddings_stub):
    wrong = embeddings_stub(width=768)
    with pytest.raises(EmbeddingError, match="EMBEDDING_DIMENSIONS"):
        OpenAIEmbedder(model="m", dimensions=384, base_url=wrong.url, api_key="").embed(["a"])

    failing = embeddings_stub(status=503)
    with pytest.raises(EmbeddingError, match="HTTP 503"):
        OpenAIEmbedder(model="m", dimensions=384, base_url=failing.url, api_key="", max_retries=0).embed(["a"])
    assert len(failing.requests) == 1


def test_openai_embedder_retries_server_errors_through_the_sdk(embeddings_stub, settings):
    settings.EMBEDDING_MAX_RETRIES = 2
    flaky = embeddings_stub(fail_first=2)

    vectors = OpenAIEmbedder(model="m", dimensions=384, base_url=flaky.url, api_key="").embed(["a", "b"])

    assert len(vectors) == 2
    assert len(flaky.requests) == 3  # two 503s retried by the SDK, then the answer
    assert flaky.requests[-1]["body"] == flaky.requests[0]["body"]


def test_the_embedding_endpoint_is_operator_config_so_loopback_is_reachable(embeddings_stub, settings):
    """EMBEDDING_BASE_URL is not tenant input: the outbound policy (loopback refused by default)
    does not apply to it, so an embedding server next to the workers just works."""
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    stub = embeddings_stub()
    settings.EMBEDDING_BACKEND = "openai"
    settings.EMBEDDING_BASE_URL = stub.url

    assert len(embedders.build_embedder().embed(["x"])) == 1
    assert stub.requests[0]["path"] == "/v1/embeddings"


def test_the_configured_openai_backend_reads_its_settings(settings, embeddings_stub):
    stub = embeddings_stub()
    settings.EMBEDDING_BACKEND = "openai"
    settings.EMBEDDING_MODEL = "nomic-embed-text"
    settings.EMBEDDING_BASE_URL = stub.url
    settings.EMBEDDING_API_KEY = "ollama"

    embedders.get_embedder().embed(["x"])

    assert stub.requests[0]["body"]["model"] == "nomic-embed-text"
    assert stub.requests[0]["auth"] == "Bearer ollama"


def test_health_reports_the_configured_embedder_without_loading_it(settings):
    from apps.memory.health import check_embedder

    settings.EMBEDDING_BACKEND = "openai"
    settings.EMBEDDING_MODEL = "text-embedding-3-large"
    probe = check_embedder()
    assert probe.healthy
    assert probe.detail == (
        "text-embedding-3-large (OpenAI-compatible endpoint; 384-d; loads on first use in this process)"
    )

    settings.EMBEDDING_BACKEND = "bogus"
    assert not check_embedder().healthy
