"""Fetching the remote sources of datastores onto the control plane's disk: an ``http(s)`` URL (archives
unpacked) or everything under an ``s3://bucket/prefix/``."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import requests

from grid_ops.server.datastore_config import DatastoreSettings
from grid_ops.server.unpack import archive_kind, unpack
from grid_ops.server.url_policy import UrlRefused, check_url

_CHUNK = 4 * 1024 * 1024


class SourceError(RuntimeError):
    """A remote source could not be fetched; the message says which and why."""


def _reason(exc: requests.RequestException) -> str:
    cause: object = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", cause)
    return str(cause).rsplit(": ", 1)[-1] if "Failed to establish" in str(cause) else f"{type(exc).__name__}: {cause}"


MAX_REDIRECTS = 5


def _peer(answer: requests.Response) -> str | None:
    """The address the answer came from, where urllib3 tells."""
    connection = getattr(answer.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    try:
        return str(sock.getpeername()[0]) if sock is not None else None
    except OSError:
        return None


def _get(url: str, settings: DatastoreSettings) -> requests.Response:
    """GET ``url`` following at most ``MAX_REDIRECTS`` redirects, each one (and the address each answer
    came from) checked against the server's ``http_allow`` rules before its body is read."""
    for _ in range(MAX_REDIRECTS + 1):
        check_url(url, settings)
        answer = requests.get(url, stream=True, timeout=(10, 120), allow_redirects=False)
        peer = _peer(answer)
        if peer is not None:
            try:
                check_url(url, settings, connected=peer)
            except UrlRefused:
                answer.close()
                raise
        if answer.is_redirect and answer.headers.get("Location"):
            answer.close()
            url = urljoin(url, answer.headers["Location"])
            continue
        return answer
    raise SourceError(f"could not download {url}: more than {MAX_REDIRECTS} redirects")


def _too_large(url: str, what: str, limit: int) -> str:
    return (
        f"could not download {url}: it {what}, over this control plane's limit of {limit} bytes per download "
        "(datastores.download_max_bytes in its server config); nothing was stored"
    )


def fetch_http(url: str, work: Path, tree: Path, settings: DatastoreSettings | None = None) -> str:
    """Download ``url`` into ``tree``: a zip or tar archive is unpacked (within ``settings.unpack``), any
    other file kept by its name.

    Returns what was done, for the version's message."""
    settings = settings or DatastoreSettings()
    name = unquote(PurePosixPath(urlsplit(url).path).name) or "download"
    download = work / "download"
    try:
        with _get(url, settings) as answer:
            if answer.status_code >= 400:
                raise SourceError(f"could not download {url}: HTTP {answer.status_code} {answer.reason}")
            limit = settings.download_max_bytes
            announced = answer.headers.get("Content-Length", "")
            if announced.isdigit() and int(announced) > limit:
                raise SourceError(_too_large(url, f"is {int(announced)} bytes", limit))
            received = 0
            with download.open("wb") as out:
                for chunk in answer.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise SourceError(_too_large(url, f"sent more than {limit} bytes", limit))
                    out.write(chunk)
    except UrlRefused as exc:
        raise SourceError(f"could not download {url}: {exc}") from exc
    except requests.RequestException as exc:
        raise SourceError(
            f"could not download {url}: {_reason(exc)}; check that the URL is reachable from the control plane"
        ) from exc
    if archive_kind(download) is not None and name.endswith((".zip", ".tar.gz", ".tgz", ".tar", ".tar.bz2", ".tar.xz")):
        unpack(download, tree, settings.unpack, name)
        return f"downloaded and unpacked {name}"
    tree.mkdir(parents=True, exist_ok=True)
    download.replace(tree / name)
    return f"downloaded {name}"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise SourceError(f"{url!r} is not an s3://bucket/prefix/ URL")
    prefix = parts.path.lstrip("/")
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return parts.netloc, prefix


def fetch_s3(url: str, tree: Path, client: Any) -> str:
    """Copy every object under the ``s3://`` prefix into ``tree``, keyed by its path below the prefix."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = parse_s3_url(url)
    count = 0
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                rel = key[len(prefix) :]
                if not rel or rel.endswith("/"):
                    continue
                parts = PurePosixPath(rel).parts
                if ".." in parts or rel.startswith("/"):
                    raise SourceError(f"object {key!r} under {url} would be written outside the datastore")
                target = tree.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(target))
                count += 1
    except (BotoCoreError, ClientError) as exc:
        raise SourceError(f"could not copy {url}: {exc}") from exc
    if count == 0:
        raise SourceError(f"there are no objects under {url}; check the bucket and prefix")
    return f"copied {count} objects from {url}"
