from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_health_needs_nothing(anon_client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = anon_client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy"}


def test_ready_when_database_redis_migrations_and_channel_layer_are_up(anon_client):
    response = anon_client.get("/ready")
    assert response.status_code == 200, response.json()
    assert response.json() == {"ready": True}


def test_ready_names_what_is_missing(anon_client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [settings.REDIS_URL]}}
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        response = anon_client.get("/ready")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 503
    assert set(response.json()["missing"]) == {"redis", "channel_layer"}


def test_status_reports_version_and_uptime(anon_client):
    body = anon_client.get("/status").json()
    assert body["status"] == "ok"
    assert body["version"] == "0.1.0"
    assert body["uptime_seconds"] >= 0


def test_api_health_reports_each_service_and_503_without_a_worker(anon_client):
    # No Celery worker runs during this test, so the platform is honestly not healthy.
    response = anon_client.get("/api/health")
    body = response.json()
    assert response.status_code == 503
    assert set(body["services"]) == {"database", "redis", "celery_workers", "channel_layer", "embedder"}
    assert body["services"]["database"]["status"] == "healthy"
    assert body["services"]["redis"]["status"] == "healthy"
    assert body["services"]["celery_workers"]["status"] == "unhealthy"
    assert isinstance(body["services"]["database"]["responseTime"], float)


def test_metrics_are_prometheus_text_with_per_view_counts(anon_client, owner_client):
    owner_client.get("/api/tenants/current")
    response = anon_client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_latency_seconds_by_view_method" in text
    assert 'view="tenant-current"' in text
