"""Optional clients of the scale-out backends, imported on first use with a clear error."""

from __future__ import annotations

import importlib
from typing import Any

from pai_core.errors import MissingDependency


def import_extra(module: str, *, needed_by: str, extra: str) -> Any:
    """``module`` imported, or MissingDependency naming the membrane extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"{needed_by} needs {module}, which is not installed; nothing was changed",
            extra=extra,
            package="pai-membrane",
        ) from exc
