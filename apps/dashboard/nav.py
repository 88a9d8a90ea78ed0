"""The sidebar: sections of pages, each shown to members with at least its role.

A later page adds itself with one `NavItem` here (docs/dashboard.md, "Adding a page").
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from apps.tenancy.models import Role


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str  # in the `dashboard` namespace
    icon: str  # an id in static/dashboard/icons.svg
    role: str = Role.VIEWER
    # URL prefixes (besides the item's own) that highlight it, e.g. a session under Chat.
    also_active_under: tuple[str, ...] = ()


@dataclass(frozen=True)
class NavSection:
    title: str
    items: tuple[NavItem, ...]


NAV: list[NavSection] = [
    NavSection("Work", ()),
    NavSection("Build", ()),
    NavSection("Tenant", ()),
]


def nav_add(section: str, item: NavItem) -> None:
    """Append a page to a section (pages register themselves in apps/dashboard/views/__init__.py)."""
    for index, existing in enumerate(NAV):
        if existing.title == section:
            NAV[index] = NavSection(existing.title, (*existing.items, item))
            return
    NAV.append(NavSection(section, (item,)))


def nav_for(principal, path: str) -> list[dict]:
    """The sections and items this viewer sees, with the active one marked."""
    sections = []
    for section in NAV:
        items = []
        for item in section.items:
            if not principal.has_role(item.role):
                continue
            url = reverse(f"dashboard:{item.url_name}")
            prefixes = (url, *item.also_active_under) if url != "/" else item.also_active_under
            active = path == url or any(path.startswith(p) for p in prefixes if p != "/")
            items.append({"label": item.label, "url": url, "icon": item.icon, "active": active})
        if items:
            sections.append({"title": section.title, "items": items})
    return sections
