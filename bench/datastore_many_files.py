"""Same-host uploads of many small files (an image dataset's shape) to the local backend: files per second
against a plain file copy of the same files, and whether the work grows with the files alone, not with
their square: a full upload, and the resume of one interrupted half way, at two sizes.

    python bench/datastore_many_files.py [--files 50000] [--rounds 2]

Each side is timed on the same files, in the same process, alternating which goes first; each first upload
is by a fresh user (nothing stored already). Figures are in docs/performance.md.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from common import median
from datastore_upload import CONFIG, delete_version, fresh_client, ours, plain_copy, wait_deleted

from grid_ops.client import GridClient
from grid_ops.upload.progress import Progress
from grid_ops.upload.uploader import DatastoreUploader, UploadOptions
from tests.core.controlplane import ControlPlane, start_control_plane


class _Interrupt(Progress):
    """Stops an upload (as Ctrl-C would) once ``after`` bytes of it were recorded."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.done = 0

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self.done >= self.after:
            raise KeyboardInterrupt


def make_files(root: Path, count: int) -> list[Path]:
    """``count`` files of 1 to 100 bytes, in 100 folders."""
    files = []
    for i in range(count):
        path = root / f"{i % 100:02d}" / f"img-{i:07d}.txt"
        if i < 100:
            path.parent.mkdir(parents=True)
        path.write_bytes(b"x" * (1 + i % 100))
        files.append(path)
    return files


def resume_half(client: GridClient, home: Path, src: Path, total: int) -> float:
    """Interrupt an upload once half its bytes are recorded, then time the call that resumes it."""
    try:
        DatastoreUploader(client, home=home, progress=_Interrupt(total // 2)).upload("many", str(src))
        raise AssertionError("the upload was not interrupted")
    except KeyboardInterrupt:
        pass
    t0 = time.perf_counter()
    result = DatastoreUploader(client, home=home, options=UploadOptions()).upload("many", str(src))
    seconds = time.perf_counter() - t0
    copied = result.stats.bytes_copied_on_host
    assert 0 < copied < total, f"the resume copied {copied} of {total} bytes: not the half left"
    return seconds


def bench(cp: ControlPlane, files: list[Path], src: Path, rounds: int, work: Path) -> None:
    n = len(files)
    total = sum(p.stat().st_size for p in files)
    times: dict[str, list[float]] = {"copy": [], "ours": [], "resume": []}
    for r in range(rounds):
        client = fresh_client(cp, "local", f"many-{r}")
        resumer = fresh_client(cp, "local", f"many-resume-{r}")

        def copy(r: int = r) -> None:
            dest = work / f"copy-{r}"
            times["copy"].append(plain_copy(files, src, dest))
            shutil.rmtree(dest)

        def upload(r: int = r, client: GridClient = client) -> None:
            seconds, stats = ours(client, work / f"home-{r}", "many", src)
            assert stats.files == n, stats
            times["ours"].append(seconds)
            delete_version(client, "many", 1)
            wait_deleted(cp, client, timeout=300)

        def resume(r: int = r, client: GridClient = resumer) -> None:
            times["resume"].append(resume_half(client, work / f"home-resume-{r}", src, total))
            delete_version(client, "many", 1)
            wait_deleted(cp, client, timeout=300)

        sides = [copy, upload, resume]
        for side in sides if r % 2 == 0 else sides[::-1]:
            side()
        print(
            f"  round {r + 1}: copy {times['copy'][-1]:.2f} s, ours {times['ours'][-1]:.2f} s, resume of the "
            f"second half {times['resume'][-1]:.2f} s",
            flush=True,
        )
    c, o, h = median(times["copy"]), median(times["ours"]), median(times["resume"])
    print(
        f"{n} files: plain copy {c:.2f} s ({n / c:.0f} files/s), ours {o:.2f} s ({n / o:.0f} files/s): ratio "
        f"{c / o:.3f}; resume of an upload interrupted half way {h:.2f} s = {h / o:.2f} of a whole upload",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--files",
        type=int,
        nargs="+",
        default=[10_000, 50_000],
        help="sizes to measure, each at least 5,000 (the resume is interrupted between batches of 1,000 files)",
    )
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grid-bench-many-", dir="/tmp"))
    cp: ControlPlane | None = None
    try:
        cp = start_control_plane(work / "cp", CONFIG.format(bucket="unused", url="http://127.0.0.1:9"))
        for count in args.files:
            src = work / f"data-{count}"
            t0 = time.perf_counter()
            files = make_files(src, count)
            print(f"data: {count} files (made in {time.perf_counter() - t0:.1f} s)", flush=True)
            bench(cp, files, src, args.rounds, work)
            shutil.rmtree(src)
    finally:
        if cp is not None:
            cp.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
