"""The package version, read from its installed metadata on first use.

``importlib.metadata`` costs about 30 ms to import, so it is loaded only when ``__version__`` is asked for
(PEP 562 module ``__getattr__``): ``grid-ops --help`` and ``import grid_ops`` do not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    __version__: str

_cached: str | None = None


def package_version() -> str:
    """The installed version of grid-ops, or ``0.0.0+local`` in a source tree that is not installed."""
    global _cached
    if _cached is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            _cached = version("grid-ops")
        except PackageNotFoundError:  # running from a source tree that is not installed
            _cached = "0.0.0+local"
    return _cached


def __getattr__(name: str) -> str:
    if name == "__version__":
        return package_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
