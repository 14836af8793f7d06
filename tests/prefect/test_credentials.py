"""The GridCredentials block: save/load through the Prefect server, clients, clear errors, registration."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from grid_ops.errors import ValidationError
from prefect_tasks import GridCredentials
from tests.core.controlplane import ControlPlane


def test_block_round_trips_through_save_and_load(creds: GridCredentials, cp: ControlPlane) -> None:
    creds.save("grid-test-roundtrip", overwrite=True)
    loaded = GridCredentials.load("grid-test-roundtrip")
    assert (loaded.url, loaded.user_id, loaded.cluster_id) == (cp.url, cp.user_id, "local")
    assert isinstance(loaded.api_key, SecretStr)
    assert loaded.api_key.get_secret_value() == cp.api_key
    assert cp.api_key not in repr(loaded)
    client = loaded.get_client()
    assert client.get_user().id == cp.user_id
    assert client.cluster_id == "local"


def test_block_without_url_uses_the_local_control_plane(cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    # the test control plane was started as the embedded one of its home: a client of that home reuses it
    monkeypatch.setenv("GRID_OPS_HOME", str(cp.home))
    client = GridCredentials().get_client()
    assert client.url == cp.url
    assert client.get_user().id == cp.user_id


def test_block_with_half_a_configuration_says_what_is_missing() -> None:
    with pytest.raises(ValidationError, match="need user_id and api_key"):
        GridCredentials(url="http://127.0.0.1:1").get_client()
    with pytest.raises(ValidationError, match="no url"):
        GridCredentials(api_key="secret").get_client()
    with pytest.raises(ValidationError, match="not a control plane URL"):
        GridCredentials(url="grid.example.com", user_id="u", api_key="k").get_client()


def test_prefect_block_register_cli_registers_the_block_type(tmp_path: Path) -> None:
    with get_client(sync_client=True) as client:
        with contextlib.suppress(ObjectNotFound):  # registered by an earlier save: start from none
            client.delete_block_type(client.read_block_type_by_slug("grid-credentials").id)
        with pytest.raises(ObjectNotFound):
            client.read_block_type_by_slug("grid-credentials")
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    prefect = Path(sys.executable).with_name("prefect")
    out = subprocess.run(
        [str(prefect), "block", "register", "-m", "prefect_tasks"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Grid Credentials" in out.stdout
    with get_client(sync_client=True) as client:
        block_type = client.read_block_type_by_slug("grid-credentials")
        schema = client.get_most_recent_block_schema_for_block_type(block_type.id)
    assert block_type.name == "Grid Credentials"
    assert "local control plane" in (block_type.description or "")
    assert schema is not None
    properties = schema.fields["properties"]
    assert set(properties) >= {"url", "user_id", "api_key", "cluster_id"}
    assert all(properties[name].get("description") for name in ("url", "user_id", "api_key", "cluster_id"))
    assert schema.fields["secret_fields"] == ["api_key"]  # a SecretStr: Prefect masks it in the UI and logs


def test_prefect_finds_the_collection_through_its_entry_point() -> None:
    from prefect.plugins import load_prefect_collections

    assert "prefect_tasks" in load_prefect_collections()
