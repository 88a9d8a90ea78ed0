"""ASGI entry point served by daphne: HTTP through Django, WebSocket through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentplatform.settings")

# Django must be set up before anything imports models (consumers do).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

# WebSocket routes join this router when the /ws transport lands (see docs/architecture.md).
application = ProtocolTypeRouter({"http": django_asgi_app})
