"""``grid-ops datastore create|list|delete|resume``: versioned datasets.

``create`` uploads a directory, a file, an ``http(s)`` URL or an ``s3://`` prefix as the next version of a
datastore; an interrupted upload resumes with ``resume`` (or by running the same ``create`` again).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from grid_ops.cli import output
from grid_ops.cli.progress import CliProgress, human_bytes
from grid_ops.cli.session import chosen_cluster, cluster_option, get_client
from grid_ops.errors import NotFoundError

if TYPE_CHECKING:  # the SDK and the uploader load pydantic and requests: imported by the commands that run
    from grid_ops import schemas
    from grid_ops.upload.uploader import UploadResult, UploadStats

RESUME_HINT = "the upload was interrupted; run 'grid-ops datastore resume' to send the rest"


def _interrupted(progress: CliProgress) -> None:
    progress.finish("interrupted")
    click.echo(RESUME_HINT, err=True)


def _summary(ds: schemas.Datastore, stats: UploadStats) -> str:
    parts = [f"{stats.files} files" if stats.files else "", human_bytes(ds.spec.size_bytes or 0)]
    sent = f"sent {human_bytes(stats.bytes_sent)} in {stats.parts_sent} parts"
    if stats.bytes_copied_on_host:
        sent = f"copied {human_bytes(stats.bytes_copied_on_host)} from disk by the control plane on this machine"
        if stats.bytes_sent:
            sent += f", sent {human_bytes(stats.bytes_sent)} in {stats.parts_sent} parts"
    if stats.bytes_already_stored:
        sent += f"; {stats.files_already_stored} files ({human_bytes(stats.bytes_already_stored)}) were stored already"
    if stats.bytes_resumed:
        sent += f"; {human_bytes(stats.bytes_resumed)} had been sent before the interruption"
    detail = ", ".join(p for p in parts if p)
    return f"datastore {ds.name} version {ds.spec.version} is ready: {detail} ({sent}; {stats.seconds:.1f}s)"


def _report(ds: schemas.Datastore, stats: UploadStats) -> dict[str, object]:
    if output.wants_json():
        return {"datastore": ds.wire(), "upload": asdict(stats)}
    click.echo(_summary(ds, stats))
    return {}


@click.group("datastore")
def datastore() -> None:
    """Upload, list and delete versioned datasets (datastores)."""


@datastore.command("create")
@click.argument("source")
@click.option("--name", default=None, help="Datastore name (default: from the source's last path component).")
@click.option("--compression", is_flag=True, help="Pack a directory into one gzip tar for the upload.")
@cluster_option
@output.output_option
def create(source: str, name: str | None, compression: bool) -> None:
    """Upload SOURCE (a directory, a file, an http(s) URL or s3://bucket/prefix/) as a new version."""
    from grid_ops.sdk.datastore import Datastore

    client = get_client()
    ds = Datastore(name=name, source=source, compression=compression, cluster_id=chosen_cluster(), client=client)
    progress = CliProgress(ds.name)
    try:
        ds.upload(progress=progress)
    except KeyboardInterrupt:
        _interrupted(progress)
        raise
    assert ds.last_upload is not None and ds.id is not None
    result = _report(client.get_datastore(ds.id, cluster_id=ds.cluster_id), ds.last_upload)
    if result:
        output.print_json(result)


@datastore.command("list")
@cluster_option
@output.output_option
def list_command() -> None:
    """List your datastores, one row per version."""
    from grid_ops.sdk.datastore import datastore_status

    found = get_client().list_datastores(cluster_id=chosen_cluster())
    if output.wants_json():
        output.print_json(found)
        return
    rows = [
        [
            d.name,
            d.spec.version,
            datastore_status(d.status.phase),
            human_bytes(d.spec.size_bytes or 0),
            d.spec.file_count,
            output.timestamp(d.created_at),
            d.spec.cluster_id,
        ]
        for d in found
    ]
    output.print_table(
        ("NAME", "VERSION", "STATUS", "SIZE", "FILES", "CREATED", "CLUSTER"), rows, empty="no datastores"
    )


@datastore.command("delete")
@click.option("--name", required=True, help="Datastore name.")
@click.option("--version", "version", required=True, type=click.IntRange(min=1), help="Version to delete.")
@cluster_option
@output.output_option
def delete(name: str, version: int) -> None:
    """Delete one version of a datastore (and any saved progress of its upload)."""
    from grid_ops.upload.uploader import DatastoreUploader

    client = get_client()
    found = client.get_datastore(f"{name}:{version}", cluster_id=chosen_cluster())
    client.delete_datastore(found.id, cluster_id=found.spec.cluster_id)
    DatastoreUploader(client).forget(found.id)
    if output.wants_json():
        output.print_json({"name": name, "version": version, "deleted": True})
    else:
        click.echo(f"deleted version {version} of datastore {name}")


@datastore.command("resume")
@click.option("--name", default=None, help="Only the interrupted upload of this datastore.")
@output.output_option
def resume(name: str | None) -> None:
    """Finish interrupted uploads, sending only the parts that are missing."""
    from grid_ops.upload.uploader import DatastoreUploader

    client = get_client()
    pending = [s for s in DatastoreUploader(client).pending() if name is None or s.name == name]
    if not pending:
        raise NotFoundError(
            f"no interrupted upload{f' of datastore {name!r}' if name else ''} to resume "
            f"(for {client.url}); start one with 'grid-ops datastore create SOURCE'"
        )
    results: list[UploadResult] = []
    for state in pending:
        progress = CliProgress(state.name)
        if not output.wants_json():
            click.echo(f"resuming the upload of {state.describe()}")
        try:
            results.append(DatastoreUploader(client, progress=progress).resume(state))
        except KeyboardInterrupt:
            _interrupted(progress)
            raise
    if output.wants_json():
        output.print_json([{"datastore": r.datastore.wire(), "upload": asdict(r.stats)} for r in results])
    else:
        for r in results:
            click.echo(_summary(r.datastore, r.stats))
