"""The control plane connection of one CLI invocation: built on first use, closed when the command ends.

Credentials come from ``GRID_URL``/``GRID_USER_ID``/``GRID_API_KEY``, else the credentials file, else the
embedded local control plane (``GridClient.from_env``). ``--cluster`` (or ``GRID_CLUSTER_ID``) picks the
cluster; otherwise the server's default cluster is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from grid_ops.client import GridClient

F = TypeVar("F", bound=Callable[..., Any])
_CLUSTER = "grid_ops.cluster"
_CLIENT = "grid_ops.client"


def _store_cluster(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[_CLUSTER] = value


def cluster_option(func: F) -> F:
    """Decorator adding ``--cluster ID`` (the cluster to act on; default ``$GRID_CLUSTER_ID`` or the
    server's default cluster)."""
    option = click.option(
        "--cluster",
        metavar="ID",
        default=None,
        expose_value=False,
        callback=_store_cluster,
        help="Cluster to act on (default: $GRID_CLUSTER_ID, else the server's default cluster).",
    )
    return option(func)


def chosen_cluster() -> str | None:
    """The cluster named by ``--cluster`` for this invocation, if any."""
    ctx = click.get_current_context()
    value = ctx.meta.get(_CLUSTER)
    return str(value) if value else None


def get_client() -> GridClient:
    """The client of this invocation, created on first use and installed as the SDK's process-wide client."""
    from grid_ops.client import GridClient, set_client  # here: it loads requests and pydantic

    ctx = click.get_current_context()
    client = ctx.meta.get(_CLIENT)
    if isinstance(client, GridClient):
        return client
    cluster = chosen_cluster()
    client = GridClient.from_env(cluster_id=cluster) if cluster else GridClient.from_env()
    set_client(client)  # so that SDK objects built by the command talk to the same server as the same user
    ctx.meta[_CLIENT] = client
    ctx.find_root().call_on_close(lambda: set_client(None))
    return client
