"""The Tenant section of the sidebar: API keys, members, audit log, usage, in the issue's order.

One module registers the four (rather than each page module itself) because urls.py imports the
page modules in alphabetical order, which would put the audit log first.
"""

from __future__ import annotations

from apps.dashboard.nav import NavItem, nav_add
from apps.tenancy.models import Role

nav_add("Tenant", NavItem("API keys", "keys", "key", role=Role.ADMIN))
nav_add("Tenant", NavItem("Members", "members", "users", role=Role.ADMIN))
nav_add("Tenant", NavItem("Audit log", "audit", "list", role=Role.ADMIN))
nav_add("Tenant", NavItem("Usage", "usage", "chart", role=Role.VIEWER))  # what the API lets a viewer read
