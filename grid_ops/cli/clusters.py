"""``grid-ops clusters`` and ``grid-ops instance-types``: where experiments can run, and on what."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from grid_ops.cli import output
from grid_ops.cli.session import chosen_cluster, cluster_option, get_client

if TYPE_CHECKING:
    from grid_ops import schemas


def _enum_text(value: object, prefix: str) -> str | None:
    """A wire enum without its prefix, lowercase: ``CLUSTER_STATE_RUNNING`` -> ``running``."""
    if value is None:
        return None
    return str(value).removeprefix(prefix).lower()


def cluster_row(cluster: schemas.Cluster, default: str | None) -> list[object]:
    """One row of the clusters table."""
    return [
        cluster.id,
        _enum_text(cluster.spec.cluster_type, "CLUSTER_TYPE_"),
        cluster.spec.executor,
        _enum_text(cluster.status.phase, "CLUSTER_STATE_"),
        "yes" if cluster.id == default else "",
    ]


def instance_type_row(it: schemas.InstanceType) -> list[object]:
    """One row of the instance types table."""
    memory = f"{it.memory_mb} MB" if it.memory_mb is not None else it.memory
    return [it.name, it.cpu, it.gpu, memory, output.money(it.hourly_cost), output.money(it.spot_hourly_cost)]


@click.command()
@output.output_option
def clusters() -> None:
    """List the clusters you can run on, and which one is the default."""
    answer = get_client().list_clusters()
    if output.wants_json():
        output.print_json(answer)
        return
    rows = [cluster_row(c, answer.default_cluster) for c in answer.clusters]
    output.print_table(("CLUSTER", "TYPE", "EXECUTOR", "STATUS", "DEFAULT"), rows, empty="no clusters")


@click.command("instance-types")
@cluster_option
@output.output_option
def instance_types() -> None:
    """List the instance types of a cluster (default: the default cluster) with their hourly prices."""
    client = get_client()
    types = client.list_instance_types(chosen_cluster())
    if output.wants_json():
        output.print_json(types)
        return
    headers = ("INSTANCE TYPE", "CPUS", "GPUS", "MEMORY", "HOURLY COST", "SPOT HOURLY COST")
    output.print_table(headers, [instance_type_row(t) for t in types], empty="no instance types")
