"""WebSocket fan-out: publish() in a worker-like process to hundreds of /ws sockets on one daphne.

Run with `make bench-ws` (it starts the embedded services if needed), or directly with
DATABASE_URL / REDIS_URL set. It starts one daphne, opens --sockets WebSockets (the
`websockets` library, spread over --client-procs processes) across --tenants tenants with
their API keys, then a separate publisher process with Django set up calls `publish()` in a
loop, round-robin over the tenants, at each --rates rate (events per second; `max` = as fast
as it goes) for --seconds. Each event carries its send time (`time.time()` just before
publish()); each client records receive time - send time.

Reported per rate: events published per second, deliveries (event x socket) received per
second (from the first publish to the last arrival), publish-to-receive latency p50/p95/p99
(the budget's figure: from the call to publish(), whose log INSERT and commit are part of it),
the same from publish()'s return (the push and fan-out alone), the publish() call itself, and
deliveries lost. DESIGN.md's budget on
2 cores: p50 <= 5 ms, p95 <= 20 ms, >= 2,000 events/s delivered per process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import add_json_flag, emit_json, summary
from _common import percentile as _pct

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- setup (main process) ---------------------------------------------------------------------


def _setup(tenants: int) -> list[tuple[str, str]]:
    """Bench tenants with a fresh read key each; returns [(tenant id, key)]."""
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import Tenant
    from apps.tenancy.principal import Actor

    actor = Actor.system("bench")
    found = []
    for n in range(tenants):
        slug = f"bench-ws-{n}"
        tenant = Tenant.objects.filter(slug=slug).first() or tenancy.tenant_create(
            slug=slug, name=f"WS fan-out {n}", actor=actor
        )
        _, key = tenancy.api_key_create(tenant=tenant, actor=actor, name="bench-ws", scopes=["read"])
        found.append((str(tenant.pk), key))
    return found


# --- clients (one process each) ---------------------------------------------------------------


def _client_process(url: str, assignments: list[tuple[str, str]], conn) -> None:
    """Open one socket per assignment, report 'ready', then record latencies until 'stop'."""
    asyncio.run(_client_main(url, assignments, conn))


async def _client_main(url: str, assignments: list[tuple[str, str]], conn) -> None:
    from websockets.asyncio.client import connect

    samples: dict[str, list[tuple[int, float]]] = {}  # run -> (seq, receive time)
    other_tenant = 0
    overflows = 0

    async def reader(tenant_id: str, key: str, ready: asyncio.Event) -> None:
        nonlocal other_tenant, overflows
        async with connect(
            f"{url}/ws", additional_headers={"Authorization": f"Bearer {key}"}, ping_interval=None, max_queue=None
        ) as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "connected", first
            ready.set()
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                if message.get("type") == "overflow":
                    overflows += 1  # this client read too slowly; the server closes with 4408
                data = message.get("data") or {}
                run = data.get("run") if isinstance(data, dict) else None
                if run is None:
                    continue
                if message["tenant"] != tenant_id:
                    other_tenant += 1
                samples.setdefault(run, []).append((data["seq"], now))

    tasks, readies = [], []
    for tenant_id, key in assignments:
        ready = asyncio.Event()
        readies.append(ready)
        tasks.append(asyncio.create_task(reader(tenant_id, key, ready)))
        await asyncio.sleep(0.002)  # do not stampede the handshake
    await asyncio.gather(*(r.wait() for r in readies))
    conn.send("ready")
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "stop":
            break
        if isinstance(command, tuple):  # ("count", run): how many arrived so far
            conn.send(len(samples.get(command[1], [])))
            continue
        run = command
        conn.send({"run": run, "samples": samples.pop(run, [])})
    conn.send({"other_tenant": other_tenant, "overflows": overflows})
    for task in tasks:
        task.cancel()


# --- publisher (a worker-like process) --------------------------------------------------------


def _publisher(tenant_ids: list[str], rate: float | None, seconds: float, run: str) -> None:
    import django

    django.setup()
    from apps.events.push import pusher
    from apps.events.services import publish

    period = 1.0 / rate if rate else 0.0
    count, started = 0, time.perf_counter()
    next_at = started
    times: list[tuple[float, float]] = []  # per seq: (wall time before publish(), after it)
    while time.perf_counter() - started < seconds:
        if period:
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_at += period
        tenant_id = tenant_ids[count % len(tenant_ids)]
        sent = time.time()
        publish(tenant_id, "bench", {"sent": sent, "seq": count, "run": run})
        times.append((sent, time.time()))
        count += 1
    elapsed = time.perf_counter() - started
    pusher.drain(30)
    print(json.dumps({"published": count, "elapsed": elapsed, "times": times, "dropped": pusher.dropped}), flush=True)


def _publish(tenant_ids: list[str], rate: float | None, seconds: float, run: str, env: dict) -> dict:
    argv = [sys.executable, __file__, "--publisher", "--run", run, "--seconds", str(seconds)]
    argv += ["--rate", str(rate or 0), "--tenant-ids", ",".join(tenant_ids)]
    done = subprocess.run(argv, env=env, cwd=BASE_DIR, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"publisher failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--client-procs", type=int, default=4)
    parser.add_argument("--rates", default="20,40,80,max", help="events/s per phase, comma-separated; max = no limit")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--layer", choices=["pubsub", "core"], default=os.environ.get("CHANNEL_LAYER", "pubsub"))
    # internal: the publisher subprocess
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--run", default="", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--tenant-ids", default="", help=argparse.SUPPRESS)
    add_json_flag(parser)
    args = parser.parse_args()

    if args.publisher:
        _publisher(args.tenant_ids.split(","), args.rate or None, args.seconds, args.run)
        return 0

    os.environ["CHANNEL_LAYER"] = args.layer
    env = {**os.environ, "CHANNEL_LAYER": args.layer, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    tenants = _setup(args.tenants)
    tenant_ids = [t for t, _ in tenants]
    port = _free_port()
    daphne_cmd = os.environ.get("BENCH_DAPHNE", f"{sys.executable} -m daphne").split()
    daphne = subprocess.Popen(
        [*daphne_cmd, "-b", "127.0.0.1", "-p", str(port), "agentplatform.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    clients: list[tuple[mp.Process, object]] = []
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or daphne.poll() is not None:
                    print("daphne did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)

        assignments = [tenants[n % len(tenants)] for n in range(args.sockets)]
        context = mp.get_context("spawn")
        for n in range(args.client_procs):
            parent, child = context.Pipe()
            # Every tenant's sockets spread over all client processes: each event then reaches
            # each process, instead of all 50 copies queueing in one (a tenant's sockets are
            # every len(tenants)-th entry of `assignments`).
            share = [a for i, a in enumerate(assignments) if (i // len(tenants)) % args.client_procs == n]
            process = context.Process(target=_client_process, args=(f"ws://127.0.0.1:{port}", share, child))
            process.start()
            clients.append((process, parent))
        opened = time.perf_counter()
        for _, conn in clients:
            if not conn.poll(120) or conn.recv() != "ready":
                print("clients did not connect", file=sys.stderr)
                return 1
        print(
            f"{args.sockets} sockets over {args.tenants} tenants ({args.sockets // args.tenants} per tenant), "
            f"{args.client_procs} client processes, open in {time.perf_counter() - opened:.1f} s; "
            f"channel layer: {args.layer}; {os.cpu_count()} CPUs"
        )
        sockets_per_tenant = {t: assignments.count((t, k)) for t, k in tenants}

        def phase(rate: float | None, seconds: float) -> dict:
            run = uuid.uuid4().hex[:8]
            report = _publish(tenant_ids, rate, seconds, run, env)
            expected = sum(sockets_per_tenant[tenant_ids[n % len(tenant_ids)]] for n in range(report["published"]))
            # Let the last deliveries land: until all are in, or none came for two seconds.
            last, still = -1, time.monotonic()
            while time.monotonic() - still < 2.0:
                time.sleep(0.2)
                arrived = 0
                for _, conn in clients:
                    conn.send(("count", run))
                    arrived += conn.recv()
                if arrived >= expected:
                    break
                if arrived != last:
                    last, still = arrived, time.monotonic()
            received = []
            for _, conn in clients:
                conn.send(run)
                received += conn.recv()["samples"]
            times = report["times"]
            from_call = [(at - times[seq][0]) * 1000 for seq, at in received]
            from_return = [(at - times[seq][1]) * 1000 for seq, at in received]
            calls = [(done - sent) * 1000 for sent, done in times]
            # Deliveries per second over the time they really took: first publish to last arrival.
            span = (max(at for _, at in received) - times[0][0]) if received else report["elapsed"]
            return {
                "delivery_rate": len(received) / max(span, report["elapsed"]),
                **report,
                "from_call": from_call,
                "from_return": from_return,
                "calls": calls,
                "received": len(received),
                "expected": expected,
            }

        phase(20, 2.0)  # warm-up: connections, pools, JIT-less caches
        print(
            f"{'rate':>5} {'events/s':>8} {'deliv/s':>8} | {'publish->receive ms':^23} | "
            f"{'after publish() ms':^16} | {'publish() ms':^12} | {'lost':>5}"
        )
        print(
            f"{'':>5} {'':>8} {'':>8} | {'p50':>7}{'p95':>8}{'p99':>8} | {'p50':>8}{'p95':>8} | {'p50':>6}{'p95':>6} |"
        )
        phases = []
        for label in args.rates.split(","):
            rate = None if label.strip() == "max" else float(label)
            r = phase(rate, args.seconds)
            phases.append(
                {
                    "rate": label.strip(),
                    "events_per_s": round(r["published"] / r["elapsed"], 1),
                    "deliveries_per_s": round(r["delivery_rate"], 1),
                    "publish_to_receive_ms": summary(r["from_call"]),
                    "after_publish_ms": summary(r["from_return"]),
                    "publish_call_ms": summary(r["calls"]),
                    "lost": r["expected"] - r["received"],
                }
            )
            a, b, c = r["from_call"], r["from_return"], r["calls"]
            print(
                f"{label.strip():>5} {r['published'] / r['elapsed']:>8.0f} {r['delivery_rate']:>8.0f} | "
                f"{_pct(a, 50):>7.1f}{_pct(a, 95):>8.1f}{_pct(a, 99):>8.1f} | {_pct(b, 50):>8.1f}{_pct(b, 95):>8.1f} | "
                f"{_pct(c, 50):>6.1f}{_pct(c, 95):>6.1f} | {r['expected'] - r['received']:>5}"
            )
        leaks = overflows = 0
        for _, conn in clients:
            conn.send("stop")
            final = conn.recv()
            leaks += final["other_tenant"]
            overflows += final["overflows"]
        print(f"events seen by a socket of another tenant: {leaks}")
        print(f"sockets closed for overflow (too slow to read): {overflows}")
        if args.json:
            emit_json(
                "ws_fanout",
                {
                    "sockets": args.sockets,
                    "tenants": args.tenants,
                    "client_procs": args.client_procs,
                    "layer": args.layer,
                    "seconds": args.seconds,
                    "phases": phases,
                    "other_tenant_events": leaks,
                    "overflow_closes": overflows,
                },
            )
    finally:
        for process, _ in clients:
            process.join(5)
            if process.is_alive():
                process.terminate()
        daphne.terminate()
        daphne.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
