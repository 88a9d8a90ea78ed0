"""The built-in tools. `apps.tools.registry.builtin_registry` holds them.

Each built-in module imports the dataclasses from `apps.tools.registry`, and that module imports
the built-ins at its bottom to register them. Loading the registry first, here, makes that cycle
resolve whichever module is imported first: the registry's dataclasses always exist before a
built-in asks for them.
"""

from __future__ import annotations

import apps.tools.registry  # noqa: F401 - load order, see above
