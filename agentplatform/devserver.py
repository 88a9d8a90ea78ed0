"""`make run`: the whole platform in one terminal until Ctrl-C.

Starts the embedded services that are not configured externally, migrates, seeds the demo
tenant once, then runs daphne (HTTP + WebSocket), a Celery worker and Celery beat under
honcho, which prefixes each line with its process name. Ctrl-C stops all three, then the
embedded services this run started.
"""

from __future__ import annotations

import os
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


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], check=True, env=env, cwd=BASE_DIR)


def main() -> int:
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
        env = {**os.environ, **services.environment(), "PYTHONUNBUFFERED": "1"}
        _manage("migrate", "--noinput", "-v", "0", env=env)
        _manage("collectstatic", "--noinput", "-v", "0", env=env)
        base_url = f"http://{host}:{port}"
        _manage("seed_demo", "--base-url", base_url, env=env)
        print(f"\nagentplatform on {base_url}  (admin: {base_url}/admin/  API docs: {base_url}/api/docs/)")
        print("Ctrl-C stops web, worker, beat and the embedded services.\n", flush=True)

        bin_dir = Path(sys.executable).parent
        concurrency = os.environ.get("CELERY_WORKER_CONCURRENCY", "2")
        manager = Manager()
        manager.add_process(
            "web", f"{bin_dir}/daphne -b {host} -p {port} agentplatform.asgi:application", env=env, cwd=str(BASE_DIR)
        )
        manager.add_process(
            "worker",
            f"{bin_dir}/celery -A agentplatform worker -l info --concurrency {concurrency}",
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
