"""Fixtures: one real control plane for the session (and fresh ones for tests that kill theirs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from grid_ops.client import set_client
from tests.core.controlplane import ControlPlane, start_control_plane
from tests.core.s3server import S3Server, start_moto


@pytest.fixture(scope="session")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = start_control_plane(tmp_path_factory.mktemp("grid-home"))
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real ``moto_server`` on 127.0.0.1 (S3 for the datastore tests)."""
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture()
def fresh_cp(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = start_control_plane(tmp_path / "home")
    yield plane
    plane.stop()


@pytest.fixture()
def client_env(cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> Iterator[ControlPlane]:
    """Point the SDK, CLI and clients of this process at the session's control plane (and drop the
    process-wide client an earlier test may have left pointing elsewhere)."""
    for key, value in cp.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GRID_CLUSTER_ID", "local")
    set_client(None)
    yield cp
    set_client(None)
