"""Pydantic models of the Grid v1 wire format, shared by the client and the control plane.

Field names are camelCase on the wire (``grid-wire-v1.md``); Python code uses snake_case. Every model
ignores unknown fields so that older and newer peers keep talking. Our additions (logs, plan, metrics,
exit codes) follow the same conventions and never rename a field of the original dialect.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base of every wire model: camelCase aliases, unknown fields ignored, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
        coerce_numbers_to_str=True,
    )

    def wire(self) -> dict[str, object]:
        """The JSON-ready dict sent on the wire: camelCase, ``None`` fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --------------------------------------------------------------------------- enums


class RunState(StrEnum):
    UNSPECIFIED = "RUN_STATE_UNSPECIFIED"
    BUILDING = "RUN_STATE_BUILDING"
    PENDING = "RUN_STATE_PENDING"
    RUNNING = "RUN_STATE_RUNNING"
    SUCCEEDED = "RUN_STATE_SUCCEEDED"
    FAILED = "RUN_STATE_FAILED"
    CANCELED = "RUN_STATE_CANCELED"
    DELETED = "RUN_STATE_DELETED"


class ExperimentState(StrEnum):
    UNSPECIFIED = "EXPERIMENT_STATE_UNSPECIFIED"
    PENDING = "EXPERIMENT_STATE_PENDING"
    QUEUED = "EXPERIMENT_STATE_QUEUED"
    RUNNING = "EXPERIMENT_STATE_RUNNING"
    SUCCEEDED = "EXPERIMENT_STATE_SUCCEEDED"
    FAILED = "EXPERIMENT_STATE_FAILED"
    CANCELLED = "EXPERIMENT_STATE_CANCELLED"
    DELETED = "EXPERIMENT_STATE_DELETED"
    PAUSED = "EXPERIMENT_STATE_PAUSED"
    IMAGE_BUILDING = "EXPERIMENT_STATE_IMAGE_BUILDING"


EXPERIMENT_TERMINAL = frozenset(
    {
        ExperimentState.SUCCEEDED,
        ExperimentState.FAILED,
        ExperimentState.CANCELLED,
        ExperimentState.DELETED,
    }
)
RUN_TERMINAL = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED, RunState.DELETED})


class ClusterState(StrEnum):
    UNSPECIFIED = "CLUSTER_STATE_UNSPECIFIED"
    PENDING = "CLUSTER_STATE_PENDING"
    QUEUED = "CLUSTER_STATE_QUEUED"
    RUNNING = "CLUSTER_STATE_RUNNING"
    FAILED = "CLUSTER_STATE_FAILED"
    DELETED = "CLUSTER_STATE_DELETED"


class ClusterType(StrEnum):
    UNSPECIFIED = "CLUSTER_TYPE_UNSPECIFIED"
    LEGACY = "CLUSTER_TYPE_LEGACY"
    GLOBAL = "CLUSTER_TYPE_GLOBAL"
    BYOC = "CLUSTER_TYPE_BYOC"


class Availability(StrEnum):
    UNSPECIFIED = "AVAILABILITY_UNSPECIFIED"
    AVAILABLE = "AVAILABILITY_AVAILABLE"
    LIMITED = "AVAILABILITY_LIMITED"
    UNAVAILABLE = "AVAILABILITY_UNAVAILABLE"


class PackageManager(StrEnum):
    UNSPECIFIED = "PACKAGE_MANAGER_UNSPECIFIED"
    PIP = "PACKAGE_MANAGER_PIP"
    CONDA = "PACKAGE_MANAGER_CONDA"


class ExperimentStrategy(StrEnum):
    UNSPECIFIED = "EXPERIMENT_STRATEGY_UNSPECIFIED"
    SINGLE = "EXPERIMENT_STRATEGY_SINGLE"
    MULTI_NODE = "EXPERIMENT_STRATEGY_MULTI_NODE"


# --------------------------------------------------------------------------- errors


class ErrorDetail(WireModel):
    message: str


class ErrorBody(WireModel):
    """The error shape of every non-2xx answer."""

    code: int
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


# --------------------------------------------------------------------------- shared pieces


class Resources(WireModel):
    """``V1Resources``: strings on the wire, as in the original dialect."""

    cpu: str | None = None
    gpu: str | None = None
    memory_mb: str | None = None
    storage_gb: str | None = None
    extra: dict[str, str] | None = None


class RunActions(WireModel):
    on_build: list[str] | None = None
    on_build_end: list[str] | None = None
    on_build_start: list[str] | None = None
    on_experiment_end: list[str] | None = None
    on_experiment_start: list[str] | None = None


class DatastoreMount(WireModel):
    id: str | None = None
    mount_path: str | None = None


class DependencyFileInfo(WireModel):
    package_manager: PackageManager | None = None
    path: str | None = None


class ImageSpec(WireModel):
    dependency_file_info: DependencyFileInfo | None = None
    dockerfile: str | None = None
    framework: str | None = None


class ScratchSpace(WireModel):
    mount_path: str | None = None
    size_gb: int | None = None


# --------------------------------------------------------------------------- runs


class RunSpec(WireModel):
    """``V1RunSpec``. ``runControllerCommand`` carries the run command; ``sweepType`` the strategy."""

    actions: RunActions | None = None
    auto_resume: bool | None = None
    cluster_id: str | None = None
    datastores: list[DatastoreMount] | None = None
    desired_state: RunState | None = None
    dry_run: bool | None = None
    env: dict[str, str] | None = None
    image: ImageSpec | None = None
    instance_type: str | None = None
    relative_work_dir: str | None = None
    resources: Resources | None = None
    run_controller_command: str | None = None
    run_controller_id: str | None = None
    scratch: list[ScratchSpace] | None = None
    source_code: str | None = None
    strategy: ExperimentStrategy | None = None
    sweep_options: dict[str, str] | None = None
    sweep_type: str | None = None
    use_spot: bool | None = None
    user_id: str | None = None
    # additions
    max_parallel: int | None = None


class ExperimentCounts(WireModel):
    cancelled: int = 0
    deleted: int = 0
    failed: int = 0
    pending: int = 0
    running: int = 0
    succeeded: int = 0


class PlannedExperiment(WireModel):
    """One experiment of a dry run's plan (our addition)."""

    name: str
    command: list[str]
    parameters: dict[str, str]
    instance_type: str
    hourly_cost: float


class RunPlan(WireModel):
    """What a dry run answers (our addition): the experiments it would start and their cost."""

    experiments: list[PlannedExperiment]
    instance_type: str
    hourly_cost_per_experiment: float
    hourly_cost_all_parallel: float
    max_concurrent: int


class RunStatus(WireModel):
    cost: float | None = None
    deleted_timestamp: datetime | None = None
    experiment_counts: ExperimentCounts | None = None
    experiment_ids: list[str] | None = None
    finish_timestamp: datetime | None = None
    hourly_cost: float | None = None
    message: str | None = None
    phase: RunState | None = None
    start_timestamp: datetime | None = None
    upload_url: str | None = None
    # additions
    plan: RunPlan | None = None


class Run(WireModel):
    """``V1Run``."""

    created_at: datetime | None = None
    description: str | None = None
    id: str
    name: str
    spec: RunSpec
    status: RunStatus
    updated_at: datetime | None = None


class CreateRunRequest(WireModel):
    """``V1CreateRunRequest``."""

    description: str | None = None
    local_dir: bool | None = None
    name: str | None = None
    spec: RunSpec


class UpdateRunRequest(WireModel):
    """``Body8``: PUT a run back, e.g. with ``spec.desiredState`` = cancelled."""

    name: str | None = None
    spec: RunSpec | None = None


class ListRunsResponse(WireModel):
    next_page_token: str | None = None
    previous_page_token: str | None = None
    runs: list[Run]
    total_size: str | None = None


class DeleteResponse(WireModel):
    """The empty answers of the delete endpoints."""


# --------------------------------------------------------------------------- experiments


class ExperimentSpec(WireModel):
    """``Externalv1ExperimentSpec``; ``parameters`` is our addition (the swept values)."""

    actions: RunActions | None = None
    auto_resume: bool | None = None
    cluster_id: str | None = None
    command: list[str] | None = None
    datastores: list[DatastoreMount] | None = None
    desired_state: ExperimentState | None = None
    dry_run: bool | None = None
    env: dict[str, str] | None = None
    image: ImageSpec | None = None
    instance_type: str | None = None
    resources: Resources | None = None
    run_controller_id: str | None = None
    run_id: str | None = None
    scratch: list[ScratchSpace] | None = None
    source_code: str | None = None
    use_spot: bool | None = None
    user_id: str | None = None
    # additions
    parameters: dict[str, str] | None = None


class ExperimentStatus(WireModel):
    cost: float | None = None
    deleted_timestamp: datetime | None = None
    finish_timestamp: datetime | None = None
    hourly_cost: float | None = None
    message: str | None = None
    phase: ExperimentState | None = None
    start_timestamp: datetime | None = None
    # additions
    exit_code: int | None = None


class Experiment(WireModel):
    """``Externalv1Experiment``."""

    created_at: datetime | None = None
    description: str | None = None
    id: str
    name: str
    spec: ExperimentSpec
    status: ExperimentStatus
    updated_at: datetime | None = None


class UpdateExperimentRequest(WireModel):
    """``Body7``."""

    name: str | None = None
    spec: ExperimentSpec | None = None


class ListExperimentsResponse(WireModel):
    experiments: list[Experiment]
    next_page_token: str | None = None
    previous_page_token: str | None = None
    total_size: str | None = None


class ExperimentEvent(WireModel):
    desired_state: ExperimentState | None = None
    id: str
    message: str | None = None
    phase: ExperimentState | None = None
    timestamp: datetime


class ListExperimentEventsResponse(WireModel):
    events: list[ExperimentEvent]


class LogChunk(WireModel):
    """Our addition: a slice of an experiment's log, from ``offset`` (bytes) on.

    ``nextOffset`` is where the next call continues; ``eof`` is true once the experiment is terminal and
    everything it wrote has been served, so a follower knows when to stop.
    """

    data: str
    offset: int
    next_offset: int
    size: int
    eof: bool


# --------------------------------------------------------------------------- clusters


class ClusterSpec(WireModel):
    cluster_type: ClusterType | None = None
    cost_factor: str | None = None
    desired_state: ClusterState | None = None
    user_id: str | None = None
    # additions
    executor: str | None = None


class ClusterStatus(WireModel):
    last_healthcheck_timestamp: datetime | None = None
    phase: ClusterState | None = None
    reason: str | None = None


class Cluster(WireModel):
    """``Externalv1Cluster`` (also the shape of ``V1GetClusterResponse``)."""

    created_at: datetime | None = None
    id: str
    name: str
    spec: ClusterSpec
    status: ClusterStatus


class ListClustersResponse(WireModel):
    clusters: list[Cluster]
    default_cluster: str | None = None


class InstanceType(WireModel):
    """``V1InstanceType``; ``spotHourlyCost``/``memoryMb`` are our additions."""

    availability: Availability | None = None
    cpu: str | None = None
    gpu: str | None = None
    hourly_cost: float | None = None
    memory: str | None = None
    name: str
    overprovisioned_ondemand_count: int | None = None
    spot: bool | None = None
    # additions
    spot_hourly_cost: float | None = None
    memory_mb: int | None = None


class ListInstanceTypesResponse(WireModel):
    instance_types: list[InstanceType]


# --------------------------------------------------------------------------- auth


class LoginRequest(WireModel):
    api_key: str
    duration: str | None = None
    username: str


class LoginResponse(WireModel):
    token: str


class RefreshRequest(WireModel):
    duration: str | None = None


class UserStatus(WireModel):
    completed_signup: bool | None = None
    installed_grid: bool | None = None
    verified: bool | None = None
    verified_at: datetime | None = None


class User(WireModel):
    """``V1GetUserResponse``. ``apiKey`` is never sent back: keys are stored hashed."""

    api_key: str | None = None
    email: str | None = None
    first_name: str | None = None
    id: str
    last_name: str | None = None
    picture_url: str | None = None
    status: UserStatus | None = None
    username: str
    # additions
    team: str | None = None
