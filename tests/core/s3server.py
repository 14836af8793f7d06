"""A real S3 endpoint for the tests: ``moto_server`` on 127.0.0.1 and a free port, as a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class S3Server:
    """A running ``moto_server`` and how to reach it."""

    url: str
    proc: subprocess.Popen[bytes]

    def client(self) -> Any:
        """A boto3 S3 client of this endpoint."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_moto(log: Path, timeout: float = 30) -> S3Server:
    """Start ``moto_server -H 127.0.0.1 -p PORT`` and wait until it answers."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    env = {**os.environ, **CREDENTIALS}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    probe = requests.Session()
    probe.trust_env = False  # never a proxy for 127.0.0.1
    while True:
        try:
            probe.get(url, timeout=1)
            return S3Server(url=url, proc=proc)
        except requests.RequestException:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start:\n" + log.read_text()[-2000:]) from None
            time.sleep(0.1)
