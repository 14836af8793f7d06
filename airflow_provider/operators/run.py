"""``GridRunOperator``: start a sweep (a grid-ops ``Run``), wait for it, and hand on a small summary.

Retries and restarts re-attach instead of starting a second sweep: the run is remembered in Airflow's task
state store (``ResumableJobMixin``), and independently it has a deterministic name per task instance
(``airflow_provider.naming``), so a crash between submitting the run and saving its name still finds it.
A run that ended failed or cancelled is never reported as success: the next try starts a new attempt
(``<name>-a2`` ...). Waiting happens in the worker (``poll_interval``) or, with ``deferrable``, in the
triggerer (``GridRunTrigger``); ``timeout`` cancels the run and fails the task on both paths.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator, Context, ResumableJobMixin, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider.hooks.grid import DEFAULT_CONN_ID, GridHook
from airflow_provider.links.grid import GridRunLink
from airflow_provider.naming import attempt_name, default_run_name
from airflow_provider.states import ENDED_BADLY, RUNNING, SUCCEEDED, RemoteState
from airflow_provider.triggers.grid import GridRunTrigger
from grid_ops.errors import AuthenticationError, ConflictError, GridError, NotFoundError, ValidationError
from grid_ops.names import validate_run_name
from grid_ops.sdk import Actions, Resources, Run, ScratchSpace

MAX_ATTEMPTS = 99
"""How many runs one task instance may start (one more each time a try finds its last run failed)."""


def _seconds(value: float | timedelta | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else (None if value is None else float(value))


def _component(kind: type[Any], value: Any, argument: str) -> Any:
    """An SDK run component (``Resources``, ``Actions``, ``ScratchSpace``) from itself or a dict of its fields."""
    if value is None or isinstance(value, kind):
        return value
    if isinstance(value, dict):
        return kind(**value)
    raise ValidationError(f"{argument} must be a {kind.__name__} or a dict of its fields, got {value!r}")


def fail_fast(exc: GridError) -> AirflowException:
    """The Airflow exception for a grid-ops error: bad input and bad credentials are not retried."""
    if isinstance(exc, ValidationError | AuthenticationError):
        return AirflowFailException(str(exc))
    return AirflowException(str(exc))


class GridRunOperator(ResumableJobMixin, BaseOperator):
    """Start a grid-ops run (a command swept over a search space) and wait for it.

    Takes every argument of ``grid_ops.Run`` (``run_command``, ``name``, ``strategy``, ``env_vars``,
    ``datastore``, ``config_file`` ...; ``resources``, ``actions`` and ``scratch`` also as dicts), and:

    :param name: the run's name; default: deterministic per task instance (dag, task, DAG run, map index).
    :param path: the source directory uploaded for the run (default: the folder of the DAG file).
    :param grid_conn_id: the ``grid`` connection (see ``GridHook``).
    :param wait_for_completion: wait for the run to end (else return once it is submitted).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between status checks.
    :param timeout: seconds (or a timedelta) to wait; then the run is cancelled and the task fails.
    :param cancel_on_kill: cancel the run when the task is killed (worker or triggerer).
    :param best_metric: name a metric to report the best experiment by (``best_mode`` ``max`` or ``min``).
    :param reattach: attach to this task instance's earlier run instead of starting another (default).
    :param log_tail_lines: how many last log lines of each failed experiment go into the task log.

    Returns (XCom) ``{"name", "status", "url", "cost", "experiments": [{"name", "status"}], "best":
    {"name", "parameters", "metric", "value"} | None}``; with ``dry_run`` the plan instead.
    """

    template_fields: Sequence[str] = (
        "name",
        "run_command",
        "description",
        "strategy",
        "strategy_options",
        "env_vars",
        "dependency_file",
        "url",
        "path",
        "datastore",
        "datastore_mount_dir",
        "cluster_id",
        "config_file",
        "relative_working_dir",
        "metrics_pattern",
        "best_metric",
    )
    template_fields_renderers = {"env_vars": "json", "strategy_options": "json", "run_command": "bash"}
    operator_extra_links = (GridRunLink(),)
    ui_color = "#e8f0fe"
    external_id_key = "grid_run"

    def __init__(
        self,
        *,
        run_command: str | None = None,
        name: str | None = None,
        description: str | None = None,
        strategy: str | None = "grid_search",
        strategy_options: dict[str, Any] | None = None,
        num_trials: int = 0,
        env_vars: dict[str, Any] | None = None,
        framework: str = "lightning",
        dependency_file: str | None = "./requirements.txt",
        localdir: bool = False,
        url: str | None = None,
        path: str | None = None,
        dockerfile: str | None = None,
        auto_resume: bool = False,
        resources: Resources | dict[str, Any] | None = None,
        datastore: str | None = None,
        datastore_mount_dir: str | None = None,
        actions: Actions | dict[str, Any] | None = None,
        scratch: ScratchSpace | dict[str, Any] | None = None,
        cluster_id: str | None = None,
        config_file: str | None = None,
        dry_run: bool = False,
        relative_working_dir: str | None = None,
        max_parallel: int | None = None,
        metrics_pattern: str | None = None,
        grid_conn_id: str = DEFAULT_CONN_ID,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | timedelta | None = None,
        cancel_on_kill: bool = True,
        best_metric: str | None = None,
        best_mode: str = "max",
        reattach: bool = True,
        log_tail_lines: int = 20,
        **kwargs: Any,
    ) -> None:
        super().__init__(durable=reattach, **kwargs)
        if run_command is None and config_file is None:
            raise ValueError(f"{self.task_id}: GridRunOperator needs run_command (or a config_file with one)")
        if best_mode not in ("max", "min"):
            raise ValueError(f"{self.task_id}: best_mode must be 'max' or 'min', got {best_mode!r}")
        if poll_interval <= 0:
            raise ValueError(f"{self.task_id}: poll_interval must be > 0 seconds, got {poll_interval!r}")
        self.run_command = run_command
        self.name = name
        self.description = description
        self.strategy = strategy
        self.strategy_options = strategy_options
        self.num_trials = num_trials
        self.env_vars = env_vars
        self.framework = framework
        self.dependency_file = dependency_file
        self.localdir = localdir
        self.url = url
        self.path = path
        self.dockerfile = dockerfile
        self.auto_resume = auto_resume
        self.grid_resources = resources  # BaseOperator.resources is Airflow's own (executor resources)
        self.datastore = datastore
        self.datastore_mount_dir = datastore_mount_dir
        self.actions = actions
        self.scratch = scratch
        self.cluster_id = cluster_id
        self.config_file = config_file
        self.grid_dry_run = dry_run  # BaseOperator.dry_run() is a method
        self.relative_working_dir = relative_working_dir
        self.max_parallel = max_parallel
        self.metrics_pattern = metrics_pattern
        self.grid_conn_id = grid_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.timeout = _seconds(timeout)
        self.cancel_on_kill = cancel_on_kill
        self.best_metric = best_metric
        self.best_mode = best_mode
        self.reattach = reattach
        self.log_tail_lines = log_tail_lines
        self._current: dict[str, Any] | None = None
        self._result: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> GridHook:
        """The hook of ``grid_conn_id`` (built after templates are rendered)."""
        return GridHook(grid_conn_id=self.grid_conn_id, cluster_id=self.cluster_id)

    # ------------------------------------------------------------------ entry points

    def execute(self, context: Context) -> Any:
        """Plan (``dry_run``), or submit or re-attach, then wait as configured."""
        try:
            if self.grid_dry_run:
                return self._plan(context)
            return self.execute_resumable(context)
        except GridError as exc:
            raise fail_fast(exc) from exc

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: the run succeeded, failed, timed out, or could not be checked."""
        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        ref = {"name": event["name"], "cluster_id": event.get("cluster_id")}
        self._current = ref
        try:
            if event["status"] == "success":
                return self.get_job_result(ref, context)
            if event["status"] == "failure":
                self._raise_failed(ref, RemoteState(**event["state"]))
            raise AirflowException(f"{self.task_id}: {event.get('message')}")
        except GridError as exc:
            raise fail_fast(exc) from exc

    def on_kill(self) -> None:
        """The task is being killed in the worker: cancel the run when ``cancel_on_kill``."""
        if self.cancel_on_kill and self._current is not None:
            self.log.info("Task killed: cancelling run %s", self._current["name"])
            try:
                self.hook.cancel_run(self._current["name"], self._current.get("cluster_id"))
            except GridError as exc:
                self.log.error("Cancelling run %s failed: %s", self._current["name"], exc)

    # ------------------------------------------------------------------ ResumableJobMixin

    def submit_job(self, context: Context) -> dict[str, Any]:
        """Re-attach to this task instance's live or succeeded run, else start the next attempt."""
        base = validate_run_name(self.name) if self.name else self._default_name(context)
        cluster = self.hook.cluster_id
        attempt, latest = 1, None
        while attempt <= MAX_ATTEMPTS:
            try:
                latest = self.hook.get_run_state(attempt_name(base, attempt), cluster)
            except NotFoundError:
                break
            attempt += 1
        if latest is not None and self.reattach and latest.outcome in (RUNNING, SUCCEEDED):
            self.log.info("Re-attaching to run %s (%s), started by an earlier try", latest.name, latest.status)
            return self._track(context, {"name": latest.name, "cluster_id": cluster})
        if latest is not None:
            self.log.info("Run %s ended %s; starting a new attempt", latest.name, latest.status)
        while attempt <= MAX_ATTEMPTS:
            name = attempt_name(base, attempt)
            try:
                self._build_run(name, cluster, context).start()
            except ConflictError:  # taken meanwhile (or by a deleted run): the next attempt's name
                attempt += 1
                continue
            self.log.info("Started run %s on cluster %s", name, cluster)
            return self._track(context, {"name": name, "cluster_id": cluster})
        raise AirflowFailException(f"{self.task_id}: {MAX_ATTEMPTS} runs named {base}[-aN] exist; pass another name=")

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """The outcome of a remembered run (``running`` also for states this version does not know)."""
        try:
            return self.hook.get_run_state(external_id["name"], external_id.get("cluster_id")).outcome
        except NotFoundError:
            return "missing"  # deleted meanwhile: neither active nor succeeded, so a new attempt starts

    def is_job_active(self, status: str) -> bool:
        """Whether the remembered run is still going."""
        return status == RUNNING

    def is_job_succeeded(self, status: str) -> bool:
        """Whether the remembered run succeeded."""
        return status == SUCCEEDED

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        """Wait for the run (here, or deferred to the triggerer); returns the result once it succeeded."""
        ref = self._track(context, dict(external_id))
        if not self.wait_for_completion:
            return self.get_job_result(ref, context)
        deadline = None if self.timeout is None else time.time() + self.timeout
        if self.deferrable:
            self.defer(
                trigger=GridRunTrigger(
                    name=ref["name"],
                    cluster_id=ref.get("cluster_id"),
                    grid_conn_id=self.grid_conn_id,
                    poll_interval=self.poll_interval,
                    end_time=deadline,
                    cancel_on_kill=self.cancel_on_kill,
                    cancel_on_timeout=True,
                ),
                method_name="execute_complete",
            )
        state = self._wait(ref, deadline)
        if state.outcome != SUCCEEDED:
            self._raise_failed(ref, state)
        return self.get_job_result(ref, context)

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        """The XCom summary of the run (computed once per try)."""
        if self._current is None:
            self._track(context, dict(external_id))
        if self._result is None or self._result["name"] != external_id["name"]:
            self._result = self._summary(external_id)
        return self._result

    # ------------------------------------------------------------------ helpers

    def _default_name(self, context: Context) -> str:
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return default_run_name(ti.dag_id, ti.task_id, ti.run_id, map_index)

    def _track(self, context: Context, ref: dict[str, Any]) -> dict[str, Any]:
        """Remember the run for ``on_kill`` and show the link to it from now on."""
        self._current = ref
        GridRunLink.persist(context, self.hook.run_url(ref["name"], ref.get("cluster_id")))
        return ref

    def _build_run(self, name: str, cluster: str | None, context: Context) -> Run:
        path = self.path
        if path is None and self.url is None:
            path = context["dag"].folder if "dag" in context else None
        return Run(
            name=name,
            run_command=self.run_command,
            description=self.description,
            strategy=self.strategy,
            strategy_options=self.strategy_options,
            num_trials=self.num_trials,
            env_vars=self.env_vars,
            framework=self.framework,
            dependency_file=self.dependency_file,
            localdir=self.localdir,
            url=self.url,
            path=Path(path) if path is not None else None,
            dockerfile=self.dockerfile,
            auto_resume=self.auto_resume,
            resources=_component(Resources, self.grid_resources, "resources"),
            datastore=self.datastore,
            datastore_mount_dir=self.datastore_mount_dir,
            actions=_component(Actions, self.actions, "actions"),
            scratch=_component(ScratchSpace, self.scratch, "scratch"),
            cluster_id=cluster,
            config_file=self.config_file,
            dry_run=self.grid_dry_run,
            relative_working_dir=self.relative_working_dir,
            max_parallel=self.max_parallel,
            metrics_pattern=self.metrics_pattern,
            client=self.hook.client,
        )

    def _plan(self, context: Context) -> dict[str, Any]:
        name = validate_run_name(self.name) if self.name else self._default_name(context)
        run = self._build_run(name, self.hook.cluster_id, context)
        run.start()
        plan = run.plan or []
        self.log.info("Dry run of %s: %d experiments, $%.4f per hour", name, len(plan), run.estimated_hourly_cost)
        return {"name": name, "status": "dry_run", "plan": plan, "estimated_hourly_cost": run.estimated_hourly_cost}

    def _wait(self, ref: dict[str, Any], deadline: float | None) -> RemoteState:
        """Poll in the worker until the run ends; at ``deadline`` cancel it and fail the task."""
        last = None
        while True:
            state = self.hook.get_run_state(ref["name"], ref.get("cluster_id"))
            progress = (state.status, tuple(sorted(state.counts.items())))
            if progress != last:
                counts = ", ".join(f"{n} {s}" for s, n in sorted(state.counts.items()) if n)
                self.log.info("Run %s is %s (%s)", state.name, state.status, counts or "no experiments yet")
                last = progress
            if state.terminal:
                return state
            now = time.time()
            if deadline is not None and now >= deadline:
                self.hook.cancel_run(ref["name"], ref.get("cluster_id"))
                raise AirflowException(
                    f"run {ref['name']} is still {state.status} after the timeout of {self.timeout:g} s; "
                    "it was cancelled"
                )
            time.sleep(self.poll_interval if deadline is None else min(self.poll_interval, deadline - now))

    def _summary(self, ref: dict[str, Any]) -> dict[str, Any]:
        run = Run(ref["name"], cluster_id=ref.get("cluster_id"), client=self.hook.client)
        experiments = run.experiments
        for experiment in experiments:
            values = " ".join(f"{k}={v}" for k, v in experiment.parameters.items())
            self.log.info("  %-28s %-10s %s", experiment.name, experiment.status, values)
        best = None
        if self.best_metric:
            try:
                found = run.best_experiment(self.best_metric, self.best_mode)
            except NotFoundError as exc:
                self.log.warning("No best experiment by %s: %s", self.best_metric, exc)
            else:
                best = {
                    "name": found.name,
                    "parameters": found.parameters,
                    "metric": self.best_metric,
                    "value": found.best_value,
                }
                self.log.info("Best experiment by %s (%s): %s = %s", self.best_metric, self.best_mode, found.name, best)
        return {
            "name": run.name,
            "status": run.status,
            "url": self.hook.run_url(run.name, ref.get("cluster_id")),
            "cost": round(run.cost, 6),
            "experiments": [{"name": e.name, "status": e.status} for e in experiments],
            "best": best,
        }

    def _raise_failed(self, ref: dict[str, Any], state: RemoteState) -> None:
        """Put the failing experiments' messages and log tails in the task log, then fail the task."""
        run = Run(ref["name"], cluster_id=ref.get("cluster_id"), client=self.hook.client)
        bad = [e for e in run.experiments if e.status in ENDED_BADLY]
        lines = []
        for experiment in bad:
            lines.append(f"{experiment.name}: {experiment.status}: {experiment.message or 'no message'}")
            try:
                tail = experiment.logs(tail=self.log_tail_lines)
            except GridError as exc:
                tail = f"(log unavailable: {exc})"
            self.log.error(
                "Experiment %s %s: %s\n--- last %d log lines ---\n%s",
                experiment.name,
                experiment.status,
                experiment.message,
                self.log_tail_lines,
                tail.rstrip(),
            )
        shown = "; ".join(lines[:5]) + (f"; and {len(lines) - 5} more" if len(lines) > 5 else "")
        raise AirflowException(
            f"run {state.name} ended {state.status}"
            + (f" ({state.message})" if state.message else "")
            + (f": {shown}" if shown else "")
        )
