"""`make run`: the whole platform in one terminal until Ctrl-C.

Starts the embedded services that are not configured externally, migrates, seeds the demo
tenant once, then runs daphne (HTTP + WebSocket), a Celery worker and Celery beat under
honcho, which prefixes each line with its process name. Ctrl-C stops all three, then the
embedded services this run started.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

from honcho.manager import Manager

from agentplatform.embedded import ServiceError, Services

BASE_DIR = Path(__file__).resolve().parent.parent


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _children_file() -> Path:
    return Services().config.var_dir / "devserver-children.pids"


def _stop_orphans() -> None:
    """Stop web/worker/beat left behind by a `make run` that was killed with SIGKILL.

    The file holds the devserver's pid, then each child's pid as it starts. When that
    devserver is gone but a child still runs our code, the child is an orphan.
    """
    path = _children_file()
    if not path.exists():
        return
    owner, *children = path.read_text().split()
    if owner.isdigit() and _alive(int(owner)):
        return  # another `make run` is live; the port check will say so
    for pid in (int(c) for c in children if c.isdigit()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "agentplatform" in cmdline and ("daphne" in cmdline or "celery" in cmdline):
            print(f"[devserver] stopping pid {pid} left by an earlier run: {cmdline[:80]}", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recorded(command: str) -> str:
    """Run `command` through a shell that first appends its pid (then exec keeps that pid)."""
    return f"echo $$ >> {shlex.quote(str(_children_file()))}; exec {command}"


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True, env=env, cwd=BASE_DIR)


def main() -> int:
    _stop_orphans()
    host = os.environ.get("WEB_HOST", "127.0.0.1")
    port = int(os.environ.get("WEB_PORT", "8000"))
    if not _port_free(host, port):
        print(
            f"error: {host}:{port} is taken (is another `make run` going?). Stop it, or run on another port: "
            f"WEB_PORT=8001 make run",
            file=sys.stderr,
        )
        return 2

    services = Services()
    try:
        services.acquire()
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        # A local model server (Ollama on 127.0.0.1:11434) is the usual provider on a developer's
        # machine; tenant URLs may reach loopback here unless the environment says otherwise.
        env = {
            "OUTBOUND_ALLOW_LOOPBACK": "true",
            **os.environ,
            **services.environment(),
            "PYTHONUNBUFFERED": "1",
        }
        _manage("migrate", "--noinput", "-v", "0", env=env)
        _manage("collectstatic", "--noinput", "-v", "0", env=env)
        base_url = f"http://{host}:{port}"
        _manage("seed_demo", "--base-url", base_url, env=env)
        print(f"\nagentplatform on {base_url}")
        print(f"  Dashboard: {base_url}/  (sign in as `demo`; its password is printed above on the first run)")
        print(f"  Admin: {base_url}/admin/  API docs: {base_url}/api/docs/")
        print("Ctrl-C stops web, worker, embedder, beat and the embedded services.\n", flush=True)

        _children_file().write_text(f"{os.getpid()}\n")
        bin_dir = Path(sys.executable).parent
        concurrency = os.environ.get("CELERY_WORKER_CONCURRENCY", "2")
        manager = Manager()
        manager.add_process(
            "web", f"{bin_dir}/daphne -b {host} -p {port} agentplatform.asgi:application", env=env, cwd=str(BASE_DIR)
        )
        manager.add_process(
            "worker",
            f"{bin_dir}/celery -A agentplatform worker -l info -Q celery --concurrency {concurrency} -n worker@%h",
            env=env,
            cwd=str(BASE_DIR),
        )
        # Embeddings in the background, at low priority (settings.CELERY_TASK_ROUTES says why).
        manager.add_process(
            "embedder",
            f"nice -n 10 {bin_dir}/celery -A agentplatform worker -l info -Q memory --concurrency 1 -n embedder@%h",
            env=env,
            cwd=str(BASE_DIR),
        )
        manager.add_process("beat", f"{bin_dir}/celery -A agentplatform beat -l info", env=env, cwd=str(BASE_DIR))
        manager.loop()
        # Ctrl-C (SIGINT) or SIGTERM is how this is meant to stop: that is a clean exit.
        return 0 if manager.returncode in (130, 143) else (manager.returncode or 0)
    except subprocess.CalledProcessError as exc:
        print(f"error: set-up step failed: {' '.join(map(str, exc.cmd[1:]))}", file=sys.stderr)
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130
    finally:
        services.release()


if __name__ == "__main__":
    sys.exit(main())
