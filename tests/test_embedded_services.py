"""The embedded services that `make run` and `make test` start when nothing is configured."""

from __future__ import annotations

import socket

import pytest
import redis

from agentplatform.embedded import Config, EmbeddedPostgres, ServiceError, Services


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(tmp_path, *, pg_port=None, redis_port=None, external_database=True) -> Config:
    return Config(
        var_dir=tmp_path,
        pg_port=pg_port or _free_port(),
        redis_port=redis_port or _free_port(),
        external_database=external_database,
        external_redis=False,
    )


def test_a_taken_port_gives_a_clear_message(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        services = Services(_config(tmp_path, redis_port=port))
        with pytest.raises(ServiceError, match=rf"Port {port} is taken.*EMBEDDED_REDIS_PORT.*REDIS_URL"):
            services.up()
        postgres = EmbeddedPostgres(_config(tmp_path, pg_port=port, external_database=False))
        with pytest.raises(ServiceError, match=rf"Port {port} is taken.*EMBEDDED_PG_PORT.*DATABASE_URL"):
            postgres.start()


def test_the_last_lease_stops_what_the_leases_started(tmp_path):
    config = _config(tmp_path)
    first, second = Services(config), Services(config)
    first.acquire()
    client = redis.Redis(host="127.0.0.1", port=config.redis_port)
    try:
        assert client.ping()
        # A second holder in another process reuses the running server...
        leases = tmp_path / "embedded-leases.json"
        import json

        state = json.loads(leases.read_text())
        state["pids"].append(1)  # pid 1 is always alive: stands in for another `make run`
        leases.write_text(json.dumps(state))
        first.release()
        assert client.ping(), "Redis must outlive a lease while another holder remains"
        state = json.loads(leases.read_text())
        state["pids"] = [p for p in state["pids"] if p != 1]
        leases.write_text(json.dumps(state))
        second.acquire()
        second.release()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert "stopped" in second.status()["redis"]
    finally:
        first.down()


def test_external_urls_mean_nothing_is_started(tmp_path):
    config = Config(var_dir=tmp_path, pg_port=1, redis_port=1, external_database=True, external_redis=True)
    services = Services(config)
    assert services.up() == []
    assert services.environment() == {}
    assert services.status() == {"postgres": "external (DATABASE_URL)", "redis": "external (REDIS_URL)"}
