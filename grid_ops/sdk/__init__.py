"""The user-facing SDK: ``Run``, ``Experiment``, the run components, ``api``, ``login``, ``list_runs``."""

from grid_ops.sdk import clusters as api
from grid_ops.sdk.auth import login
from grid_ops.sdk.datastore import Datastore, list_datastores
from grid_ops.sdk.experiment import Experiment
from grid_ops.sdk.resources import Actions, Resources, ScratchSpace
from grid_ops.sdk.run import Run
from grid_ops.sdk.runs import list_runs

__all__ = [
    "Actions",
    "Datastore",
    "Experiment",
    "Resources",
    "Run",
    "ScratchSpace",
    "api",
    "list_datastores",
    "list_runs",
    "login",
]
