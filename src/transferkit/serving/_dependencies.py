"""Fail in one line, naming the extra to install, when the service's optional dependencies are missing."""

from __future__ import annotations

import importlib.util

from transferkit.errors import TransferKitError

MISSING = [name for name in ("fastapi", "uvicorn") if importlib.util.find_spec(name) is None]
if MISSING:
    raise TransferKitError(
        f"serving needs {' and '.join(MISSING)}; install the deploy extra: pip install 'transferkit[deploy]'"
    )
