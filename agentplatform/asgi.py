"""ASGI entry point served by daphne: HTTP through Django, WebSocket (/ws) through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")

# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from apps.core import server_limits  # noqa: E402
from apps.events.routing import websocket_application  # noqa: E402
from apps.events.transport import StreamFlowMiddleware  # noqa: E402

server_limits.install()  # JSON 414/431/400 from daphne's HTTP layer instead of a closed socket

application = ProtocolTypeRouter(
    {
        # SSE responses wait for their reader (backpressure); every other response passes through.
        "http": StreamFlowMiddleware(django_asgi_app),
        "websocket": websocket_application(),
    }
)
