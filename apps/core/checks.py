"""Start-up checks: a setting that would break every request fails `manage.py check` and every
process start instead, with a message that says how to fix it."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from limits import parse_many


@register()
def rate_limit_settings(app_configs, **kwargs):  # noqa: ARG001 - Django's check signature
    errors = []
    for name in ("API_RATE_LIMIT", "CHAT_RATE_LIMIT"):
        value = getattr(settings, name)
        try:
            limits = parse_many(value)
        except ValueError:
            limits = []
        if len(limits) != 1:
            errors.append(
                Error(
                    f"{name}={value!r} is not one rate limit.",
                    hint=f'Use a single "<count>/<second|minute|hour|day>", e.g. {name}="100/minute".',
                    id="core.E001",
                )
            )
    return errors
