"""How a git source is written: ``URL[#ref=REF]``, where URL is remote (``https://``, ``ssh://``,
``git://``, ``git@host:repo``) or local (``file://`` or a path). Shared by the SDK, which makes local
paths absolute, and the control plane, which resolves the ref (standard library only)."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?!//)\S+$")


def split_ref(source: str) -> tuple[str, str | None]:
    """``URL#ref=REF`` -> (URL, REF); (URL, None) without a ref. ValueError for any other ``#`` part."""
    url, sep, fragment = source.partition("#")
    if not sep:
        return url, None
    key, eq, ref = fragment.partition("=")
    if key != "ref" or not eq or not ref:
        raise ValueError(f"the part after '#' must be ref=<branch, tag or commit sha>, got {fragment!r}")
    return url, ref


def local_path(url: str) -> str | None:
    """The folder a ``file://`` URL or a plain path names; None for a remote URL."""
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ValueError("a file:// URL names a path on this machine, not on a host")
        return unquote(parts.path)
    if "://" in url or _SCP_LIKE.match(url):
        return None
    return url
