"""Datastore storage backends, one per cluster as its server config says (``clusters[].storage``)."""

from __future__ import annotations

from pathlib import Path

from grid_ops.server.config import StorageConfig
from grid_ops.server.storage.base import BlobStore, StorageError
from grid_ops.server.storage.local import LocalStore, Signer

__all__ = ["BlobStore", "StorageError", "open_store"]


def open_store(cluster_id: str, config: StorageConfig, state_dir: Path, sign: Signer) -> BlobStore:
    """The backend of one cluster: a directory (default ``<state_dir>/datastores/<cluster>``) or S3."""
    if config.backend == "s3":
        from grid_ops.server.storage.s3 import S3Store

        assert config.bucket is not None  # the config loader requires it
        return S3Store(config.bucket, config.prefix, config.endpoint_url, config.region)
    root = Path(config.path).expanduser() if config.path else state_dir / "datastores" / cluster_id
    return LocalStore(root, cluster_id, sign)
