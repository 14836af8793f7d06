"""Sources for test runs: gzip tars of in-memory files, and tiny pure-Python wheels written by hand (for
requirements files that install without a package index)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import zipfile


def wheel(name: str, version: str, code: str) -> tuple[str, bytes]:
    """A pure-Python wheel of one module, written by hand (so that no build backend is needed)."""
    dist = f"{name}-{version}"
    files = {
        f"{name}.py": code,
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    buf = io.BytesIO()
    record = []
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            data = text.encode()
            z.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        z.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return f"wheels/{dist}-py3-none-any.whl", buf.getvalue()


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A gzip tar of ``members``, byte-for-byte the same for the same members."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()
