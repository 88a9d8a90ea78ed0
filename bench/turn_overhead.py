"""Platform overhead per turn: from POST /messages to chat_complete in the event log, minus the
model's time, over a live daphne and a real Celery worker, against the stub model server
(tests/stubs) answering at once.

Run with `make bench-turns` (it starts the embedded services if needed). For each client
concurrency (1 and 10 by default) it posts N messages and reports:

- overhead p50/p95/max: chat_complete's timestamp - the moment the POST was answered (202
  accepted) - the time the worker spent inside the model call (the turn records it in
  metadata.timings.model_ms), as DESIGN.md defines it;
- where the time goes, phase by phase (p50 and p95): the POST's own latency (not in the
  overhead), the first event of the turn on /ws, both from the moment the POST was sent; queue
  wait (turn created → claimed by a worker); context assembly, its memory recall and the query
  embedding in that; the model call (against a stub answering at once: the SDK, the connection,
  the token events published while it streams); tools; and the finish (everything else from the
  claim to chat_complete: model choice, budget reservation and settlement, the final write);
- turns per second at that concurrency.

DESIGN.md's budget: overhead p50 ≤ 15 ms, p95 ≤ 40 ms at 1 client, ≥ 40 turns/s at 10 clients;
POST answered and POST to first /ws event p50 ≤ 10 ms; on 2 cores with everything on one machine.

`--json` prints, as the last line, one JSON object with every figure of every concurrency level.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")
# This process polls the event log from one thread per client; give each its own connection.
os.environ.setdefault("DB_POOL_MAX_SIZE", "40")
# The stub model server is on loopback; the operator running the bench allows it (the worker and
# web processes inherit this environment).
os.environ.setdefault("OUTBOUND_ALLOW_LOOPBACK", "true")


MESSAGES = [
    "Can you summarise what we decided about the quarterly budget?",
    "My flight to Lisbon leaves on Friday morning, remind me to pack a charger.",
    "What is a good name for a small bakery that sells sourdough?",
    "The build failed again with a timeout in the integration tests.",
    "I prefer short answers with bullet points, please.",
    "Explain the difference between a mutex and a semaphore.",
    "Our customer in Osaka asked for the invoice in yen.",
    "Draft a polite reply declining the meeting on Tuesday.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pct(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def _setup(stub_url: str) -> tuple[str, str]:
    """A bench tenant whose agent answers from the stub; returns (API key, agent name)."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from apps.agents import services as agents
    from apps.agents.models import Agent, CatalogModel, Provider
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import Tenant
    from apps.tenancy.principal import Actor

    actor = Actor.system("bench")
    tenant = Tenant.objects.filter(slug="bench-turns").first() or tenancy.tenant_create(
        slug="bench-turns", name="Turn benchmark", actor=actor
    )
    Agent.objects.filter(tenant=tenant).delete()
    Provider.objects.filter(tenant=tenant).delete()
    provider = agents.provider_create(
        tenant=tenant, actor=actor, kind="openai_compatible", name="stub", base_url=stub_url, api_key="bench"
    )
    model = CatalogModel.objects.create(tenant=tenant, provider=provider, model_id="stub-model", supports_tools=True)
    Agent.objects.create(
        tenant=tenant, name="bench", system_prompt="You are terse.", guide_model=model, enabled_tools=[]
    )
    _, key = tenancy.api_key_create(tenant=tenant, actor=actor, name="bench", scopes=["read", "write"])
    return key, "bench"


def _run(base: str, key: str, agent: str, clients: int, turns: int) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    samples: list[dict] = []
    lock = threading.Lock()

    def client(count: int) -> None:
        from django.db import connection

        try:
            _client_turns(count)
        finally:
            connection.close()  # hand the thread's connection back to the pool

    def _client_turns(count: int) -> None:
        from datetime import datetime

        from websockets.sync.client import connect

        from apps.conversations.models import Turn

        with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
            session = http.post("/api/sessions", json={"agent": agent}).json()["id"]
            # The session's events arrive on /ws as a user's client would see them; no polling.
            ws_url = base.replace("http", "ws", 1) + f"/ws?session_id={session}"
            with connect(ws_url, additional_headers=headers, max_size=None) as ws:
                json.loads(ws.recv(timeout=30))  # connected
                for n in range(count):
                    # A new text each time, as users write: the query embedding for memory recall
                    # is cached by text, so a repeated message would hide its cost.
                    text = f"{MESSAGES[n % len(MESSAGES)]} #{uuid.uuid4().int % 10**8}"
                    sent = time.time()
                    response = http.post(f"/api/sessions/{session}/messages", json={"text": text})
                    answered = time.time()
                    response.raise_for_status()
                    turn_id = response.json()["turn_id"]
                    first_at = None
                    while True:
                        message = json.loads(ws.recv(timeout=60))
                        if message.get("turn_id") != turn_id:
                            continue
                        first_at = first_at or time.time()
                        if message["type"] == "turn_failed":
                            raise RuntimeError(f"turn {turn_id} failed: {message['data']}")
                        if message["type"] == "chat_complete":
                            break
                    complete = datetime.fromisoformat(message["ts"].replace("Z", "+00:00")).timestamp()
                    turn = Turn.objects.get(pk=turn_id)
                    timings = turn.metadata.get("timings", {})
                    model_ms = timings.get("model_ms", 0.0)
                    context_ms, tool_ms = timings.get("context_ms", 0.0), timings.get("tool_ms", 0.0)
                    claimed_to_complete = (complete - turn.started_at.timestamp()) * 1000
                    with lock:
                        samples.append(
                            {
                                "overhead": (complete - answered) * 1000 - model_ms,
                                "post": (answered - sent) * 1000,
                                "first_event": (first_at - sent) * 1000,
                                "queue": (turn.started_at - turn.created_at).total_seconds() * 1000,
                                "context": context_ms,
                                "recall": (turn.context_snapshot or {}).get("recall_ms", 0.0),
                                "embed": (turn.context_snapshot or {}).get("recall_embed_ms", 0.0),
                                "model": model_ms,
                                "tools": tool_ms,
                                "finish": claimed_to_complete - context_ms - model_ms - tool_ms,
                            }
                        )

    per_client = max(1, turns // clients)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, [per_client] * clients))
    elapsed = time.perf_counter() - started
    overhead = [s["overhead"] for s in samples]
    return {
        "clients": clients,
        "turns": len(samples),
        "p50": _pct(overhead, 50),
        "p95": _pct(overhead, 95),
        "max": max(overhead),
        # DESIGN.md's overhead leaves model time out; the query embedding is a model call too.
        "p50_no_embed": _pct([s["overhead"] - s["embed"] for s in samples], 50),
        "p95_no_embed": _pct([s["overhead"] - s["embed"] for s in samples], 95),
        "tps": len(samples) / elapsed,
        "phases": {
            phase: {"p50": _pct([s[phase] for s in samples], 50), "p95": _pct([s[phase] for s in samples], 95)}
            for phase in PHASES
        },
    }


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


# The per-phase table's columns: (sample key, heading).
PHASES = {
    "post": "POST",
    "first_event": "1st event",
    "queue": "queue",
    "context": "context",
    "recall": "recall",
    "embed": "embedding",
    "model": "model",
    "tools": "tools",
    "finish": "finish",
}


def _print_report(results: list[dict], worker_concurrency: int) -> None:
    print(
        f"Turn overhead (POST answered → chat_complete, minus model time), worker concurrency "
        f"{worker_concurrency}, stub model answering at once; all figures in ms"
    )
    print(
        f"{'clients':>7} {'turns':>6} {'p50':>8} {'p95':>8} {'max':>8} {'turns/s':>8} "
        f"{'minus query embedding p50/p95':>30}"
    )
    for r in results:
        print(
            f"{r['clients']:>7} {r['turns']:>6} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['max']:>8.1f} "
            f"{r['tps']:>8.1f} {r['p50_no_embed']:>22.1f} / {r['p95_no_embed']:<6.1f}"
        )
    print(
        "\nWhere the time goes, p50 / p95. POST and 1st event (on /ws) from the moment the POST was sent; "
        "recall is part of context,\nembedding part of recall; finish: the rest of claim → chat_complete "
        "(model choice, budget, final write)."
    )
    print(f"{'clients':>7} " + " ".join(f"{heading:>12}" for heading in PHASES.values()))
    for r in results:
        cells = [f"{r['phases'][k]['p50']:.1f}/{r['phases'][k]['p95']:.1f}" for k in PHASES]
        print(f"{r['clients']:>7} " + " ".join(f"{cell:>12}" for cell in cells))
    budget = "budget: overhead p50 ≤ 15, p95 ≤ 40 at 1 client; ≥ 40 turns/s at 10; POST and 1st event p50 ≤ 10"
    print(f"\n{budget}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=200, help="turns per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="end with one JSON object of every figure")
    args = parser.parse_args()

    from tests.stubs.model_server import Reply, start_stub_server

    with start_stub_server() as stub:
        stub.default_reply = Reply(text="pong")
        key, agent = _setup(stub.openai_base_url)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        env = {
            **os.environ,
            "API_RATE_LIMIT": "100000000/minute",
            "CHAT_RATE_LIMIT": "100000000/minute",
            "LOG_LEVEL": "WARNING",
        }
        port = _free_port()
        bin_dir = Path(sys.executable).parent
        processes = [
            subprocess.Popen(
                [str(bin_dir / "daphne"), "-p", str(port), "agentplatform.asgi:application"],
                cwd=BASE_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            subprocess.Popen(
                [
                    str(bin_dir / "celery"),
                    "-A",
                    "agentplatform",
                    "worker",
                    "-l",
                    "warning",
                    "--concurrency",
                    str(args.worker_concurrency),
                    "-Q",
                    "celery",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"bench-{os.getpid()}@%h",
                ],
                cwd=BASE_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
            # As `make run`: memory's embeddings on a worker of their own at low priority.
            subprocess.Popen(
                [
                    *("nice", "-n", "10", str(bin_dir / "celery"), "-A", "agentplatform", "worker", "-l", "warning"),
                    *("-Q", "memory", "--concurrency", "1", "--without-gossip", "--without-mingle"),
                    *("-n", f"bench-embedder-{os.getpid()}@%h"),
                ],
                cwd=BASE_DIR,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            ),
        ]
        base = f"http://127.0.0.1:{port}"
        try:
            from agentplatform.celery import app as celery_app

            deadline = time.monotonic() + 60
            while True:
                try:
                    web_up = httpx.get(f"{base}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    web_up = False
                if web_up and celery_app.control.ping(timeout=0.5):
                    break
                if time.monotonic() > deadline:
                    print("daphne or the worker did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            _run(base, key, agent, clients=2, turns=20)  # warm-up: worker processes, pools, imports

            results = [_run(base, key, agent, clients=clients, turns=args.turns) for clients in args.concurrency]
            _print_report(results, args.worker_concurrency)
            if args.json:
                figures = {"bench": "turn_overhead", "worker_concurrency": args.worker_concurrency, "results": results}
                print(json.dumps(_rounded(figures)))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
