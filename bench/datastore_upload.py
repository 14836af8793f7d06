"""Datastore uploads: about 1 GiB in about 1,000 files of mixed sizes, generated under /tmp.

(a) to S3 (a real ``moto_server`` on 127.0.0.1): our uploader against boto3's own ``upload_file`` (default
    transfer settings, one call per file, the same files), alternating, several rounds;
(b) to the local storage backend against a plain file copy of the same files into a folder on the same disk
    (``shutil.copyfile`` per file); also the floor of any content-addressed store, each file copied and hashed
    as the control plane does it (``BlobCopier``) on 2 threads with nothing else; the three in ABBA order over
    an even number of rounds, each side starting only once the one before has finished its deletions;
(c) a second version with 1% of the files changed: the bytes sent, against the first upload's;
(d) an upload killed (SIGKILL) about half way and resumed with ``grid-ops datastore resume``: every byte the
    client put on the wire, counted by a TCP relay in front of the control plane and of S3.

Each first upload is made by a fresh user, so that nothing is already stored (content is deduplicated per
user); users are made before the timing starts. Prints medians and ratios (and for (b) the best rounds);
deletes its data.

    .venvs/core/bin/python bench/datastore_upload.py [--rounds 4] [--gib 1.0] [--files 1000] [--only abcd]
    .venvs/core/bin/python bench/datastore_upload.py --only b --rounds 10   # (b) alone, ~1.5 min
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import median

from grid_ops.client import GridClient
from grid_ops.server.storage.blob_copy import BlobCopier
from grid_ops.server.storage.packs import PackWriter
from grid_ops.upload.uploader import DatastoreUploader, UploadOptions
from tests.core.controlplane import ControlPlane, add_user, start_control_plane
from tests.core.s3server import CREDENTIALS, S3Server, start_moto

MIB = 1024 * 1024
BUCKET = "bench"
GRID_OPS = Path(sys.executable).parent / "grid-ops"
CONFIG = """
clusters:
  - id: local
    executor: local
    capacity: {{cpu: 2, gpu: 0, memory_mb: 4096}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.04}}
  - id: s3
    executor: local
    capacity: {{cpu: 2, gpu: 0, memory_mb: 4096}}
    instance_types:
      - {{name: cpu-1, cpu: 1, gpu: 0, memory_mb: 1024, hourly_cost: 0.04}}
    storage: {{backend: s3, bucket: {bucket}, prefix: grid, endpoint_url: "{url}", region: us-east-1}}
"""


# ---------------------------------------------------------------------- data


def sizes(total: int, count: int, rng: random.Random) -> list[int]:
    """Mixed sizes adding up to about ``total``: mostly small files, some of a few MiB, a few large ones."""
    small = [rng.randint(1024, 256 * 1024) for _ in range(count * 90 // 100)]
    large_count = max(1, count // 100)
    medium = [rng.randint(1 * MIB, 8 * MIB) for _ in range(count - len(small) - large_count)]
    rest = max(large_count * MIB, total - sum(small) - sum(medium))
    large = [rest // large_count] * large_count
    out = small + medium + large
    rng.shuffle(out)
    return out


def make_data(root: Path, total: int, count: int) -> list[Path]:
    rng = random.Random(7)
    files = []
    for i, size in enumerate(sizes(total, count, rng)):
        path = root / f"d{i % 10}" / f"file-{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
        files.append(path)
    return files


# ---------------------------------------------------------------------- a TCP relay that counts bytes


class CountingRelay:
    """Listens on 127.0.0.1 and relays every connection to ``target``, counting the bytes sent to it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sent = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        buf = bytearray(1 << 20)
        try:
            while n := src.recv_into(buf):
                dst.sendall(memoryview(buf)[:n])
                if count:
                    with self._lock:
                        self.sent += n
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()


# ---------------------------------------------------------------------- the contenders


def fresh_client(cp: ControlPlane, cluster: str, tag: str, url: str | None = None) -> GridClient:
    user, key = add_user(cp.home, f"bench-{tag}-{os.getpid()}-{time.monotonic_ns() % 10**9}")
    return GridClient(url or cp.url, user, key, cluster_id=cluster)


def ours(client: GridClient, home: Path, name: str, src: Path) -> tuple[float, Any]:
    uploader = DatastoreUploader(client, home=home, options=UploadOptions())
    t0 = time.perf_counter()
    result = uploader.upload(name, str(src))
    return time.perf_counter() - t0, result.stats


def boto3_upload_file(moto: S3Server, files: list[Path], root: Path, prefix: str) -> float:
    s3 = moto.client()
    t0 = time.perf_counter()
    for path in files:
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(root).as_posix()}")
    return time.perf_counter() - t0


def clear_prefix(moto: S3Server, prefix: str) -> None:
    s3 = moto.client()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def plain_copy(files: list[Path], root: Path, dest: Path) -> float:
    t0 = time.perf_counter()
    for path in files:
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return time.perf_counter() - t0


def copy_and_hash(files: list[Path], dest: Path, threads: int = 2) -> float:
    """The floor of our content-addressed store: each file copied and hashed as the control plane does it
    (``BlobCopier``) on ``threads`` threads, a small one appended to one pack, a large one kept under its hash
    in the store's layout (256 folders by the hash's first two digits); no HTTP, database or checks."""
    dest.mkdir(parents=True)
    copier = BlobCopier(dest)
    pack = PackWriter(str(dest), "floor", copier)

    def one(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            copy, size, sha = copier.copy(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)
        if copy.data is not None:
            pack.append(sha, copy.data)
            copy.discard()
        else:
            copy.keep(dest / sha[:2] / sha, size)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, sorted(files, key=lambda p: -p.stat().st_size)))
    pack.publish()
    pack.close()
    return time.perf_counter() - t0


def delete_version(client: GridClient, name: str, version: int) -> None:
    client.delete_datastore(f"{name}:{version}")


def wait_deleted(cp: ControlPlane, client: GridClient, timeout: float = 60.0) -> None:
    """Wait until the control plane has removed the files of the user's deleted version from the local
    cluster's storage (it does so after answering), so that the next side does not share the machine with
    that work."""
    store = cp.home / "server" / "datastores" / "local"
    assert store.is_dir(), f"no local storage at {store}"
    deadline = time.monotonic() + timeout
    for folder in (store / "blobs" / (client.user_id or ""), store / "packs" / (client.user_id or "")):
        while any(p.is_file() for p in folder.rglob("*")):  # nothing left, or no folder at all
            if time.monotonic() > deadline:
                raise TimeoutError(f"{folder} still holds files {timeout} s after the deletion")
            time.sleep(0.05)


# ---------------------------------------------------------------------- the scenarios


def throughput(total: int, seconds: float) -> str:
    return f"{seconds:.2f} s ({total / seconds / MIB:.0f} MiB/s)"


def bench_s3(cp: ControlPlane, moto: S3Server, files: list[Path], src: Path, total: int, rounds: int, work: Path):
    times: dict[str, list[float]] = {"ours": [], "boto3": []}
    for r in range(rounds):
        prefix = f"baseline-{r}"
        times["boto3"].append(boto3_upload_file(moto, files, src, prefix))
        clear_prefix(moto, prefix)
        client = fresh_client(cp, "s3", f"s3-{r}")
        seconds, stats = ours(client, work / f"home-s3-{r}", "bench", src)
        assert stats.bytes_sent == total, stats
        times["ours"].append(seconds)
        print(f"  round {r + 1}: boto3 {times['boto3'][-1]:.2f} s, ours {seconds:.2f} s", flush=True)
        if r < rounds - 1:
            delete_version(client, "bench", 1)
    o, b = median(times["ours"]), median(times["boto3"])
    print(
        f"(a) S3: ours {throughput(total, o)}, boto3 upload_file {throughput(total, b)}: ratio {b / o:.3f} "
        "(target >= 0.9)",
        flush=True,
    )
    return client  # its version 1 stays, for (c)


def bench_local(cp: ControlPlane, files: list[Path], src: Path, total: int, rounds: int, work: Path) -> None:
    times: dict[str, list[float]] = {"ours": [], "copy": [], "floor": []}
    loads = []

    def copy(r: int, client: GridClient) -> None:
        dest = work / f"copy-{r}"
        times["copy"].append(plain_copy(files, src, dest))
        shutil.rmtree(dest)

    def floor(r: int, client: GridClient) -> None:
        dest = work / f"floor-{r}"
        times["floor"].append(copy_and_hash(files, dest))
        shutil.rmtree(dest)

    def upload(r: int, client: GridClient) -> None:
        seconds, stats = ours(client, work / f"home-local-{r}", "bench", src)
        assert stats.bytes_sent + stats.bytes_copied_on_host == total, stats
        times["ours"].append(seconds)
        delete_version(client, "bench", 1)  # like the other sides: nothing of it left for the next one
        wait_deleted(cp, client)

    warm = fresh_client(cp, "local", "local-warm-up")  # a control plane that has served before, as in use
    seconds, _ = ours(warm, work / "home-local-warm-up", "bench", src)
    delete_version(warm, "bench", 1)
    wait_deleted(cp, warm)
    print(f"  warm-up upload (not counted): {seconds:.2f} s", flush=True)
    rounds += rounds % 2  # ABBA: each side goes first in as many rounds as the others (first is often slower)
    # every user made before timing starts: making one runs a process, which slows whatever comes next
    clients = [fresh_client(cp, "local", f"local-{r}") for r in range(rounds)]
    for r, client in enumerate(clients):
        sides = (copy, floor, upload)
        for side in sides if r % 2 == 0 else sides[::-1]:  # ABBA: no side always goes first
            side(r, client)
        loads.append(os.getloadavg()[0])
        print(
            f"  round {r + 1}: copy {times['copy'][-1]:.2f} s, ours {times['ours'][-1]:.2f} s, "
            f"copy and hash {times['floor'][-1]:.2f} s, "
            f"ratio {times['copy'][-1] / times['ours'][-1]:.2f}, load {loads[-1]:.1f}",
            flush=True,
        )
    o, c = median(times["ours"]), median(times["copy"])
    print(
        f"(b) local: ours {throughput(total, o)}, plain copy {throughput(total, c)}: ratio {c / o:.3f} "
        f"(target >= 0.8); median of the per-round ratios "
        f"{median([a / b for a, b in zip(times['copy'], times['ours'], strict=True)]):.3f}; load average "
        f"{min(loads):.1f} to {max(loads):.1f}",
        flush=True,
    )
    f = median(times["floor"])
    print(
        f"    the floor, copying and hashing each file as the server does, 2 threads: {throughput(total, f)}: "
        f"ratio {c / f:.3f} against the plain copy",
        flush=True,
    )
    best = {side: min(values) for side, values in times.items()}
    print(
        f"    best of {rounds} rounds (what each costs when nothing disturbs it): ours {best['ours']:.2f} s, plain "
        f"copy {best['copy']:.2f} s, floor {best['floor']:.2f} s: ratio {best['copy'] / best['ours']:.3f}, "
        f"floor {best['copy'] / best['floor']:.3f}",
        flush=True,
    )


def bench_second_version(client: GridClient, files: list[Path], src: Path, total: int, work: Path) -> None:
    rng = random.Random(11)
    changed = rng.sample(files, max(1, len(files) // 100))
    for path in changed:
        data = bytearray(path.read_bytes())
        data[: min(16, len(data))] = rng.randbytes(min(16, len(data)))
        path.write_bytes(bytes(data))
    changed_bytes = sum(p.stat().st_size for p in changed)
    _, stats = ours(client, work / "home-v2", "bench", src)
    print(
        f"(c) second version, {len(changed)} of {len(files)} files changed ({changed_bytes / MIB:.1f} MiB): "
        f"{stats.bytes_sent / MIB:.1f} MiB sent = {stats.bytes_sent / total:.2%} of the first upload "
        f"(target <= 2%), {stats.files_already_stored} files already stored",
        flush=True,
    )


def bench_resume(moto: S3Server, src: Path, total: int, work: Path) -> None:
    s3_relay = CountingRelay(("127.0.0.1", int(moto.url.rsplit(":", 1)[1])))
    # a second control plane whose S3 endpoint is the relay, reached through a relay too: every byte counts
    home = work / "resume-cp"
    with_relay = start_control_plane(home, CONFIG.format(bucket=BUCKET, url=f"http://127.0.0.1:{s3_relay.port}"))
    cp_relay = CountingRelay(("127.0.0.1", int(with_relay.url.rsplit(":", 1)[1])))
    try:
        user, key = add_user(with_relay.home, "bench-resume")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
        env.update(
            GRID_URL=f"http://127.0.0.1:{cp_relay.port}",
            GRID_USER_ID=user,
            GRID_API_KEY=key,
            GRID_OPS_HOME=str(work / "home-resume"),
            GRID_CLUSTER_ID="s3",
        )
        proc = subprocess.Popen(
            [str(GRID_OPS), "datastore", "create", str(src), "--name", "resumed"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while s3_relay.sent < total // 2:
            if proc.poll() is not None:
                raise RuntimeError("the upload ended before half way")
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = s3_relay.sent + cp_relay.sent
        out = subprocess.run(
            [str(GRID_OPS), "-o", "json", "datastore", "resume"], env=env, capture_output=True, text=True, timeout=600
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr)
        sent = s3_relay.sent + cp_relay.sent
        print(
            f"(d) killed at {at_kill / total:.0%} of the data, resumed: {sent / MIB:.0f} MiB sent in all "
            f"(parts, API calls and headers) = {sent / total:.3f} x the data (target <= 1.1)",
            flush=True,
        )
    finally:
        with_relay.stop()
        s3_relay.close()
        cp_relay.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=4, help="(b) rounds up to an even number")
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--only", default="abcd", help="which of the scenarios a, b, c (needs a), d to run")
    args = ap.parse_args()
    for key, value in CREDENTIALS.items():
        os.environ.setdefault(key, value)
    work = Path(tempfile.mkdtemp(prefix="grid-bench-ds-", dir="/tmp"))
    moto = cp = None
    try:
        src = work / "data"
        t0 = time.perf_counter()
        files = make_data(src, int(args.gib * 1024 * MIB), args.files)
        total = sum(p.stat().st_size for p in files)
        print(f"data: {len(files)} files, {total / MIB:.0f} MiB (made in {time.perf_counter() - t0:.1f} s)", flush=True)
        moto = start_moto(work / "moto.log")
        moto.client().create_bucket(Bucket=BUCKET)
        cp = start_control_plane(work / "cp", CONFIG.format(bucket=BUCKET, url=moto.url))
        if "a" in args.only:
            client = bench_s3(cp, moto, files, src, total, args.rounds, work)
            if "c" in args.only:
                bench_second_version(client, files, src, total, work)
        if "b" in args.only:
            bench_local(cp, files, src, total, args.rounds, work)
        if "d" in args.only:
            bench_resume(moto, src, total, work)
    finally:
        if cp is not None:
            cp.stop()
        if moto is not None:
            moto.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
