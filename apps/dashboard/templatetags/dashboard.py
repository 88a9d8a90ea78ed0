"""Template helpers shared by every dashboard page."""

from __future__ import annotations

import json

from django import template
from django.templatetags.static import static
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def icon(name: str, label: str = "") -> str:
    """An icon from static/dashboard/icons.svg; decorative unless it has a label."""
    aria = format_html('role="img" aria-label="{}"', label) if label else 'aria-hidden="true"'
    return format_html('<svg class="icon" {}><use href="{}#{}"></use></svg>', aria, static("dashboard/icons.svg"), name)


@register.simple_tag
def local_time(value, fmt: str = "datetime") -> str:
    """A timestamp shown in the viewer's own timezone by app.js (UTC until scripts run)."""
    if value is None:
        return "—"
    return format_html(
        '<time datetime="{}" data-format="{}">{}</time>', value.isoformat(), fmt, value.strftime("%Y-%m-%d %H:%M UTC")
    )


@register.filter
def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
