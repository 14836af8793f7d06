"""The ``datastores:`` section of the server config: same-host uploads, which ``http(s)`` sources the server
may download and how much, limits on unpacking archives, and the size of each node's cache of versions.

```yaml
datastores:
  same_host_ingest: true        # default: on for the embedded control plane only
  http_allow: [127.0.0.1, "http://files.internal:8080/data/"]
  http_allow_public: true       # any public address (default); false: only what http_allow lists
  download_max_bytes: 53687091200  # 50 GiB per http(s) download
  unpack_max_bytes: 53687091200 # 50 GiB unpacked per version
  unpack_max_files: 1000000
  unpack_max_ratio: 200         # unpacked bytes per byte of archive
  node_cache_max_bytes: 53687091200  # 0: no limit
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GIB = 1024**3
DEFAULT_UNPACK_MAX_BYTES = 50 * GIB
DEFAULT_UNPACK_MAX_FILES = 1_000_000
DEFAULT_UNPACK_MAX_RATIO = 200.0
DEFAULT_NODE_CACHE_MAX_BYTES = 50 * GIB
DEFAULT_DOWNLOAD_MAX_BYTES = 50 * GIB


@dataclass(frozen=True)
class UnpackLimits:
    """What one archive may unpack to: total bytes, number of members, and bytes per archive byte."""

    max_bytes: int = DEFAULT_UNPACK_MAX_BYTES
    max_files: int = DEFAULT_UNPACK_MAX_FILES
    max_ratio: float = DEFAULT_UNPACK_MAX_RATIO


@dataclass(frozen=True)
class DatastoreSettings:
    """Datastore behaviour of one control plane (see the module's docstring for the YAML)."""

    same_host_ingest: bool | None = None
    """Clients on this machine may have the server copy their files straight from disk into the local
    storage. ``None``: on for the embedded control plane (one user, who is this machine's user), off for
    ``grid-ops server``, where it would let every user read any file the server's account can."""
    http_allow: tuple[str, ...] = ()
    """Hosts (``name``, ``name:port``, an IP address) or URL prefixes that ``http(s)`` sources may use even
    when they resolve to loopback, private or link-local addresses."""
    http_allow_public: bool = True
    """Whether ``http(s)`` sources on public addresses are allowed without being listed."""
    download_max_bytes: int = DEFAULT_DOWNLOAD_MAX_BYTES
    """The most an ``http(s)`` source may download (archive or not), checked against its announced length
    before anything is read and while it is read."""
    unpack: UnpackLimits = field(default_factory=UnpackLimits)
    node_cache_max_bytes: int = DEFAULT_NODE_CACHE_MAX_BYTES
    """The most each node keeps of datastore versions; least recently used ones not in use go first
    (0: no limit)."""


KEYS = {
    "same_host_ingest",
    "http_allow",
    "http_allow_public",
    "download_max_bytes",
    "unpack_max_bytes",
    "unpack_max_files",
    "unpack_max_ratio",
    "node_cache_max_bytes",
}


def parse_datastore_settings(data: Any, error: type[ValueError]) -> DatastoreSettings:
    """The ``datastores:`` mapping of a server config; ``error`` is raised with a message naming the key."""
    if data is None:
        return DatastoreSettings()
    if not isinstance(data, dict):
        raise error(f"datastores must be a mapping such as {{http_allow: [127.0.0.1]}}, got {type(data).__name__}")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise error(f"datastores: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(KEYS))}")

    def flag(key: str, default: bool | None) -> bool | None:
        value = data.get(key, default)
        if value is not None and not isinstance(value, bool):
            raise error(f"datastores.{key} must be true or false, got {value!r}")
        return value

    def number(key: str, default: float, kind: type = int, minimum: float = 0) -> Any:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            raise error(f"datastores.{key} must be a number of at least {minimum}, got {value!r}")
        return kind(value)

    allow = data.get("http_allow") or []
    if not isinstance(allow, list) or not all(isinstance(a, str) and a.strip() for a in allow):
        raise error(f"datastores.http_allow must be a list of hosts or URL prefixes, got {allow!r}")
    return DatastoreSettings(
        same_host_ingest=flag("same_host_ingest", None),
        http_allow=tuple(a.strip() for a in allow),
        http_allow_public=bool(flag("http_allow_public", True)),
        download_max_bytes=number("download_max_bytes", DEFAULT_DOWNLOAD_MAX_BYTES, int, 1),
        unpack=UnpackLimits(
            max_bytes=number("unpack_max_bytes", DEFAULT_UNPACK_MAX_BYTES, int, 1),
            max_files=number("unpack_max_files", DEFAULT_UNPACK_MAX_FILES, int, 1),
            max_ratio=number("unpack_max_ratio", DEFAULT_UNPACK_MAX_RATIO, float, 1),
        ),
        node_cache_max_bytes=number("node_cache_max_bytes", DEFAULT_NODE_CACHE_MAX_BYTES, int, 0),
    )
