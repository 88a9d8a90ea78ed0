"""WebSocket routes and the middleware stack in front of them (agentplatform/asgi.py mounts it)."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from django.urls import path, re_path

from apps.events.consumers import EventsConsumer, NotFoundConsumer
from apps.events.transport import TransportFlowMiddleware

websocket_urlpatterns = [
    path("ws", EventsConsumer.as_asgi()),
    re_path(r"", NotFoundConsumer.as_asgi()),
]


def websocket_application():
    """TransportFlow first, while `send` is still daphne's own; then the session and user for
    dashboard sockets (API-key sockets do not touch the database for them)."""
    from channels.routing import URLRouter

    return TransportFlowMiddleware(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
