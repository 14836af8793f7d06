"""HTTP client of the control plane (Grid v1 dialect): auth, retries with backoff, typed answers.

``GridClient`` maps every endpoint the SDK needs to a method that returns ``grid_ops.schemas`` models and
raises ``grid_ops.errors`` exceptions. ``get_client()`` builds one per process from the environment, the
credentials file, or else the embedded local control plane.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests
import urllib3.exceptions

from grid_ops import schemas
from grid_ops.credentials import Credentials, grid_ops_home, load_credentials, normalize_url
from grid_ops.embedded import ensure_local_server
from grid_ops.errors import (
    AuthenticationError,
    ControlPlaneUnavailable,
    GridError,
    NotFoundError,
    ServerError,
    from_response,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 60.0)
"""(connect, read) seconds for each HTTP request."""
RETRY_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
DEFAULT_PAGE_SIZE = 100
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

ModelT = TypeVar("ModelT", bound=schemas.WireModel)
Phase = str  # a wire enum value such as "RUN_STATE_RUNNING" (the StrEnum members qualify)


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request failed before reaching the server (so resending cannot apply it twice)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)  # includes DNS failures


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause of a transport error, e.g. ``[Errno 111] Connection refused``."""
    cause = exc.args[0] if exc.args else exc
    cause = getattr(cause, "reason", cause)
    text = str(cause)
    return text.rsplit(": ", 1)[-1] if "Failed to establish" in text else f"{type(exc).__name__}: {text}"


def _csv(values: Iterable[object] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


class GridClient:
    """A session with one control plane as one user: typed endpoint methods, retries, error mapping."""

    def __init__(
        self,
        url: str,
        user_id: str | None = None,
        api_key: str | None = None,
        *,
        cluster_id: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        reconnect: Callable[[], Credentials] | None = None,
    ) -> None:
        self.url = normalize_url(url)
        self.user_id = user_id
        self._api_key = api_key
        self._cluster_id = cluster_id
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._reconnect = reconnect
        self._session = self._new_session()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_credentials(cls, credentials: Credentials, **kwargs: Any) -> GridClient:
        """A client for ``credentials`` (keyword arguments as for the constructor)."""
        return cls(credentials.url, credentials.user_id, credentials.api_key, **kwargs)

    @classmethod
    def from_env(cls, home: Path | None = None, **kwargs: Any) -> GridClient:
        """A client from ``GRID_URL``/``GRID_USER_ID``/``GRID_API_KEY``, else the credentials file, else the
        embedded local control plane (started if needed). ``GRID_CLUSTER_ID`` sets the default cluster."""
        if kwargs.get("cluster_id") is None:
            kwargs["cluster_id"] = os.environ.get("GRID_CLUSTER_ID") or None
        credentials = load_credentials(home)
        if credentials is None:
            local_home = home or grid_ops_home()
            credentials = ensure_local_server(local_home)
            kwargs.setdefault("reconnect", lambda: ensure_local_server(local_home))
        return cls.from_credentials(credentials, **kwargs)

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        session.headers["User-Agent"] = "grid-ops-client"
        session.headers["Accept"] = "application/json"
        # proxies and .netrc never apply to a control plane on this machine
        session.trust_env = urlsplit(self.url).hostname not in _LOOPBACK
        return session

    def close(self) -> None:
        """Release the pooled HTTP connections (a later call opens new ones)."""
        self._session.close()

    def __enter__(self) -> GridClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GridClient(url={self.url!r}, user_id={self.user_id!r}, cluster_id={self._cluster_id!r})"

    # ------------------------------------------------------------------ transport

    def _sleep_backoff(self, attempt: int) -> None:
        delay = min(self.max_backoff, self.backoff * (2**attempt))
        time.sleep(random.uniform(delay / 2, delay))

    def _auth_headers(self, bearer: str | None, authenticate: bool) -> dict[str, str]:
        if bearer:
            return {"Authorization": f"Bearer {bearer}"}
        if authenticate and self.user_id and self._api_key:
            token = base64.b64encode(f"{self.user_id}:{self._api_key}".encode()).decode("ascii")
            return {"Authorization": f"Basic {token}"}
        return {}

    def _apply_reconnect(self) -> bool:
        if self._reconnect is None:
            return False
        credentials = self._reconnect()
        self.url, self.user_id, self._api_key = credentials.url, credentials.user_id, credentials.api_key
        return True

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: object = None,
        body: Callable[[], Any] | None = None,
        headers: dict[str, str] | None = None,
        authenticate: bool = True,
        bearer: str | None = None,
        retry: bool | None = None,
        absolute: bool = False,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request, retrying per policy, and return the 2xx answer or raise the mapped error.

        Requests that never reached the server are always retried; those that may have (reset connection,
        read timeout, 502/503/504) only when ``retry`` (default: the method is idempotent). With ``stream``
        the body is left unread for the caller to iterate (and close).
        """
        retry = method in IDEMPOTENT_METHODS if retry is None else retry
        attempt, reconnected = 0, False
        while True:
            url = path if absolute else self.url + path
            try:
                answer = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    data=body() if body else None,
                    headers={**(headers or {}), **self._auth_headers(bearer, authenticate)},
                    timeout=self.timeout,
                    stream=stream,
                )
            except requests.RequestException as exc:
                # The embedded control plane may simply have stopped: find or start it again first.
                if _never_sent(exc) and not absolute and not reconnected and self._apply_reconnect():
                    attempt, reconnected = 0, True
                    continue
                if (retry or _never_sent(exc)) and attempt < self.max_retries:
                    log.debug("retrying %s %s after %s", method, url, exc)
                    self._sleep_backoff(attempt)
                    attempt += 1
                    continue
                raise ControlPlaneUnavailable(
                    f"cannot reach the control plane at {self.url} ({method} {path.split('?')[0]}): "
                    f"{_reason(exc)}. Check GRID_URL and that the server runs "
                    "(`grid-ops local start` for the local one, `grid-ops server` for a deployment)"
                ) from exc
            if answer.status_code in RETRY_STATUSES and retry and attempt < self.max_retries:
                answer.close()
                self._sleep_backoff(attempt)
                attempt += 1
                continue
            if answer.status_code >= 400:
                raise self._error(answer)
            return answer

    def _error(self, answer: requests.Response) -> GridError:
        try:
            decoded: object = answer.json()
        except ValueError:
            decoded = answer.text
        error = from_response(answer.status_code, decoded)
        if isinstance(error, AuthenticationError) and answer.status_code == 401 and self.user_id:
            # the server's message may already say which variables to check: then only add who and where
            hint = "or " if "GRID_API_KEY" in error.message else "set GRID_USER_ID and GRID_API_KEY, or "
            error.message += f" (user {self.user_id!r} at {self.url}; {hint}run `grid-ops login`)"
        return error

    def _parse(self, answer: requests.Response, model: type[ModelT]) -> ModelT:
        try:
            return model.model_validate(answer.json())
        except ValueError as exc:
            raise ServerError(
                f"unexpected answer from the control plane at {answer.url} (expected {model.__name__}): "
                f"{exc}; is {self.url} a grid-ops control plane of a compatible version?",
                status_code=answer.status_code,
            ) from exc

    def _get(self, path: str, model: type[ModelT], params: dict[str, Any] | None = None) -> ModelT:
        return self._parse(self._request("GET", path, params=params), model)

    def _core(self, cluster_id: str | None, *parts: str) -> str:
        return "/v1/core/" + "/".join(_q(p) for p in (cluster_id or self.cluster_id, *parts))

    # ------------------------------------------------------------------ health, auth

    def healthz(self) -> bool:
        """Whether the control plane answers ``GET /healthz``."""
        try:
            with self._session.get(f"{self.url}/healthz", timeout=self.timeout) as answer:
                return answer.status_code == 200
        except requests.RequestException:
            return False

    def login(self, username: str, api_key: str, duration: str | None = None) -> str:
        """A bearer token for ``username`` (a user name or id) and ``api_key``."""
        request = schemas.LoginRequest(username=username, api_key=api_key, duration=duration)
        answer = self._request("POST", "/v1/auth/login", json=request.wire(), authenticate=False, retry=True)
        return self._parse(answer, schemas.LoginResponse).token

    def get_user(self, token: str | None = None) -> schemas.User:
        """The calling user (authenticated by ``token`` if given, else by the API key)."""
        return self._parse(self._request("GET", "/v1/auth/user", bearer=token), schemas.User)

    # ------------------------------------------------------------------ clusters

    def list_clusters(
        self,
        *,
        phase_not_in: Iterable[Phase] | None = (schemas.ClusterState.DELETED,),
        cluster_type_in: Iterable[Phase] | None = None,
    ) -> schemas.ListClustersResponse:
        """The clusters this user may run on, and the default one."""
        params = {"phaseNotIn": _csv(phase_not_in), "clusterTypeIn": _csv(cluster_type_in)}
        return self._get("/v1/core/clusters", schemas.ListClustersResponse, params)

    def get_cluster(self, cluster_id: str) -> schemas.Cluster:
        """One cluster by id."""
        return self._get(f"/v1/core/clusters/{_q(cluster_id)}", schemas.Cluster)

    def list_instance_types(self, cluster_id: str | None = None) -> list[schemas.InstanceType]:
        """The instance types of a cluster (default: the default cluster)."""
        path = f"/v1/core/clusters/{_q(cluster_id or self.cluster_id)}/instance-types"
        return self._get(path, schemas.ListInstanceTypesResponse).instance_types

    @property
    def cluster_id(self) -> str:
        """The cluster used when a call names none: the one given, else the server's default (cached)."""
        if self._cluster_id is None:
            answer = self.list_clusters()
            chosen = answer.default_cluster or (answer.clusters[0].id if answer.clusters else None)
            if not chosen:
                raise GridError(
                    f"the control plane at {self.url} has no cluster: declare one in its server config "
                    "(clusters: [...]) or pass cluster_id="
                )
            self._cluster_id = chosen
        return self._cluster_id

    # ------------------------------------------------------------------ runs

    def create_run(self, request: schemas.CreateRunRequest, cluster_id: str | None = None) -> schemas.Run:
        """Create a run (or, with ``spec.dryRun``, plan one).

        Not resent blindly: when the answer is lost after the request may have arrived, the run is looked
        up by name first and only created again if it does not exist.
        """
        cluster = cluster_id or request.spec.cluster_id or self.cluster_id
        path = self._core(cluster, "runs")
        payload = request.wire()
        if request.spec.dry_run or not request.name:
            return self._parse(self._request("POST", path, json=payload, retry=bool(request.spec.dry_run)), schemas.Run)
        for attempt in range(self.max_retries + 1):
            try:
                return self._parse(self._request("POST", path, json=payload, retry=False), schemas.Run)
            except (ControlPlaneUnavailable, ServerError) as exc:
                ambiguous = isinstance(exc, ControlPlaneUnavailable) or exc.status_code in RETRY_STATUSES
                if not ambiguous or attempt == self.max_retries:
                    raise
                self._sleep_backoff(attempt)
                try:
                    return self.get_run(request.name, cluster_id=cluster)
                except NotFoundError:
                    log.debug("run %s was not created; sending the request again", request.name)
        raise AssertionError("unreachable")

    def upload_source(self, upload_url: str, tar_path: str | Path) -> None:
        """PUT the source tar to a run's ``status.uploadUrl``, streamed from disk.

        Credentials are only sent when the URL is on the control plane itself (not to presigned URLs).
        """
        target = urljoin(self.url + "/", upload_url)
        same_origin = urlsplit(target)[:2] == urlsplit(self.url)[:2]
        file = Path(tar_path)
        opened: list[BinaryIO] = []

        def body() -> BinaryIO:  # a fresh handle for every attempt
            opened.append(file.open("rb"))
            return opened[-1]

        try:
            self._request(
                "PUT",
                target,
                body=body,
                absolute=True,
                authenticate=same_origin,
                headers={"Content-Type": "application/gzip"},
            )
        finally:
            for handle in opened:
                handle.close()

    def get_run(self, id_or_name: str, *, cluster_id: str | None = None) -> schemas.Run:
        """One run by id or name."""
        return self._get(self._core(cluster_id, "runs", id_or_name), schemas.Run)

    def iter_runs(
        self,
        *,
        phase_in: Iterable[Phase] | None = None,
        phase_not_in: Iterable[Phase] | None = None,
        names: Iterable[str] | None = None,
        query: str | None = None,
        user_ids: Iterable[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        cluster_id: str | None = None,
    ) -> Iterator[schemas.Run]:
        """The caller's runs, page after page, filtered by phase, exact names or a name substring."""
        params: dict[str, Any] = {
            "phaseIn": _csv(phase_in),
            "phaseNotIn": _csv(phase_not_in),
            "names": _csv(names),
            "query": query,
            "userIds": _csv(user_ids),
            "pageSize": page_size,
        }
        for page in self._pages(self._core(cluster_id, "runs"), params, schemas.ListRunsResponse):
            yield from page.runs

    def list_runs(self, **filters: Any) -> list[schemas.Run]:
        """All pages of ``iter_runs(**filters)`` as a list."""
        return list(self.iter_runs(**filters))

    def _pages(self, path: str, params: dict[str, Any], model: type[ModelT]) -> Iterator[ModelT]:
        seen: set[str] = set()
        while True:
            page = self._get(path, model, params)
            yield page
            token = getattr(page, "next_page_token", None)
            if not token or token in seen:
                return
            seen.add(token)
            params = {**params, "pageToken": token}

    def cancel_run(self, id_or_name: str, *, name: str | None = None, cluster_id: str | None = None) -> schemas.Run:
        """Ask the control plane to cancel every experiment of a run; returns the updated run."""
        request = schemas.UpdateRunRequest(name=name, spec=schemas.RunSpec(desired_state=schemas.RunState.CANCELED))
        answer = self._request("PUT", self._core(cluster_id, "runs", id_or_name), json=request.wire())
        return self._parse(answer, schemas.Run)

    def delete_run(self, id_or_name: str, *, cluster_id: str | None = None) -> None:
        """Cancel a run, then delete it and its experiments."""
        self._request("DELETE", self._core(cluster_id, "runs", id_or_name))

    # ------------------------------------------------------------------ experiments

    def get_experiment(self, id_or_name: str, *, cluster_id: str | None = None) -> schemas.Experiment:
        """One experiment by id or name."""
        return self._get(self._core(cluster_id, "experiments", id_or_name), schemas.Experiment)

    def iter_experiments(
        self,
        *,
        run_ids: Iterable[str] | None = None,
        names: Iterable[str] | None = None,
        phase_in: Iterable[Phase] | None = None,
        phase_not_in: Iterable[Phase] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        cluster_id: str | None = None,
    ) -> Iterator[schemas.Experiment]:
        """The caller's experiments, page after page, filtered by run ids, names or phase."""
        params: dict[str, Any] = {
            "runIds": _csv(run_ids),
            "names": _csv(names),
            "phaseIn": _csv(phase_in),
            "phaseNotIn": _csv(phase_not_in),
            "limit": page_size,
        }
        for page in self._pages(self._core(cluster_id, "experiments"), params, schemas.ListExperimentsResponse):
            yield from page.experiments

    def list_experiments(self, **filters: Any) -> list[schemas.Experiment]:
        """All pages of ``iter_experiments(**filters)`` as a list."""
        return list(self.iter_experiments(**filters))

    def cancel_experiment(
        self, id_or_name: str, *, name: str | None = None, cluster_id: str | None = None
    ) -> schemas.Experiment:
        """Ask the control plane to cancel one experiment; returns the updated experiment."""
        request = schemas.UpdateExperimentRequest(
            name=name, spec=schemas.ExperimentSpec(desired_state=schemas.ExperimentState.CANCELLED)
        )
        answer = self._request("PUT", self._core(cluster_id, "experiments", id_or_name), json=request.wire())
        return self._parse(answer, schemas.Experiment)

    def delete_experiment(self, id_or_name: str, *, cluster_id: str | None = None) -> None:
        """Cancel an experiment, then delete it."""
        self._request("DELETE", self._core(cluster_id, "experiments", id_or_name))

    def experiment_events(self, id_or_name: str, *, cluster_id: str | None = None) -> list[schemas.ExperimentEvent]:
        """The state changes of an experiment with their messages, oldest first."""
        path = self._core(cluster_id, "experiments", id_or_name, "events")
        return self._get(path, schemas.ListExperimentEventsResponse).events

    def experiment_logs(
        self,
        id_or_name: str,
        offset: int = 0,
        limit: int | None = None,
        tail: int | None = None,
        *,
        build: bool = False,
        cluster_id: str | None = None,
    ) -> schemas.LogChunk:
        """A slice of an experiment's log from byte ``offset`` (at most ``limit`` bytes), or its last
        ``tail`` lines; with ``build``, of its environment's build log."""
        params = {"offset": offset, "limit": limit, "tail": tail, "build": "true" if build else None}
        return self._get(self._core(cluster_id, "experiments", id_or_name, "logs"), schemas.LogChunk, params)

    def follow_logs(
        self,
        id_or_name: str,
        poll_interval: float = 0.5,
        *,
        offset: int = 0,
        build: bool = False,
        cluster_id: str | None = None,
    ) -> Iterator[str]:
        """Yield an experiment's log text as it grows, until the experiment is over and all of it is read
        (with ``build``: its build log, until the build is over).

        The pieces are whatever the server returned, not necessarily whole lines; joined, they are the log.
        """
        while True:
            chunk = self.experiment_logs(id_or_name, offset=offset, build=build, cluster_id=cluster_id)
            if chunk.data:
                yield chunk.data
            offset = chunk.next_offset
            if chunk.eof:
                return
            if not chunk.data:
                time.sleep(poll_interval)

    # ------------------------------------------------------------------ metrics and artifacts

    def experiment_metrics(
        self,
        id_or_name: str,
        *,
        names: Iterable[str] | None = None,
        series: bool = True,
        cluster_id: str | None = None,
    ) -> list[schemas.MetricSummary]:
        """An experiment's metrics sorted by name (only ``names`` if given), with their series unless not
        ``series``."""
        params = {"names": _csv(names), "series": "true" if series else "false"}
        path = self._core(cluster_id, "experiments", id_or_name, "metrics")
        return self._get(path, schemas.ExperimentMetricsResponse, params).metrics

    def run_metrics(self, id_or_name: str, *, cluster_id: str | None = None) -> list[schemas.ExperimentLastMetrics]:
        """Every experiment of a run with the last value of each of its metrics, in sweep order."""
        return self._get(self._core(cluster_id, "runs", id_or_name, "metrics"), schemas.RunMetricsResponse).experiments

    def best_experiment(
        self,
        run_id_or_name: str,
        metric: str,
        mode: str = "max",
        *,
        include_failed: bool = False,
        cluster_id: str | None = None,
    ) -> schemas.BestExperimentResponse:
        """The run's experiment with the highest (``max``) or lowest (``min``) last value of ``metric``,
        among the succeeded ones unless ``include_failed``; ``NotFoundError`` when none reported it."""
        params = {"metric": metric, "mode": mode, "includeFailed": "true" if include_failed else "false"}
        path = self._core(cluster_id, "runs", run_id_or_name, "best")
        return self._get(path, schemas.BestExperimentResponse, params)

    def iter_artifacts(
        self, id_or_name: str, *, page_size: int = DEFAULT_PAGE_SIZE, cluster_id: str | None = None
    ) -> Iterator[schemas.Artifact]:
        """An experiment's artifacts sorted by path, page after page."""
        path = self._core(cluster_id, "experiments", id_or_name, "artifacts")
        for page in self._pages(path, {"pageSize": page_size}, schemas.ListExperimentArtifactsResponse):
            yield from page.artifacts

    def list_artifacts(self, id_or_name: str, *, cluster_id: str | None = None) -> list[schemas.Artifact]:
        """All of an experiment's artifacts."""
        return list(self.iter_artifacts(id_or_name, cluster_id=cluster_id))

    def download_artifact(self, id_or_name: str, path: str, dest: str | Path, *, cluster_id: str | None = None) -> Path:
        """Stream the artifact ``path`` of an experiment to the file ``dest`` (written whole or not at all)."""
        url = self._core(cluster_id, "experiments", id_or_name, "artifacts") + "/" + quote(path)
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        size, expected = 0, None
        try:
            with self._request("GET", url, stream=True) as answer, partial.open("wb") as f:
                expected = answer.headers.get("Content-Length")
                for chunk in answer.iter_content(1024 * 1024):
                    f.write(chunk)
                    size += len(chunk)
            if expected is not None and int(expected) != size:
                raise ServerError(f"artifact {path!r} of {id_or_name!r} arrived incomplete: {size} of {expected} bytes")
        except requests.RequestException as exc:
            partial.unlink(missing_ok=True)
            raise ControlPlaneUnavailable(
                f"downloading artifact {path!r} of {id_or_name!r} from {self.url} broke off: {_reason(exc)}"
            ) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, target)
        return target

    # ------------------------------------------------------------------ runner side (experiment token)

    def report_metrics(self, experiment_id: str, points: Iterable[schemas.MetricPoint], token: str) -> int:
        """Send metric points of an experiment with its ``$GRID_RUNNER_TOKEN``; returns how many were new.

        Resent on failure only when every point has a ``seq``, so that nothing is counted twice."""
        batch = list(points)
        payload = schemas.ReportMetricsRequest(points=batch).wire()
        answer = self._request(
            "POST",
            f"/v1/runner/experiments/{_q(experiment_id)}/metrics",
            json=payload,
            headers={"X-Grid-Runner-Token": token},
            authenticate=False,
            retry=all(p.seq is not None for p in batch),
        )
        return self._parse(answer, schemas.ReportMetricsResponse).accepted

    def upload_artifact(
        self, experiment_id: str, path: str, file: str | Path, token: str
    ) -> schemas.ArtifactUploadResponse:
        """Upload ``file`` as the artifact ``path`` of an experiment, with its ``$GRID_RUNNER_TOKEN``."""
        source = Path(file)
        opened: list[BinaryIO] = []

        def body() -> BinaryIO:  # a fresh handle for every attempt
            opened.append(source.open("rb"))
            return opened[-1]

        try:
            answer = self._request(
                "PUT",
                f"/v1/runner/experiments/{_q(experiment_id)}/artifacts/{quote(path)}",
                body=body,
                headers={"X-Grid-Runner-Token": token, "Content-Type": "application/octet-stream"},
                authenticate=False,
            )
        finally:
            for handle in opened:
                handle.close()
        return self._parse(answer, schemas.ArtifactUploadResponse)

    # ------------------------------------------------------------------ datastores

    def create_datastore(
        self, request: schemas.CreateDatastoreRequest, cluster_id: str | None = None
    ) -> schemas.Datastore:
        """Create the next version of a datastore. Resent after a lost answer only with ``spec.uploadToken``,
        which makes the server answer the version the first request created."""
        cluster = cluster_id or request.spec.cluster_id or self.cluster_id
        answer = self._request(
            "POST", self._core(cluster, "datastores"), json=request.wire(), retry=bool(request.spec.upload_token)
        )
        return self._parse(answer, schemas.Datastore)

    def get_datastore(self, ref: str, *, cluster_id: str | None = None) -> schemas.Datastore:
        """One version by id, ``name:version``, or ``name`` (its latest version that succeeded)."""
        return self._get(self._core(cluster_id, "datastores", ref), schemas.Datastore)

    def iter_datastores(
        self,
        *,
        names: Iterable[str] | None = None,
        available: bool | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        cluster_id: str | None = None,
    ) -> Iterator[schemas.Datastore]:
        """The caller's datastore versions on a cluster, by name and version (``available``: succeeded only)."""
        params: dict[str, Any] = {"names": _csv(names), "available": available, "pageSize": page_size}
        for page in self._pages(self._core(cluster_id, "datastores"), params, schemas.ListDatastoresResponse):
            yield from page.datastores

    def list_datastores(self, **filters: Any) -> list[schemas.Datastore]:
        """All pages of ``iter_datastores(**filters)`` as a list."""
        return list(self.iter_datastores(**filters))

    def delete_datastore(self, ref: str, *, cluster_id: str | None = None) -> None:
        """Delete one version (an id or ``name:version``)."""
        self._request("DELETE", self._core(cluster_id, "datastores", ref))

    def datastore_events(self, ref: str, *, cluster_id: str | None = None) -> list[schemas.DatastoreEvent]:
        """The phase changes of a version with their messages, oldest first."""
        return self._get(
            self._core(cluster_id, "datastores", ref, "events"), schemas.ListDatastoreEventsResponse
        ).events

    def missing_blobs(self, ref: str, blobs: list[schemas.BlobRef], *, cluster_id: str | None = None) -> list[str]:
        """Which of these contents (blake3, size) the server does not store for you yet."""
        body = schemas.MissingBlobsRequest(blobs=blobs).wire()
        answer = self._request(
            "POST", self._core(cluster_id, "datastores", ref, "missing-blobs"), json=body, retry=True
        )
        return self._parse(answer, schemas.MissingBlobsResponse).missing

    def presign_uploads(
        self, ref: str, objects: list[schemas.DatastoreUploadObject], *, cluster_id: str | None = None
    ) -> list[schemas.DatastoreUploadObject]:
        """Start (or continue) multipart uploads and get a URL for every part. Safe to resend for content
        (``blake3``) uploads and for those named by ``uploadId``: the server continues the same upload."""
        body = schemas.CreatePresignedUrlsRequest(objects=objects).wire()
        retry = all(o.blake3 or o.upload_id for o in objects)
        answer = self._request(
            "POST", self._core(cluster_id, "datastores", ref, "presigned-urls"), json=body, retry=retry
        )
        return self._parse(answer, schemas.CreatePresignedUrlsResponse).objects

    def complete_uploads(
        self, ref: str, objects: list[schemas.CompletePresignedUrlsUploadObject], *, cluster_id: str | None = None
    ) -> None:
        """Report uploaded parts with their ETags (completing an upload twice is harmless)."""
        body = schemas.CompletePresignedUrlsRequest(objects=objects).wire()
        path = self._core(cluster_id, "datastores", ref, "presigned-urls", "completed")
        self._request("POST", path, json=body, retry=True)

    def add_datastore_files(
        self, ref: str, files: list[schemas.ManifestEntry], *, cluster_id: str | None = None
    ) -> schemas.DatastoreManifestResponse:
        """Add files (path -> stored content) to an uploading version; sending them again is harmless."""
        body = schemas.DatastoreManifestRequest(files=files).wire()
        answer = self._request("POST", self._core(cluster_id, "datastores", ref, "manifest"), json=body, retry=True)
        return self._parse(answer, schemas.DatastoreManifestResponse)

    def add_local_files(
        self, ref: str, request: schemas.LocalFilesRequest, *, cluster_id: str | None = None
    ) -> schemas.LocalFilesResponse:
        """Same-host upload: have a control plane on this machine copy these files from disk into the
        version (sending them again is harmless)."""
        path = self._core(cluster_id, "datastores", ref, "local-files")
        answer = self._request("POST", path, json=request.wire(), retry=True)
        return self._parse(answer, schemas.LocalFilesResponse)

    def complete_datastore(self, ref: str, *, cluster_id: str | None = None) -> schemas.Datastore:
        """Mark a version's upload complete (harmless when it is complete already)."""
        answer = self._request("POST", self._core(cluster_id, "datastores", ref, "completed"), retry=True)
        return self._parse(answer, schemas.Datastore)

    def iter_datastore_files(self, ref: str, *, page_size: int = 1000) -> Iterator[schemas.DatastoreFile]:
        """The files of a version that succeeded, by path, each with a signed download URL."""
        params: dict[str, Any] = {"pageSize": page_size}
        path = f"/v1/core/datastores/{_q(ref)}/files"
        for page in self._pages(path, params, schemas.ListDatastoreFilesResponse):
            yield from page.files


# ---------------------------------------------------------------------- the per-process client

_lock = threading.Lock()
_current: tuple[int, GridClient] | None = None


def get_client() -> GridClient:
    """The process-wide client, built on first use by ``GridClient.from_env()`` (again after a fork)."""
    global _current
    with _lock:
        if _current is None or _current[0] != os.getpid():
            _current = (os.getpid(), GridClient.from_env())
        return _current[1]


def set_client(client: GridClient | None) -> None:
    """Replace the process-wide client (``None``: resolve credentials again on next use)."""
    global _current
    with _lock:
        if _current is not None and _current[0] == os.getpid() and _current[1] is not client:
            _current[1].close()
        _current = None if client is None else (os.getpid(), client)
