"""Cron job lateness: jobs fired by a real celery beat (apps.scheduling.scheduler.JobScheduler, a
django-celery-beat DatabaseScheduler) and run by one real Celery worker, against the configured (or
embedded) PostgreSQL and Redis.

Run with `make bench-cron` (it starts the embedded services if needed). Two rounds:

- burst: N cron jobs (`* * * * *`, default 100) all due at the same minute boundary (each
  job's first slot; the jobs are paused after it);
- spread: N once-jobs due one after another over a minute.

Each job publishes an event topic (the cheapest action, so the figure is the scheduler's, not a
model's). Lateness is the run's started_at - its scheduled_for (beat's wake-up, the broker, the
worker's queue and the fire's own transaction). Missed: jobs with no run 15 s after their slot;
duplicated: runs beyond one per job and slot (the unique key makes a second row impossible, so
this also counts fires that would have run again under a different slot).

DESIGN.md's budget: p95 ≤ 1 s, max ≤ 2 s, 0 missed, 0 duplicated. Beat wakes at least every
CELERY_BEAT_MAX_LOOP_INTERVAL (1 s here).

`--json` prints, as the last line, one JSON object with the figures of both rounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")

from bench._common import add_json_flag, emit_json, summary  # noqa: E402

SLUG = "bench-cron"
MISSED_AFTER_S = 15.0


def _setup():
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)  # as `make run` would: the bench's tables exist
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import Tenant
    from apps.tenancy.principal import Actor

    tenant = Tenant.objects.filter(slug=SLUG).first() or tenancy.tenant_create(
        actor=Actor.system("bench"), slug=SLUG, name="Bench cron"
    )
    tenant.settings = {**(tenant.settings or {}), "cron_min_interval_seconds": 1, "cron_max_jobs": 100_000}
    tenant.save(update_fields=["settings"])
    _clean(tenant)
    return tenant


def _clean(tenant) -> None:
    from django_celery_beat.models import PeriodicTask, PeriodicTasks

    from apps.scheduling.models import CronJob

    names = [f"cron:{pk}" for pk in CronJob.objects.filter(tenant=tenant).values_list("pk", flat=True)]
    PeriodicTask.objects.filter(name__in=names).delete()
    PeriodicTasks.update_changed()
    CronJob.objects.filter(tenant=tenant).delete()


def _create(tenant, specs: list[dict]) -> list:
    from apps.scheduling.inputs import job_fields
    from apps.scheduling.services import cron_job_create

    return [cron_job_create(tenant=tenant, fields=job_fields(tenant, spec)) for spec in specs]


def _measure(jobs: list, *, slots: dict, deadline: float) -> dict:
    """Wait until every job ran its slot or the deadline passed; lateness and counts."""
    from apps.scheduling.models import CronRun

    ids = [job.pk for job in jobs]
    while time.monotonic() < deadline:
        if CronRun.objects.filter(job_id__in=ids).values("job_id").distinct().count() >= len(ids):
            break
        time.sleep(0.25)
    time.sleep(2.0)  # a duplicate of the last slots would land within this
    runs = list(CronRun.objects.filter(job_id__in=ids).values("job_id", "scheduled_for", "lateness_ms"))
    per_job: dict = {}
    for run in runs:
        per_job.setdefault(run["job_id"], []).append(run)
    missed = sum(1 for pk in ids if not any(r["scheduled_for"] == slots[pk] for r in per_job.get(pk, [])))
    duplicated = sum(max(0, len(found) - 1) for found in per_job.values())
    lateness = [float(r["lateness_ms"]) for r in runs if r["scheduled_for"] == slots[r["job_id"]]]
    return {
        "jobs": len(ids),
        "runs": len(runs),
        "missed": missed,
        "duplicated": duplicated,
        "lateness_ms": summary(lateness, digits=1),
    }


def _burst(tenant, count: int) -> dict:
    from django.utils import timezone

    from apps.scheduling.services import cron_job_pause

    now = timezone.now()
    if now.second > 45:  # the jobs and beat's reload need a few seconds before the boundary
        time.sleep(61 - now.second)
    jobs = _create(
        tenant,
        [
            {"name": f"burst-{n}", "scheduleType": "cron", "expression": "* * * * *", "eventTopic": "bench.burst"}
            for n in range(count)
        ],
    )
    slots = {job.pk: job.next_run_at for job in jobs}
    wait = (max(slots.values()) - timezone.now()).total_seconds()
    figures = _measure(jobs, slots=slots, deadline=time.monotonic() + wait + MISSED_AFTER_S)
    for job in jobs:
        cron_job_pause(tenant=tenant, job=job)
    return figures


def _spread(tenant, count: int, seconds: float) -> dict:
    from django.utils import timezone

    start = timezone.now() + dt.timedelta(seconds=5)
    specs = [
        {
            "name": f"spread-{n}",
            "scheduleType": "once",
            "atTimestamp": int((start + dt.timedelta(seconds=seconds * n / count)).timestamp() * 1000),
            "eventTopic": "bench.spread",
        }
        for n in range(count)
    ]
    jobs = _create(tenant, specs)
    slots = {job.pk: job.at for job in jobs}
    wait = (max(slots.values()) - timezone.now()).total_seconds()
    return _measure(jobs, slots=slots, deadline=time.monotonic() + wait + MISSED_AFTER_S)


def _start(args) -> list[subprocess.Popen]:
    env = {**os.environ, "LOG_LEVEL": "WARNING", "CELERY_BEAT_MAX_LOOP_INTERVAL": str(args.max_interval)}
    bin_dir = Path(sys.executable).parent
    worker = [
        *(str(bin_dir / "celery"), "-A", "agentplatform", "worker", "-l", "warning", "-Q", "celery"),
        *("--concurrency", str(args.worker_concurrency), "--without-gossip", "--without-mingle"),
        *("-n", f"bench-cron-{os.getpid()}@%h"),
    ]
    beat = [str(bin_dir / "celery"), "-A", "agentplatform", "beat", "-l", "warning", "--pidfile="]
    return [
        subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for command in (worker, beat)
    ]


def _wait_up(timeout: float = 90.0) -> bool:
    from django.utils import timezone

    from agentplatform.celery import app as celery_app
    from apps.scheduling.beat import beat_last_publish

    started = timezone.now()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = beat_last_publish()
        if last and last > started and celery_app.control.ping(timeout=0.5):
            return True
        time.sleep(0.5)
    return False


def _row(name: str, figures: dict) -> str:
    lateness = figures["lateness_ms"]
    cells = [lateness.get(k, float("nan")) for k in ("p50", "p95", "max")]
    return (
        f"{name:>7} {figures['jobs']:>5} {figures['runs']:>5} "
        + " ".join(f"{cell:>8.1f}" for cell in cells)
        + f" {figures['missed']:>7} {figures['duplicated']:>10}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100, help="jobs per round")
    parser.add_argument("--spread-seconds", type=float, default=60.0)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--max-interval", type=float, default=1.0, help="beat's CELERY_BEAT_MAX_LOOP_INTERVAL")
    add_json_flag(parser)
    args = parser.parse_args()

    tenant = _setup()
    processes = _start(args)
    try:
        if not _wait_up():
            print("beat or the worker did not start", file=sys.stderr)
            return 1
        results = {"burst": _burst(tenant, args.jobs), "spread": _spread(tenant, args.jobs, args.spread_seconds)}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        _clean(tenant)

    print(
        f"Cron lateness (scheduled_for → run started), one beat (max interval {args.max_interval} s) and one "
        f"worker (concurrency {args.worker_concurrency}); ms"
    )
    print(f"{'round':>7} {'jobs':>5} {'runs':>5} {'p50':>8} {'p95':>8} {'max':>8} {'missed':>7} {'duplicated':>10}")
    for name, figures in results.items():
        print(_row(name, figures))
    print("\nbudget: p95 ≤ 1000, max ≤ 2000, 0 missed, 0 duplicated")
    if args.json:
        emit_json(
            "cron", {**results, "max_interval_s": args.max_interval, "worker_concurrency": args.worker_concurrency}
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
