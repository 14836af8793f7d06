"""``GridHook``: the connection to a grid-ops control plane, for blocking calls (the SDK's client) and for
the triggerer's event loop (an ``httpx.AsyncClient``).

Connection type ``grid``: host = control-plane URL (``http(s)://host[:port]``; a bare host gets ``http://``
and the port field), login = user id, password = API key, extra ``cluster_id``. Without a ``grid_default``
connection the hook uses what the SDK would: ``GRID_URL``/``GRID_USER_ID``/``GRID_API_KEY``, else the
credentials file, else the embedded local control plane under ``$GRID_OPS_HOME`` (started if needed), and
logs which.
"""

from __future__ import annotations

import asyncio
import random
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_provider.states import RemoteState, parse_state
from grid_ops import schemas
from grid_ops.client import RETRY_STATUSES, GridClient
from grid_ops.credentials import Credentials, grid_ops_home, load_credentials, normalize_url
from grid_ops.embedded import ensure_local_server
from grid_ops.errors import ControlPlaneUnavailable, GridError, ValidationError, from_response

DEFAULT_CONN_ID = "grid_default"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _q(segment: str) -> str:
    return quote(segment, safe="")


class _StateClient(GridClient):
    """The SDK's client plus lenient reads of a run's or experiment's state (see ``airflow_provider.states``)."""

    def fetch_state(self, kind: str, name: str, cluster_id: str | None) -> RemoteState:
        """The state of the run or experiment ``name``, read without the strict wire enums."""
        collection = "runs" if kind == "run" else "experiments"
        answer = self._request("GET", self._core(cluster_id, collection, name))
        return parse_state(kind, answer.json())


class GridHook(BaseHook):
    """Talks to a grid-ops control plane through the Airflow connection ``grid_conn_id``.

    :param grid_conn_id: the ``grid`` connection (default ``grid_default``; when that one is not defined,
        the SDK's own configuration or the embedded local control plane).
    :param cluster_id: the cluster to use (default: the connection's extra ``cluster_id``, else the
        control plane's default cluster).
    :param max_retries: how often a transient API error (connection refused, 502/503/504, timeouts of
        idempotent requests) is retried, with exponential backoff from ``retry_backoff`` seconds.
    """

    conn_name_attr = "grid_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "grid"
    hook_name = "Grid"

    def __init__(
        self,
        grid_conn_id: str = DEFAULT_CONN_ID,
        cluster_id: str | None = None,
        max_retries: int = 4,
        retry_backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        super().__init__()
        self.grid_conn_id = grid_conn_id
        self._cluster_id = cluster_id
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.timeout = timeout
        self._async_credentials: tuple[Credentials, str | None] | None = None

    # ------------------------------------------------------------------ UI

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form (also declared in ``get_provider_info()`` for Airflow 3's UI)."""
        return {
            "hidden_fields": ["schema", "port"],
            "relabeling": {"host": "Control plane URL", "login": "User id", "password": "API key"},
            "placeholders": {"host": "http://127.0.0.1:8080", "login": "user id", "password": "API key"},
        }

    # ------------------------------------------------------------------ credentials

    def _from_connection(self, conn: Any) -> tuple[Credentials, str | None]:
        """Credentials and cluster of an Airflow connection, or a ``ValidationError`` naming what is missing."""
        host = (conn.host or "").strip()
        if not host:
            raise ValidationError(
                f"Airflow connection {self.grid_conn_id!r} has no host: set it to the control plane URL, "
                "e.g. http://127.0.0.1:8080"
            )
        if "://" not in host:
            scheme = conn.schema if conn.schema in ("http", "https") else "http"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        elif conn.port and urlsplit(host).port is None:
            host = f"{host.rstrip('/')}:{conn.port}"
        url = normalize_url(host, source=f"the host of Airflow connection {self.grid_conn_id!r}")
        if not conn.login or not conn.password:
            raise ValidationError(
                f"Airflow connection {self.grid_conn_id!r} needs the user id as login and the API key as "
                "password (`grid-ops users create NAME` on the server prints both)"
            )
        extra = conn.extra_dejson if isinstance(conn.extra_dejson, dict) else {}
        cluster = self._cluster_id or extra.get("cluster_id") or None
        return Credentials(url=url, user_id=conn.login, api_key=conn.password), cluster

    def _without_connection(self) -> tuple[Credentials, str | None, str]:
        """The SDK's own credentials (environment, credentials file) or the embedded control plane's."""
        found = load_credentials()
        if found is not None:
            return found, None, "the SDK's configuration (GRID_URL or the credentials file)"
        home = grid_ops_home()
        return ensure_local_server(home), None, f"the embedded local control plane (state under {home})"

    def _fallback_allowed(self, exc: AirflowNotFoundException) -> None:
        if self.grid_conn_id != DEFAULT_CONN_ID:
            raise exc

    @cached_property
    def _resolved(self) -> tuple[Credentials, str | None, bool]:
        """``(credentials, cluster_id, embedded)`` of this hook, resolved once."""
        try:
            conn = self.get_connection(self.grid_conn_id)
        except AirflowNotFoundException as exc:
            self._fallback_allowed(exc)
            credentials, cluster, source = self._without_connection()
            self.log.info(
                "No Airflow connection %r is defined: using %s at %s", self.grid_conn_id, source, credentials.url
            )
            return credentials, self._cluster_id or cluster, "embedded" in source
        credentials, cluster = self._from_connection(conn)
        return credentials, cluster, False

    def get_conn(self) -> GridClient:
        """The SDK's client for this connection (built once; it retries transient errors with backoff)."""
        return self.client

    @cached_property
    def client(self) -> _StateClient:
        """The SDK's client for this connection (pass it as ``client=`` to ``Run``, ``Datastore`` ...)."""
        credentials, cluster, embedded = self._resolved
        reconnect = (lambda: ensure_local_server(grid_ops_home())) if embedded else None
        return _StateClient(
            credentials.url,
            credentials.user_id,
            credentials.api_key,
            cluster_id=cluster,
            max_retries=self.max_retries,
            backoff=self.retry_backoff,
            reconnect=reconnect,
        )

    @property
    def url(self) -> str:
        """The control plane's URL."""
        return self._resolved[0].url

    @property
    def cluster_id(self) -> str:
        """The cluster used when a call names none (the server's default when the connection sets none)."""
        return self.client.cluster_id

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call (who am I); ``(ok, message)`` for the UI's Test button."""
        try:
            user = self.client.get_user()
        except (GridError, ValueError) as exc:
            return False, str(exc)
        return True, f"Connected to {self.url} as user {user.id}"

    # ------------------------------------------------------------------ blocking calls

    def get_run_state(self, name: str, cluster_id: str | None = None) -> RemoteState:
        """The run's state (unknown phases read as still running)."""
        return self.client.fetch_state("run", name, cluster_id)

    def get_experiment_state(self, name: str, cluster_id: str | None = None) -> RemoteState:
        """The experiment's state (unknown phases read as still running)."""
        return self.client.fetch_state("experiment", name, cluster_id)

    def cancel_run(self, name: str, cluster_id: str | None = None) -> None:
        """Ask the control plane to cancel every experiment of the run (harmless once it has ended)."""
        self.client.cancel_run(name, cluster_id=cluster_id)

    def run_url(self, name: str, cluster_id: str | None = None) -> str:
        """Where the run lives on the control plane (its REST resource; the API's Basic auth applies)."""
        return f"{self.url}/v1/core/{_q(cluster_id or self.cluster_id)}/runs/{_q(name)}"

    # ------------------------------------------------------------------ async calls (triggerer)

    async def _aresolve(self) -> tuple[Credentials, str | None]:
        if self._async_credentials is None:
            try:
                conn = await self.aget_connection(self.grid_conn_id)
            except AirflowNotFoundException as exc:
                self._fallback_allowed(exc)
                credentials, cluster, source = await asyncio.to_thread(self._without_connection)
                self.log.info(
                    "No Airflow connection %r is defined: using %s at %s", self.grid_conn_id, source, credentials.url
                )
                self._async_credentials = (credentials, self._cluster_id or cluster)
            else:
                self._async_credentials = self._from_connection(conn)
        return self._async_credentials

    async def _arequest(self, method: str, path: str, json: object = None) -> Any:
        """One request from the event loop with the blocking client's retry policy; the decoded answer."""
        credentials, _ = await self._aresolve()
        trust_env = urlsplit(credentials.url).hostname not in _LOOPBACK
        async with httpx.AsyncClient(
            base_url=credentials.url,
            auth=(credentials.user_id, credentials.api_key),
            timeout=self.timeout,
            trust_env=trust_env,
            headers={"User-Agent": "grid-ops-airflow", "Accept": "application/json"},
        ) as http:
            attempt = 0
            while True:
                try:
                    answer = await http.request(method, path, json=json)
                except httpx.TransportError as exc:
                    if attempt >= self.max_retries:
                        raise ControlPlaneUnavailable(
                            f"cannot reach the control plane at {credentials.url} ({method} {path}): "
                            f"{type(exc).__name__}: {exc}"
                        ) from exc
                else:
                    if answer.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                        break
                delay = min(8.0, self.retry_backoff * 2**attempt)
                await asyncio.sleep(random.uniform(delay / 2, delay))
                attempt += 1
        if answer.status_code >= 400:
            try:
                body: object = answer.json()
            except ValueError:
                body = answer.text
            raise from_response(answer.status_code, body)
        return answer.json()

    async def _acluster(self, cluster_id: str | None) -> str:
        if cluster_id:
            return cluster_id
        _, cluster = await self._aresolve()
        if cluster:
            return cluster
        clusters = await self._arequest("GET", "/v1/core/clusters")
        chosen = clusters.get("defaultCluster") or next((c["id"] for c in clusters.get("clusters", [])), None)
        if not chosen:
            raise GridError("the control plane has no cluster; pass cluster_id=")
        return str(chosen)

    async def aget_state(self, kind: str, name: str, cluster_id: str | None = None) -> RemoteState:
        """The state of a run (``kind="run"``) or an experiment, without blocking the event loop."""
        collection = "runs" if kind == "run" else "experiments"
        cluster = await self._acluster(cluster_id)
        return parse_state(kind, await self._arequest("GET", f"/v1/core/{_q(cluster)}/{collection}/{_q(name)}"))

    async def acancel_run(self, name: str, cluster_id: str | None = None) -> None:
        """Cancel a run without blocking the event loop (harmless once it has ended)."""
        cluster = await self._acluster(cluster_id)
        body = schemas.UpdateRunRequest(name=name, spec=schemas.RunSpec(desired_state=schemas.RunState.CANCELED))
        await self._arequest("PUT", f"/v1/core/{_q(cluster)}/runs/{_q(name)}", json=body.wire())
