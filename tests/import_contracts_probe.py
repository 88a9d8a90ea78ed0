"""Checks the contracts of pyproject.toml against the project's import graph with imports or
modules added, for tests/test_import_contracts.py. Runs in a process of its own: in the test
process Twisted (daphne's) has loaded zope.interface, whose class hooks break import-linter's
option checks.

Reads a JSON list of cases `{"contract": id, "modules": [...], "imports": [[importer, imported]]}`
on stdin and prints a JSON list of `{"kept": bool, "undeclared": [...]}`.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import grimp
from importlinter.api import read_configuration
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_TYPES = {"layers": LayersContract, "forbidden": ForbiddenContract}


def main() -> None:
    config = read_configuration(str(ROOT / "pyproject.toml"))
    graph = grimp.build_graph(*config["session_options"]["root_packages"], cache_dir=None)
    results = []
    for case in json.load(sys.stdin):
        options = next(c for c in config["contracts_options"] if c["id"] == case["contract"])
        contract = CONTRACT_TYPES[options["type"]](
            name=options["name"], session_options=config["session_options"], contract_options=options
        )
        changed = copy.deepcopy(graph)
        for module in case.get("modules", []):
            changed.add_module(module)
        for importer, imported in case.get("imports", []):
            changed.add_import(importer=importer, imported=imported)
        check = contract.check(changed, verbose=False)
        results.append({"kept": check.kept, "undeclared": sorted(check.metadata.get("undeclared_modules", ()))})
    print(json.dumps(results))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
