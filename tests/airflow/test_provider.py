"""Packaging and the hook: Airflow finds the provider through its entry point, the connection form is
declared the Airflow 3 way, and ``GridHook`` talks to a real control plane (or the embedded one)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from airflow.sdk import Connection

from airflow_provider.hooks.grid import GridHook
from grid_ops.embedded import local_server_status, stop_local_server
from tests.airflow.conftest import connection_json
from tests.core.controlplane import ControlPlane


def _provider_info() -> dict[str, object]:
    (found,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_provider")]
    info = found.load()()
    assert isinstance(info, dict)
    return info


def test_provider_info_is_found_through_the_entry_point_and_matches_airflows_schema() -> None:
    from airflow.providers_manager import _create_provider_info_schema_validator

    info = _provider_info()
    assert info["package-name"] == "grid-ops"
    _create_provider_info_schema_validator().validate(info)  # raises on a malformed entry
    (grid,) = info["connection-types"]
    assert grid["connection-type"] == "grid" and "cluster_id" in grid["conn-fields"]
    assert grid["ui-field-behaviour"]["relabeling"]["password"] == "API key"


def test_every_class_the_provider_info_lists_imports() -> None:
    info = _provider_info()
    modules = [
        m for key in ("hooks", "operators", "sensors", "triggers") for e in info[key] for m in e["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    for path in [*info["extra-links"], *(c["hook-class-name"] for c in info["connection-types"])]:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)
    names = {n for m in modules for n in dir(importlib.import_module(m))}
    assert {"GridRunOperator", "DatastoreUploadOperator", "RunSensor", "ExperimentSensor", "GridRunTrigger"} <= names


def test_airflow_registers_the_grid_connection_type_with_its_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["grid-ops"].data["package-name"] == "grid-ops"
    hook = manager.hooks["grid"]
    assert hook is not None and hook.hook_class_name == "airflow_provider.hooks.grid.GridHook"
    behaviour = manager.field_behaviours["grid"]
    assert behaviour["relabeling"]["password"] == "API key" and "schema" in behaviour["hidden_fields"]
    assert "extra__grid__cluster_id" in manager.connection_form_widgets
    assert "airflow_provider.links.grid.GridRunLink" in manager.extra_links_class_names


def test_test_connection_authenticates_against_the_control_plane(grid_conn: ControlPlane) -> None:
    ok, message = GridHook().test_connection()
    assert ok, message
    assert grid_conn.user_id in message and grid_conn.url in message


def test_test_connection_reports_a_wrong_api_key(cp: ControlPlane, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GRID_BAD", connection_json(cp, password="not-the-key"))
    ok, message = GridHook("grid_bad", max_retries=0).test_connection()
    assert not ok
    assert cp.user_id in message and "grid-ops login" in message


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"host": "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080"),
        ({"host": "127.0.0.1", "port": 9000}, "http://127.0.0.1:9000"),
        ({"host": "grid.example.com", "schema": "https"}, "https://grid.example.com"),
        ({"host": "https://grid.example.com", "port": 8443}, "https://grid.example.com:8443"),
    ],
)
def test_the_connection_host_may_be_a_url_or_a_host_and_port(fields: dict[str, object], url: str) -> None:
    conn = Connection(conn_id="grid_default", conn_type="grid", login="u", password="k", **fields)  # type: ignore[arg-type]
    credentials, cluster = GridHook()._from_connection(conn)
    assert credentials.url == url and credentials.user_id == "u" and cluster is None


def test_a_connection_without_api_key_or_host_is_an_error_naming_the_field() -> None:
    hook = GridHook("grid_x")
    with pytest.raises(ValueError, match="API key as password"):
        hook._from_connection(Connection(conn_id="grid_x", conn_type="grid", host="http://h", login="u"))
    with pytest.raises(ValueError, match="has no host"):
        hook._from_connection(Connection(conn_id="grid_x", conn_type="grid", login="u", password="k"))


def test_a_missing_named_connection_is_an_error_not_the_embedded_fallback() -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    with pytest.raises(AirflowNotFoundException):
        GridHook("grid_nowhere").client  # noqa: B018


def test_without_grid_default_the_hook_uses_the_embedded_control_plane_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "embedded-home"
    monkeypatch.setenv("GRID_OPS_HOME", str(home))
    monkeypatch.delenv("AIRFLOW_CONN_GRID_DEFAULT", raising=False)
    try:
        hook = GridHook()
        ok, message = hook.test_connection()
        assert ok, message
        status = local_server_status(home)
        assert status is not None and status["url"] == hook.url
        logged = capsys.readouterr().out  # Airflow's task loggers write to stdout
        assert "No Airflow connection 'grid_default'" in logged and "embedded local control plane" in logged
    finally:
        stop_local_server(home)
