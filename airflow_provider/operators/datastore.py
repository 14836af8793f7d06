"""``DatastoreUploadOperator``: upload a directory, file or URL as the next version of a datastore.

Waits until the version is available and returns ``{"name", "version", "size"}``. The SDK's uploader keeps
its progress under ``$GRID_OPS_HOME`` on the worker, so a retry on the same machine (same ``name``,
``source``, ``compression``) resumes an interrupted upload and sends only what is missing. The task
declares the outlet asset ``grid://datastores/<name>`` (when ``name`` is not templated), so DAGs can be
scheduled on new versions; the asset event carries the version and size.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import Asset, BaseOperator, Context
from airflow.sdk.exceptions import AirflowException

from airflow_provider.hooks.grid import DEFAULT_CONN_ID, GridHook
from airflow_provider.operators.run import fail_fast
from grid_ops.errors import GridError
from grid_ops.sdk import Datastore


def datastore_asset(name: str) -> Asset:
    """The asset that stands for every version of the datastore ``name``."""
    return Asset(uri=f"grid://datastores/{name}", name=f"grid-datastore-{name}")


class DatastoreUploadOperator(BaseOperator):
    """Upload ``source`` (a local directory or file, an ``http(s)`` URL or ``s3://`` prefix) as a new version
    of the datastore ``name``.

    :param name: the datastore's name (templated).
    :param source: what to upload (templated), e.g. ``"/data/{{ ds }}"``.
    :param compression: pack a directory into one gzip tar for the upload (the server unpacks it).
    :param cluster_id: the cluster to store it on (default: the connection's, else the server's default).
    :param grid_conn_id: the ``grid`` connection (see ``GridHook``).
    """

    template_fields: Sequence[str] = ("name", "source", "cluster_id")
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        name: str,
        source: str,
        compression: bool = False,
        cluster_id: str | None = None,
        grid_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and "{{" not in name:
            kwargs["outlets"] = [datastore_asset(name)]
        super().__init__(**kwargs)
        self.name = name
        self.source = source
        self.compression = compression
        self.cluster_id = cluster_id
        self.grid_conn_id = grid_conn_id

    @cached_property
    def hook(self) -> GridHook:
        """The hook of ``grid_conn_id`` (built after templates are rendered)."""
        return GridHook(grid_conn_id=self.grid_conn_id, cluster_id=self.cluster_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Upload (resuming an interrupted upload of the same source), wait until available, report."""
        try:
            datastore = Datastore(
                name=self.name,
                source=self.source,
                compression=self.compression,
                cluster_id=self.hook.cluster_id,
                client=self.hook.client,
            )
            datastore.upload()
        except GridError as exc:
            raise fail_fast(exc) from exc
        if datastore.snapshot_status != "succeeded":
            raise AirflowException(
                f"version {datastore.version} of datastore {self.name!r} is {datastore.snapshot_status}: "
                f"{datastore.message or 'no message'}"
            )
        stats = datastore.last_upload
        if stats is not None:
            self.log.info(
                "Datastore %s version %s: %d bytes in %d files; sent %d bytes, resumed %d, already stored %d",
                self.name,
                datastore.version,
                datastore.size,
                datastore.file_count,
                stats.bytes_sent,
                stats.bytes_resumed,
                stats.bytes_already_stored,
            )
        result = {"name": datastore.name, "version": datastore.version, "size": datastore.size}
        for outlet in self.outlets:
            if isinstance(outlet, Asset) and outlet.uri == datastore_asset(self.name).uri:
                context["outlet_events"][outlet].extra = dict(result)
        return result
