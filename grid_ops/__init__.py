"""grid-ops: hyperparameter sweeps on a Grid-style platform, from Python, the CLI, Airflow and Prefect.

The SDK names (``Run``, ``Experiment``, ``Datastore``, ``Resources``, ``Actions``, ``ScratchSpace``, ``api``,
``login``, ``list_runs``, ``list_datastores``) are imported on first use, so that ``import grid_ops.schemas``
(the control plane does) does not load the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grid_ops import errors
    from grid_ops.sdk import (
        Actions,
        Datastore,
        Experiment,
        Resources,
        Run,
        ScratchSpace,
        api,
        list_datastores,
        list_runs,
        login,
    )
    from grid_ops.version import __version__


_SDK_NAMES = frozenset(
    {
        "Run",
        "Experiment",
        "Resources",
        "Actions",
        "ScratchSpace",
        "api",
        "login",
        "list_runs",
        "Datastore",
        "list_datastores",
    }
)

__all__ = [
    "Actions",
    "Datastore",
    "Experiment",
    "Resources",
    "Run",
    "ScratchSpace",
    "__version__",
    "api",
    "errors",
    "list_datastores",
    "list_runs",
    "login",
]


def __getattr__(name: str) -> Any:
    """Import an SDK name on first access (PEP 562)."""
    if name == "errors":
        return importlib.import_module("grid_ops.errors")
    if name == "__version__":  # read from the package metadata on first use (see grid_ops.version)
        return importlib.import_module("grid_ops.version").package_version()
    if name in _SDK_NAMES:
        value = getattr(importlib.import_module("grid_ops.sdk"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'grid_ops' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
