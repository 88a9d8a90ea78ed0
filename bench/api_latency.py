"""API request overhead: authentication, rate limiting and a tenant-scoped read, over a live daphne.

Run with `make bench-api` (it starts the embedded services if needed). Prints p50/p95 latency of

- GET /health                (daphne + Django, no database, no auth: the floor)
- GET /api/tenants/current   (Bearer key lookup and hash, moving-window rate limit in Redis, JSON)

sequentially over one keep-alive connection, then the throughput with concurrent clients.
Figures depend on the machine; DESIGN.md's budget is for 2 cores with everything on one box.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _common import add_json_flag, emit_json, summary

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bench_key() -> str:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from apps.tenancy import services
    from apps.tenancy.models import Tenant
    from apps.tenancy.principal import Actor

    actor = Actor.system("bench")
    tenant = Tenant.objects.filter(slug="bench").first() or services.tenant_create(
        slug="bench", name="Benchmarks", actor=actor
    )
    _, key = services.api_key_create(tenant=tenant, actor=actor, name="bench", scopes=["read"])
    return key


def _sequential(client: httpx.Client, url: str, headers: dict, count: int) -> list[float]:
    for _ in range(20):  # warm-up: connections, caches, lazy imports
        client.get(url, headers=headers)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return samples


def _throughput(url: str, headers: dict, clients: int, per_client: int) -> float:
    def run(_):
        with httpx.Client(timeout=30) as client:
            for _ in range(per_client):
                client.get(url, headers=headers).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(run, range(clients)))
    return clients * per_client / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests per endpoint")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for the throughput run")
    add_json_flag(parser)
    args = parser.parse_args()

    key = _bench_key()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    port = _free_port()
    env = {**os.environ, "API_RATE_LIMIT": "100000000/minute", "LOG_LEVEL": "WARNING"}
    daphne = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-p", str(port), "agentplatform.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                print("daphne did not start", file=sys.stderr)
                return 1
            time.sleep(0.2)

        auth = {"Authorization": f"Bearer {key}"}
        print(f"API latency over a live daphne, {args.requests} sequential requests each (ms)")
        print(f"{'endpoint':32} {'p50':>8} {'p95':>8} {'p99':>8} {'mean':>8}")
        endpoints = {}
        with httpx.Client(timeout=30) as client:
            for label, path, headers in [
                ("GET /health", "/health", {}),
                ("GET /api/tenants/current", "/api/tenants/current", auth),
            ]:
                samples = _sequential(client, base + path, headers, args.requests)
                f = endpoints[label] = summary(samples)
                print(f"{label:32} {f['p50']:8.2f} {f['p95']:8.2f} {f['p99']:8.2f} {f['mean']:8.2f}")
        rate = _throughput(f"{base}/api/tenants/current", auth, args.clients, max(1, args.requests // args.clients))
        print(f"throughput GET /api/tenants/current with {args.clients} clients: {rate:,.0f} req/s (one daphne)")
        if args.json:
            emit_json(
                "api_latency",
                {"requests": args.requests, "clients": args.clients, "latency_ms": endpoints, "throughput_rps": rate},
            )
    finally:
        daphne.terminate()
        daphne.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
