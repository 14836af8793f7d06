"""``Experiment``: one point of a run's sweep, loaded by name, with its state, logs and controls.

Properties read the experiment as last fetched; ``refresh()`` fetches it again (``wait()`` and the
controls do so themselves). Status strings are lowercase phases such as ``"running"`` or ``"succeeded"``.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from grid_ops import schemas
from grid_ops.client import GridClient, get_client
from grid_ops.errors import NotFoundError, WaitTimeout
from grid_ops.names import split_experiment_name
from grid_ops.sdk.resources import Actions, Resources, ScratchSpace
from grid_ops.sdk.results import Artifact, Metric, download
from grid_ops.sdk.states import TERMINAL_STATUSES, experiment_status


class Experiment:
    """An experiment of a run, named ``<run>-exp<N>``; created by ``Run.start()``, never directly."""

    _best: tuple[str, float] | None = None  # (metric, value) when returned by Run.best_experiment

    def __init__(self, name: str, cluster_id: str | None = None, *, client: GridClient | None = None) -> None:
        self._client = client
        self._cluster_id = cluster_id
        try:
            self._wire = self._api().get_experiment(name, cluster_id=cluster_id)
        except NotFoundError as exc:
            raise NotFoundError(
                f"experiment {name!r} does not exist (or is not yours). Experiments are named <run>-exp<N> "
                "and created by Run(...).start(); list a run's experiments with Run(name).experiments",
                status_code=exc.status_code,
                details=[exc.message],
            ) from None

    @classmethod
    def _from_wire(cls, wire: schemas.Experiment, client: GridClient | None = None) -> Experiment:
        """An Experiment around an already fetched wire model (no request)."""
        experiment = cls.__new__(cls)
        experiment._client = client
        experiment._cluster_id = wire.spec.cluster_id
        experiment._wire = wire
        return experiment

    def _api(self) -> GridClient:
        if self._client is None:
            self._client = get_client()
        return self._client

    @property
    def _cluster(self) -> str | None:
        return self._wire.spec.cluster_id or self._cluster_id

    # ------------------------------------------------------------------ identity

    @property
    def id(self) -> str:
        """The experiment's id on the control plane."""
        return self._wire.id

    @property
    def name(self) -> str:
        """name of the experiment configured as part of the run."""
        return self._wire.name

    @property
    def run_name(self) -> str:
        """The name of the run the experiment belongs to."""
        split = split_experiment_name(self.name)
        return split[0] if split else self.name

    @property
    def run_id(self) -> str | None:
        """The id of the run the experiment belongs to."""
        return self._wire.spec.run_id

    @property
    def description(self) -> str | None:
        """description of the experiment configured as part of the run."""
        return self._wire.description

    @property
    def created_at(self) -> datetime | None:
        """created_at of the experiment configured as part of the run."""
        return self._wire.created_at

    @property
    def updated_at(self) -> datetime | None:
        """When the experiment last changed."""
        return self._wire.updated_at

    @property
    def user(self) -> str | None:
        """user who owns the of the experiment/run (their user id)."""
        return self._wire.spec.user_id

    # ------------------------------------------------------------------ spec

    @property
    def cluster_id(self) -> str | None:
        """cluster_id of the experiment configured as part of the run."""
        return self._cluster

    @property
    def command(self) -> list[str]:
        """command of the experiment configured as part of the run (one argument per item)."""
        return list(self._wire.spec.command or [])

    @property
    def parameters(self) -> dict[str, str]:
        """The swept values this experiment runs with, by argument name (e.g. ``{"lr": "0.1"}`` for ``--lr``)."""
        return dict(self._wire.spec.parameters or {})

    @property
    def actions(self) -> Actions:
        """actions of the experiment configured as part of the run."""
        return Actions.from_wire(self._wire.spec.actions)

    @property
    def datastore(self) -> list[dict[str, str]]:
        """datastores of the experiment configured as part of the run: ``[{"id", "mount_path"}]``."""
        return [
            {"id": mount.id or "", "mount_path": mount.mount_path or ""} for mount in self._wire.spec.datastores or []
        ]

    @property
    def datastore_mount_dir(self) -> str | None:
        """Where the (first) datastore is mounted, if any."""
        mounts = self._wire.spec.datastores or []
        return mounts[0].mount_path if mounts else None

    @property
    def desired_state(self) -> str:
        """desired_state of the experiment configured as part of the run (e.g. ``"cancelled"``)."""
        return experiment_status(self._wire.spec.desired_state)

    @property
    def dry_run(self) -> bool:
        """dry_run of the experiment configured as part of the run."""
        return bool(self._wire.spec.dry_run)

    @property
    def env(self) -> dict[str, str]:
        """env of the experiment configured as part of the run."""
        return dict(self._wire.spec.env or {})

    @property
    def _image(self) -> schemas.ImageSpec:
        return self._wire.spec.image or schemas.ImageSpec()

    @property
    def runner_framework(self) -> str | None:
        """runner_framework of the experiment configured as part of the run."""
        return self._image.framework

    @property
    def runner_dockerfile(self) -> str | None:
        """runner_dockerfile of the experiment configured as part of the run."""
        return self._image.dockerfile

    @property
    def runner_requirements_file(self) -> str | None:
        """runner_requirements_file of the experiment configured as part of the run."""
        info = self._image.dependency_file_info
        return info.path if info else None

    @property
    def runner_package_manager(self) -> str | None:
        """runner_package_manager of the experiment configured as part of the run (``"pip"``, ``"conda"``)."""
        info = self._image.dependency_file_info
        if info is None or info.package_manager in (None, schemas.PackageManager.UNSPECIFIED):
            return None
        return str(info.package_manager).removeprefix("PACKAGE_MANAGER_").lower()

    @property
    def instance_type(self) -> str | None:
        """instance_type of the experiment configured as part of the run."""
        return self._wire.spec.instance_type

    @property
    def resources(self) -> Resources:
        """resources of the experiment configured as part of the run."""
        spec = self._wire.spec
        return Resources.from_wire(spec.instance_type, spec.use_spot, spec.resources)

    @property
    def run_controller_id(self) -> str | None:
        """run_controller_id of the experiment configured as part of the run."""
        return self._wire.spec.run_controller_id

    @property
    def scratch(self) -> ScratchSpace | None:
        """scratch of the experiment configured as part of the run."""
        return ScratchSpace.from_wire(self._wire.spec.scratch)

    @property
    def source_code(self) -> str | None:
        """source_code of the experiment configured as part of the run."""
        return self._wire.spec.source_code

    @property
    def use_spot(self) -> bool:
        """use_spot of the experiment configured as part of the run."""
        return bool(self._wire.spec.use_spot)

    # ------------------------------------------------------------------ status

    @property
    def status(self) -> str:
        """status of the experiment: ``pending``, ``queued``, ``image_building``, ``running``, ``paused``,
        ``succeeded``, ``failed``, ``cancelled`` or ``deleted``."""
        return experiment_status(self._wire.status.phase)

    @property
    def message(self) -> str | None:
        """message of the experiment: why it is in its state (exit code, cancelled by user, ...)."""
        return self._wire.status.message

    @property
    def exit_code(self) -> int | None:
        """The exit code of the experiment's command, once it has ended."""
        return self._wire.status.exit_code

    @property
    def cost(self) -> float:
        """cost of the experiment so far, in US dollars."""
        return self._wire.status.cost or 0.0

    @property
    def hourly_cost(self) -> float:
        """hourly_cost of the experiment's instance type, in US dollars."""
        return self._wire.status.hourly_cost or 0.0

    @property
    def start_timestamp(self) -> datetime | None:
        """start_timestamp of the experiment configured as part of the run."""
        return self._wire.status.start_timestamp

    @property
    def finish_timestamp(self) -> datetime | None:
        """finish_timestamp of the experiment configured as part of the run."""
        return self._wire.status.finish_timestamp

    @property
    def deleted_timestamp(self) -> datetime | None:
        """deleted_timestamp of the experiment configured as part of the run."""
        return self._wire.status.deleted_timestamp

    # ------------------------------------------------------------------ actions

    def refresh(self) -> Experiment:
        """Fetch the experiment again; returns ``self``."""
        self._wire = self._api().get_experiment(self.id, cluster_id=self._cluster)
        return self

    def cancel(self) -> bool:
        """Request the grid platform cancels the experiment (a no-op once it has ended)."""
        if self.status not in TERMINAL_STATUSES:
            self._wire = self._api().cancel_experiment(self.id, name=self.name, cluster_id=self._cluster)
        return True

    def delete(self) -> bool:
        """Request the grid platform cancels the experiment, then deletes it."""
        self._api().delete_experiment(self.id, cluster_id=self._cluster)
        self._wire = self._wire.model_copy(
            update={"status": self._wire.status.model_copy(update={"phase": schemas.ExperimentState.DELETED})}
        )
        return True

    def wait(self, timeout: float | None = None, poll_interval: float = 1.0) -> str:
        """Poll until the experiment ends and return its status; ``WaitTimeout`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.refresh()
            if self.status in TERMINAL_STATUSES:
                return self.status
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"experiment {self.name!r} is still {self.status} after {timeout:g} s; wait longer "
                    "(wait(timeout=...)) or cancel it (cancel())"
                )
            left = poll_interval if deadline is None else min(poll_interval, max(0.0, deadline - time.monotonic()))
            time.sleep(left)

    def events(self) -> list[schemas.ExperimentEvent]:
        """The experiment's state changes with their messages, oldest first."""
        return self._api().experiment_events(self.id, cluster_id=self._cluster)

    def logs(self, tail: int | None = None, *, build: bool = False) -> str:
        """The experiment's log so far (its last ``tail`` lines if given); with ``build``, the log of the
        build of its dependency environment, which is kept apart."""
        api = self._api()
        if tail is not None:
            return api.experiment_logs(self.id, tail=tail, build=build, cluster_id=self._cluster).data
        parts: list[str] = []
        offset = 0
        while True:
            chunk = api.experiment_logs(self.id, offset=offset, build=build, cluster_id=self._cluster)
            parts.append(chunk.data)
            if not chunk.data or chunk.next_offset >= chunk.size:
                return "".join(parts)
            offset = chunk.next_offset

    def follow_logs(self, poll_interval: float = 0.5, *, build: bool = False) -> Iterator[str]:
        """Yield the log as it grows until the experiment has ended and all of it was read (with
        ``build``: the build log, until the build is over)."""
        return self._api().follow_logs(self.id, poll_interval=poll_interval, build=build, cluster_id=self._cluster)

    # ------------------------------------------------------------------ metrics and artifacts

    @property
    def metrics(self) -> dict[str, Metric]:
        """The metrics the experiment reported, by name: ``last``, ``min``, ``max``, ``count`` and the
        ``series`` of points (fetched on each access)."""
        return {m.name: Metric.from_wire(m) for m in self._api().experiment_metrics(self.id, cluster_id=self._cluster)}

    @property
    def best_metric(self) -> str | None:
        """The metric this experiment was chosen by, when it came from ``Run.best_experiment``."""
        return self._best[0] if self._best else None

    @property
    def best_value(self) -> float | None:
        """Its last value of ``best_metric``, when it came from ``Run.best_experiment``."""
        return self._best[1] if self._best else None

    @property
    def artifacts(self) -> list[Artifact]:
        """The files the experiment kept (``filename`` relative to its artifacts directory, ``size`` …)."""
        found = self._api().list_artifacts(self.id, cluster_id=self._cluster)
        return [Artifact.from_wire(a, self.name, self.run_name) for a in found]

    def download_artifacts(self, dest: str | Path, pattern: str | None = None) -> list[Path]:
        """Download the artifacts whose path matches the regex ``pattern`` (all if ``None``) to
        ``dest/<path>``; returns the files written."""
        return download(self._api(), self.id, self._cluster, self.artifacts, dest, pattern)

    def __repr__(self) -> str:
        fields = {
            "name": self.name,
            "status": self.status,
            "command": self.command,
            "parameters": self.parameters,
            "instance_type": self.instance_type,
            "cluster_id": self.cluster_id,
            "created_at": self.created_at,
            "start_timestamp": self.start_timestamp,
            "finish_timestamp": self.finish_timestamp,
        }
        body = "\n".join(f"{key:<18} = {value!r}," for key, value in fields.items())
        return f"{type(self).__name__}(\n{textwrap.indent(body, '    ')}\n)"
