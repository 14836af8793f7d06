"""``RunSensor`` and ``ExperimentSensor``: wait until a run or an experiment reaches a state.

Poke, reschedule and deferrable modes. ``target_states`` (default ``succeeded``) succeed the task;
``failure_states`` (default ``failed``, ``cancelled``, ``deleted``) and any other end fail it at once with
the remote message, instead of a timeout later.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator, Context, conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_provider.hooks.grid import DEFAULT_CONN_ID, GridHook
from airflow_provider.operators.run import fail_fast
from airflow_provider.states import CANCELLED, DELETED, FAILED, SUCCEEDED, RemoteState, check_statuses
from airflow_provider.triggers.grid import GridExperimentTrigger, GridRunTrigger, _GridStateTrigger
from grid_ops.errors import GridError


class _GridStateSensor(BaseSensorOperator):
    """Common part of the sensors: state checks, failure handling, deferral."""

    kind = "run"
    trigger_class: type[_GridStateTrigger] = GridRunTrigger
    ui_color = "#fef7e0"

    def __init__(
        self,
        *,
        target_states: Iterable[str] = (SUCCEEDED,),
        failure_states: Iterable[str] = (FAILED, CANCELLED, DELETED),
        cluster_id: str | None = None,
        grid_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_states = check_statuses(list(target_states), "target_states")
        self.failure_states = check_statuses(list(failure_states), "failure_states")
        if self.target_states & self.failure_states:
            raise ValueError(
                f"{self.task_id}: {sorted(self.target_states & self.failure_states)} are in both "
                "target_states and failure_states"
            )
        self.cluster_id = cluster_id
        self.grid_conn_id = grid_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> GridHook:
        """The hook of ``grid_conn_id`` (built after templates are rendered)."""
        return GridHook(grid_conn_id=self.grid_conn_id, cluster_id=self.cluster_id)

    def _target(self) -> str:
        raise NotImplementedError

    def _state(self) -> RemoteState:
        raise NotImplementedError

    def _fail(self, state: RemoteState) -> None:
        raise AirflowFailException(
            f"{self.kind} {state.name} is {state.status}" + (f": {state.message}" if state.message else "")
        )

    def poke(self, context: Context) -> bool:
        """True once the target state is reached; a failure state or another end fails the task."""
        try:
            state = self._state()
        except GridError as exc:
            raise fail_fast(exc) from exc
        self.log.info("%s %s is %s", self.kind.capitalize(), state.name, state.status)
        if state.status in self.target_states:
            return True
        if state.status in self.failure_states or state.terminal:
            self._fail(state)
        return False

    def execute(self, context: Context) -> Any:
        """Poke (or reschedule) as usual, or check once and then defer to the triggerer."""
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else float(self.timeout)
        self.defer(
            trigger=self.trigger_class(
                name=self._target(),
                cluster_id=self.cluster_id,
                grid_conn_id=self.grid_conn_id,
                poll_interval=float(self.poke_interval),
                target_states=self.target_states,
                failure_states=self.failure_states,
                end_time=time.time() + timeout,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger fired: done, or fail with the remote message."""
        if not event:
            raise AirflowException(f"{self.task_id}: resumed without a trigger event")
        if event["status"] == "success":
            self.log.info("%s", event["message"])
            return
        if event["status"] == "failure":
            self._fail(RemoteState(**event["state"]))
        raise AirflowException(f"{self.task_id}: {event['message']}")


class RunSensor(_GridStateSensor):
    """Wait for the run ``run_name`` (templated) to reach ``target_states``."""

    template_fields: Sequence[str] = ("run_name", "cluster_id")
    kind = "run"
    trigger_class = GridRunTrigger

    def __init__(self, *, run_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_name = run_name

    def _target(self) -> str:
        return self.run_name

    def _state(self) -> RemoteState:
        return self.hook.get_run_state(self.run_name, self.cluster_id)


class ExperimentSensor(_GridStateSensor):
    """Wait for the experiment ``experiment_name`` (templated, ``<run>-exp<N>``) to reach ``target_states``."""

    template_fields: Sequence[str] = ("experiment_name", "cluster_id")
    kind = "experiment"
    trigger_class = GridExperimentTrigger

    def __init__(self, *, experiment_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.experiment_name = experiment_name

    def _target(self) -> str:
        return self.experiment_name

    def _state(self) -> RemoteState:
        return self.hook.get_experiment_state(self.experiment_name, self.cluster_id)
