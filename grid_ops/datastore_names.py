"""Datastore names, references (``name``, ``name:version``) and file paths inside a datastore.

Pure functions over the standard library so that the SDK, the CLI and the control plane apply the same
rules. Names follow the run names' rule (docs/concepts.md, "Names"): lowercase letters, digits and inner
hyphens, at most 63 characters.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from grid_ops.errors import ValidationError
from grid_ops.names import MAX_RUN_NAME_LENGTH, validate_resource_name

MAX_NAME_LENGTH = MAX_RUN_NAME_LENGTH


def validate_datastore_name(name: object) -> str:
    """Return ``name`` if it is a valid datastore name, else raise ``ValidationError`` stating the rule."""
    return validate_resource_name(name, "datastore", "churn-2024")


def name_from_source(source: str) -> str:
    """The default name of a datastore uploaded from ``source``: its last path component without
    extensions, lowercased, other characters turned into hyphens (``./data/Churn_Q1.csv`` -> ``churn-q1``)."""
    parts = urlsplit(source)
    if parts.scheme in ("http", "https", "s3"):
        path = parts.path.rstrip("/")
        last = PurePosixPath(path).name or parts.netloc
    else:
        from pathlib import Path

        last = Path(source).expanduser().absolute().name
    base = last.split(".")[0] if not last.startswith(".") else last.lstrip(".")
    name = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:MAX_NAME_LENGTH].strip("-")
    if not name:
        raise ValidationError(f"cannot derive a datastore name from the source {source!r}: pass name= explicitly")
    return name


def parse_datastore_ref(ref: str) -> tuple[str, int | None]:
    """``"name"`` -> ``(name, None)``; ``"name:3"`` -> ``(name, 3)``; anything else is a ``ValidationError``."""
    name, sep, version = ref.partition(":")
    validate_datastore_name(name)
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise ValidationError(f"invalid datastore version in {ref!r}: use name:N with N = 1, 2, ...")
    return name, int(version)


def validate_file_path(path: str) -> str:
    """A file's path inside a datastore: relative, ``/``-separated, without ``.``/``..`` or empty parts."""
    if not path or len(path) > 4096:
        raise ValidationError(f"invalid file path {path!r} in a datastore: it must have 1 to 4096 characters")
    if path.startswith("/") or "\\" in path or "\x00" in path:
        raise ValidationError(f"invalid file path {path!r} in a datastore: use a relative path with '/' separators")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValidationError(
            f"invalid file path {path!r} in a datastore: it must not contain empty, '.' or '..' parts"
        )
    return path
