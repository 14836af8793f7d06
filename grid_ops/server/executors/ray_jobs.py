"""A Ray cluster as the ``ray`` executor sees it, over HTTP only: its job API (Ray's
``JobSubmissionClient``) and the resources its alive nodes report (the dashboard's state API,
``/api/v0/nodes``). The control plane never joins the Ray cluster (no ``ray.init``), so it needs neither
the cluster's network nor its Ray version beyond a compatible job API.

Every call has a timeout, and failures come out as three kinds: the cluster cannot be reached
(``RayUnreachable``: try again later), Ray refused the request (``RayRefused``), or Ray does not know the
job (``None`` answers).
"""

from __future__ import annotations

import re
from typing import Any

import requests

try:
    from ray.job_submission import JobDetails, JobSubmissionClient
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "a cluster with executor 'ray' needs Ray's job client on the control plane: pip install 'grid-ops[ray]'"
    ) from exc

from grid_ops.server.config import Capacity

_TIMEOUT = 30.0
_STATUS = re.compile(r"status code (\d{3})")


class RayUnreachable(Exception):
    """The Ray cluster's job API cannot be reached now; the message says why. ``sent``: the request may
    have reached Ray all the same (its answer was lost), so whether it took effect is unknown."""

    def __init__(self, message: str, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


def _unreachable(exc: Exception) -> RayUnreachable:
    """Our reading of a failed request: was it surely never received (no connection), or perhaps it was?"""
    text = str(exc)
    unsent = isinstance(exc, requests.ConnectTimeout) or any(
        mark in text for mark in ("Connection refused", "NewConnectionError", "Failed to connect", "Name or service")
    )
    return RayUnreachable(short(text), sent=not unsent)


class RayRefused(Exception):
    """The Ray cluster answered, and refused the request; the message is Ray's."""


class AlreadySubmitted(RayRefused):
    """A job with this submission id exists already (an earlier submission whose answer was lost)."""


class _Client(JobSubmissionClient):
    """Ray's job client with a timeout on every request (Ray's own waits for ever on a silent host), which
    checks the cluster's Ray version once rather than before every submission (two requests fewer each)."""

    version_checked = False

    def _check_connection_and_version(self, *args: Any, **kwargs: Any) -> None:
        if not self.version_checked:
            super()._check_connection_and_version(*args, **kwargs)

    def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", _TIMEOUT)
        answer: requests.Response = super()._do_request(method, endpoint, **kwargs)
        return answer


def _status_of(exc: Exception) -> int | None:
    match = _STATUS.search(str(exc))
    return int(match.group(1)) if match else None


def short(text: str, limit: int = 300) -> str:
    """The first line of ``text``, cut to ``limit`` characters (Ray's errors carry whole tracebacks)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    # Ray wraps the server's traceback: its last line is the error itself
    line = lines[-1] if lines and lines[0].startswith("Request failed") and len(lines) > 1 else (lines or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


class RayJobs:
    """One Ray cluster's job API and resources, at ``address`` (its dashboard URL)."""

    def __init__(self, address: str) -> None:
        self.address = address.rstrip("/")
        self._client: _Client | None = None
        self._http = requests.Session()
        self._http.trust_env = False  # the dashboard is reached directly, never through a proxy

    def _jobs(self) -> _Client:
        if self._client is None:
            try:
                self._client = _Client(self.address)
                self._client.version_checked = True
            except (ConnectionError, requests.RequestException, RuntimeError) as exc:
                raise RayUnreachable(short(str(exc))) from exc
        return self._client

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the job client's ``name``, mapping its failures to ours."""
        client = self._jobs()
        try:
            return getattr(client, name)(*args, **kwargs)
        except (ConnectionError, requests.RequestException) as exc:
            raise _unreachable(exc) from exc
        except RuntimeError as exc:
            status = _status_of(exc)
            if "already exists" in str(exc):
                raise AlreadySubmitted(short(str(exc))) from exc
            if status is not None and status >= 500:
                raise RayUnreachable(f"the Ray job API answered {status}: {short(str(exc))}", sent=True) from exc
            raise RayRefused(short(str(exc))) from exc

    def list(self) -> list[JobDetails]:
        """Every job the cluster knows."""
        return list(self._call("list_jobs"))

    def submit(self, **kwargs: Any) -> None:
        """``submit_job(**kwargs)``; ``AlreadySubmitted`` when the submission id is taken."""
        self._call("submit_job", **kwargs)

    def info(self, submission_id: str) -> JobDetails | None:
        """The job's details, or None when Ray does not know it."""
        try:
            details: JobDetails = self._call("get_job_info", submission_id)
            return details
        except RayRefused as exc:
            if "404" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def logs(self, submission_id: str) -> str | None:
        """The job's whole log, or None when Ray does not know the job."""
        try:
            return str(self._call("get_job_logs", submission_id))
        except RayRefused as exc:
            if "404" in str(exc) or "does not exist" in str(exc):
                return None
            raise

    def stop(self, submission_id: str) -> None:
        """Ask Ray to stop the job (SIGTERM, then SIGKILL after ``RAY_JOB_STOP_WAIT_TIME_S``)."""
        try:
            self._call("stop_job", submission_id)
        except RayRefused as exc:
            if "404" not in str(exc) and "does not exist" not in str(exc):
                raise

    def capacity(self) -> tuple[Capacity, dict[str, float]]:
        """CPUs, GPUs and memory of the cluster's alive nodes, and the sums of every resource they report."""
        try:
            answer = self._http.get(
                f"{self.address}/api/v0/nodes",
                params={"limit": "10000", "detail": "false"},
                timeout=_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise RayUnreachable(short(str(exc))) from exc
        if answer.status_code != 200:
            raise RayUnreachable(f"the Ray dashboard answered {answer.status_code} to /api/v0/nodes")
        try:
            nodes = answer.json()["data"]["result"]["result"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RayUnreachable(f"unexpected answer from the Ray dashboard's /api/v0/nodes: {exc}") from exc
        totals: dict[str, float] = {}
        for node in nodes:
            if node.get("state") != "ALIVE":
                continue
            for name, amount in (node.get("resources_total") or {}).items():
                totals[name] = totals.get(name, 0.0) + float(amount)
        capacity = Capacity(
            cpu=totals.get("CPU", 0.0),
            gpu=int(totals.get("GPU", 0.0)),
            memory_mb=int(totals.get("memory", 0.0) // (1024 * 1024)),
        )
        return capacity, totals
