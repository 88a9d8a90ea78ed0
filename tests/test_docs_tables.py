"""The documentation's reference tables list exactly what the code has."""

from __future__ import annotations

import re
from pathlib import Path

from apps.tenancy.api.serializers import TenantSettingsSerializer
from apps.tools.registry import builtin_registry

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _table_rows(page: str, heading: str) -> dict[str, list[str]]:
    """The rows of the first table under `heading`, by their first cell (backticks removed)."""
    text = (DOCS / page).read_text()
    section = text[text.index(heading) :]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:]
        elif rows and not line.startswith("|"):
            break
    return rows


def test_every_builtin_tool_is_in_the_tools_table_with_its_side_effect():
    rows = _table_rows("tools.md", "### Built-in tools")
    tools = builtin_registry.tools(builtin_registry.names())
    assert set(rows) == {tool.name for tool in tools}
    for tool in tools:
        assert rows[tool.name][0] == tool.side_effect, tool.name
        for argument in tool.parameters.get("properties", {}):
            assert re.search(rf"`{argument}`", rows[tool.name][2]), (tool.name, argument)


def test_every_tenant_setting_is_in_the_tenancy_table():
    rows = _table_rows("tenancy.md", "## Tenant settings")
    assert set(rows) == set(TenantSettingsSerializer().fields)
