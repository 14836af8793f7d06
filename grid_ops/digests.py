"""Content digests: the BLAKE3 hash (64 hex digits) that datastore content is stored, deduplicated and
checked by, on the client, the control plane and its storage.

BLAKE3 rather than SHA-256 because hashing is on the path of every byte uploaded: it is a cryptographic
hash (collision resistant, so content named by it is that content) that runs 2.5 times as fast as SHA-256
with SHA-NI on one core, and uses the CPU's vector units (figures in docs/performance.md).
"""

from __future__ import annotations

import hashlib
import mmap
import re
from pathlib import Path

from blake3 import blake3

HEX = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


def new() -> blake3:
    """A fresh hasher: ``update(bytes)``, then ``hexdigest()``."""
    return blake3()


def of_bytes(data: bytes | bytearray | memoryview | mmap.mmap) -> str:
    """The digest of ``data``."""
    return blake3(data).hexdigest()


def names_file(digest: str, path: str | Path) -> bool:
    """Whether ``digest`` names the content of a file: its BLAKE3, or its SHA-256 for content named before
    grid-ops used BLAKE3 (such names stay valid)."""
    if of_file(path) == digest:
        return True
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest() == digest


def of_file(path: str | Path) -> str:
    """The digest of a file's content, read in chunks into one buffer. Not through a memory map: a file
    another process truncates meanwhile would kill this one with SIGBUS."""
    hasher = blake3()
    view = memoryview(bytearray(_CHUNK))
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            hasher.update(view[:n])
    return hasher.hexdigest()
