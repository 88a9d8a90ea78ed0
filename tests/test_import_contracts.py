"""The import map (pyproject.toml, [tool.importlinter]; docs/architecture.md, "Import map") holds,
and its contracts would catch the imports they are there to stop."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACES = ("apps.scheduling", "apps.workflows", "apps.compat", "apps.stats", "apps.dashboard")


@functools.cache
def _ignored_imports() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return [entry for contract in config["contracts"] for entry in contract.get("ignore_imports", [])]


def _probe(*cases: dict) -> list[dict]:
    """Each case checked by tests/import_contracts_probe.py (it says why in a process of its own)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "import_contracts_probe.py")],
        input=json.dumps(list(cases)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_import_contracts_hold():
    # The same command as `make lint`; its report is the failure message.
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
    assert "2 kept, 0 broken" in result.stdout


def test_the_contracts_catch_what_they_are_there_to_stop():
    up = {"contract": "app-layers", "imports": [["apps.memory.services", "apps.conversations.models"]]}
    # tools -> events is allowed; the way back would close a cycle, and it is an import up.
    cycle = {"contract": "app-layers", "imports": [["apps.events.services", "apps.tools.registry"]]}
    new_app = {"contract": "app-layers", "modules": ["apps.billing"]}
    project = {"contract": "project-wiring", "imports": [["apps.core.health", "agentplatform.celery"]]}
    as_is = [{"contract": "app-layers"}, {"contract": "project-wiring"}]
    results = _probe(*as_is, up, cycle, new_app, project)
    assert [r["kept"] for r in results] == [True, True, False, False, False, False]
    assert results[4]["undeclared"] == ["apps.billing"]  # a new app must be given its layer


def test_faces_import_the_apps_but_not_each_other_and_nothing_imports_them():
    down = [[f"{face}.services", "apps.conversations.services"] for face in FACES]
    sideways = [["apps.compat.views", "apps.scheduling.services"]]
    up = [["apps.conversations.services", "apps.workflows.services"]]
    cases = [
        {"contract": "app-layers", "modules": list(FACES), "imports": imports}
        for imports in (down, down + sideways, up)
    ]
    assert [r["kept"] for r in _probe(*cases)] == [True, False, False]


def test_every_exception_is_named_and_explained_in_the_docs():
    # None today; one that is added must name both modules and have its reason in the docs.
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for entry in _ignored_imports():
        importer, imported = (part.strip() for part in entry.split("->"))
        # Named modules only: a wildcard would wave through a whole app's imports.
        assert re.fullmatch(r"apps(\.\w+)+", importer), entry
        assert re.fullmatch(r"apps(\.\w+)+", imported), entry
        assert f"`{importer} -> {imported}`" in architecture, f"docs/architecture.md does not explain {entry}"
