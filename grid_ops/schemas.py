"""Pydantic models of the Grid v1 wire format, shared by the client and the control plane.

Field names are camelCase on the wire (``grid-wire-v1.md``); Python code uses snake_case. Every model
ignores unknown fields so that older and newer peers keep talking. Our additions (logs, plan, metrics,
exit codes) follow the same conventions and never rename a field of the original dialect.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
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
    """``V1DatastoreMounts``: ``id`` is a version's id, ``name:version`` or ``name`` in a request; the stored
    run answers the id of the version it was pinned to, with our additions ``name`` and ``version``."""

    id: str | None = None
    mount_path: str | None = None
    # additions, set by the server
    name: str | None = None
    version: int | None = None


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
    metrics_pattern: str | None = None
    source_commit: str | None = None
    """The commit a git ``sourceCode`` was resolved to when the run was created (set by the server)."""


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


# --------------------------------------------------------------------------- metrics and artifacts


class MetricPoint(WireModel):
    """Our addition: one metric point a runner reports; ``seq`` makes a retried batch count once."""

    name: str
    value: float
    step: int | None = None
    timestamp: datetime | None = None
    seq: int | None = None


class ReportMetricsRequest(WireModel):
    """Our addition: body of ``POST /v1/runner/experiments/{id}/metrics``."""

    points: list[MetricPoint]


class ReportMetricsResponse(WireModel):
    accepted: int


class RunnerPhaseRequest(WireModel):
    """Our addition: body of ``POST /v1/runner/experiments/{id}/phase``: the runner says its experiment
    waits for its environment's build (``EXPERIMENT_STATE_IMAGE_BUILDING``) or runs its command
    (``EXPERIMENT_STATE_RUNNING``)."""

    phase: ExperimentState


class BuildLogWritten(WireModel):
    """Our addition: the answer to ``POST /v1/runner/experiments/{id}/buildLog``: the stored log's size."""

    size: int


class MetricSample(WireModel):
    """One point of a metric's series."""

    step: int | None = None
    value: float
    timestamp: datetime | None = None


class MetricSummary(WireModel):
    """Our addition: one metric of an experiment, summarised, with its series when asked for."""

    name: str
    last: float
    min: float
    max: float
    last_step: int | None = None
    count: int
    series: list[MetricSample] | None = None


class ExperimentMetricsResponse(WireModel):
    metrics: list[MetricSummary]


class ExperimentLastMetrics(WireModel):
    """An experiment's name and the last value of each of its metrics."""

    name: str
    metrics: dict[str, float]


class RunMetricsResponse(WireModel):
    experiments: list[ExperimentLastMetrics]


class BestExperimentResponse(WireModel):
    """Our addition: the experiment of a run with the best last value of ``metric``."""

    experiment: Experiment
    metric: str
    value: float


class Artifact(WireModel):
    """``V1Artifact``: ``filename`` is the path under the experiment's artifacts directory."""

    filename: str
    last_modified: datetime | None = None
    md5_checksum: str | None = None
    size_bytes: str | None = None
    url: str | None = None


class ListExperimentArtifactsResponse(WireModel):
    artifacts: list[Artifact]
    next_page_token: str | None = None
    previous_page_token: str | None = None


class ArtifactUploadResponse(WireModel):
    """Our addition: what ``PUT /v1/runner/experiments/{id}/artifacts/{path}`` stored."""

    size: int
    md5_checksum: str


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


# --------------------------------------------------------------------------- datastores


class DatastoreOptimizationStatus(StrEnum):
    """A datastore version's phase. ``UNSPECIFIED`` reads "uploading", as in the original dialect."""

    UNSPECIFIED = "DATASTORE_OPTIMIZATION_STATUS_UNSPECIFIED"
    SUCCEEDED = "DATASTORE_OPTIMIZATION_STATUS_SUCCEEDED"
    FAILED = "DATASTORE_OPTIMIZATION_STATUS_FAILED"
    OPTIMIZING = "DATASTORE_OPTIMIZATION_STATUS_OPTIMIZING"
    DELETED = "DATASTORE_OPTIMIZATION_STATUS_DELETED"
    POD_PENDING = "DATASTORE_OPTIMIZATION_STATUS_POD_PENDING"
    CLOUD_RESOURCES_PENDING = "DATASTORE_OPTIMIZATION_STATUS_CLOUD_RESOURCES_PENDING"


class DatastoreSourceType(StrEnum):
    UNSPECIFIED = "DATASTORE_SOURCE_TYPE_UNSPECIFIED"
    HTTP_URL = "DATASTORE_SOURCE_TYPE_HTTP_URL"
    OBJECT_STORE = "DATASTORE_SOURCE_TYPE_OBJECT_STORE"
    OBJECT_STORE_REFERENCE_ONLY = "DATASTORE_SOURCE_TYPE_OBJECT_STORE_REFERENCE_ONLY"
    EXPANDED_FILES = "DATASTORE_SOURCE_TYPE_EXPANDED_FILES"
    COMPRESSED_FILE = "DATASTORE_SOURCE_TYPE_COMPRESSED_FILE"
    FSX = "DATASTORE_SOURCE_TYPE_FSX"


class DatastoreState(StrEnum):
    UNSPECIFIED = "DATASTORE_STATE_UNSPECIFIED"
    UPLOADING = "DATASTORE_STATE_UPLOADING"
    CREATED = "DATASTORE_STATE_CREATED"
    DELETED = "DATASTORE_STATE_DELETED"


class DatastoreSpec(WireModel):
    """``Externalv1DatastoreSpec``; ``sizeBytes``, ``fileCount``, ``team`` and ``uploadToken`` are additions.

    ``uploadToken`` (client-chosen) makes creation idempotent: creating again with the same token answers
    the version the first request created."""

    cluster_id: str | None = None
    size_mib: int | None = None
    source: str | None = None
    source_type: DatastoreSourceType | None = None
    uploaded_at: datetime | None = None
    user_id: str | None = None
    version: int | None = None
    # additions
    size_bytes: int | None = None
    file_count: int | None = None
    team: str | None = None
    upload_token: str | None = None


class DatastoreStatus(WireModel):
    """``Externalv1DatastoreStatus``; ``state`` (the ``V1DatastoreState``) is our addition."""

    message: str | None = None
    phase: DatastoreOptimizationStatus | None = None
    state: DatastoreState | None = None


class Datastore(WireModel):
    """``Externalv1Datastore``, also the shape of the create, get and update answers."""

    created_at: datetime | None = None
    id: str
    name: str
    spec: DatastoreSpec
    status: DatastoreStatus
    updated_at: datetime | None = None


class CreateDatastoreRequest(WireModel):
    """``V1CreateDatastoreRequest``."""

    name: str
    spec: DatastoreSpec


class UpdateDatastoreSpec(DatastoreSpec):
    """``Externalv1DatastoreSpec`` as an update sends it (``fsxSpec`` included, to be refused clearly)."""

    fsx_spec: dict[str, object] | None = None


class UpdateDatastoreRequest(WireModel):
    """``Body6``: ``PUT /v1/core/{spec.clusterId}/datastores/{id}``. Only ``spec.source`` of a version that is
    still uploading may change; every other field must be left out or equal what the version has."""

    name: str | None = None
    spec: UpdateDatastoreSpec | None = None


class ListDatastoresResponse(WireModel):
    datastores: list[Datastore]
    next_page_token: str | None = None
    previous_page_token: str | None = None
    total_size: str | None = None


class PresignedUploadUrl(WireModel):
    """``V1PresignedUploadUrl``: where to PUT one part (the answer's ``ETag`` header is kept)."""

    part_number: str
    url: str


class NamedByBlake3(WireModel):
    """A request part that names content: by ``blake3``. One from a grid-ops that named content by SHA-256
    (``sha256``) is refused with a message saying so, instead of a missing field."""

    @model_validator(mode="before")
    @classmethod
    def _no_sha256(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sha256" in data and "blake3" not in data:
            raise ValueError(
                "names content by sha256, which this control plane no longer takes: content is named by its "
                "BLAKE3 (field blake3); upgrade grid-ops where this request comes from"
            )
        return data


class DatastoreUploadObject(NamedByBlake3):
    """``V1DatastoreUploadObject``: one file (or, with ``blake3``, one content blob) uploaded in parts.

    Additions: ``blake3`` and ``sizeBytes`` name content the server stores by hash; ``partSizeBytes`` lets
    it check every part's size on completion."""

    expiry_time: str | None = None
    key: str
    part_count: str | None = None
    upload_id: str | None = None
    urls: list[PresignedUploadUrl] | None = None
    # additions
    blake3: str | None = None
    size_bytes: int | None = None
    part_size_bytes: int | None = None


class CreatePresignedUrlsRequest(WireModel):
    """``Body2``."""

    objects: list[DatastoreUploadObject]


class CreatePresignedUrlsResponse(WireModel):
    """``V1CreateDatastorePresignedUrlsResponse``."""

    objects: list[DatastoreUploadObject]


class CompletePresignedUrlUpload(WireModel):
    """``V1CompletePresignedUrlUpload``."""

    etag: str
    part_number: str


class CompletePresignedUrlsUploadObject(WireModel):
    """``V1CompletePresignedUrlsUploadObject``."""

    key: str
    upload_id: str
    urls: list[CompletePresignedUrlUpload]


class CompletePresignedUrlsRequest(WireModel):
    """``Body3``."""

    objects: list[CompletePresignedUrlsUploadObject]


class BlobRef(NamedByBlake3):
    """Our addition: content named by its BLAKE3 and size."""

    blake3: str
    size_bytes: int


class MissingBlobsRequest(WireModel):
    """Our addition: body of ``POST .../datastores/{id}/missing-blobs``."""

    blobs: list[BlobRef]


class MissingBlobsResponse(WireModel):
    """Our addition: the hashes of the request that the server does not store yet for this user."""

    missing: list[str]


class ManifestEntry(NamedByBlake3):
    """Our addition: one file of a version: its path, content hash, size and permission bits."""

    path: str
    blake3: str
    size_bytes: int
    mode: int | None = None


class RunnerDatastoreFile(WireModel):
    """Our addition: one file of the version an experiment mounts, as its runner fetches it: ``url`` GETs
    the bytes; ``localPath`` is the content's file where the control plane's machine stores it, and
    ``localOffset`` where in that file it starts when it is kept inside a pack (absent: the whole file)."""

    path: str
    blake3: str
    size_bytes: int
    mode: int
    url: str
    local_path: str | None = None
    local_offset: int | None = None


class RunnerDatastore(WireModel):
    """Our addition: ``GET /v1/runner/experiments/{id}/datastore``, the version the experiment mounts and a
    page of its files (by path)."""

    id: str
    name: str
    version: int
    mount_path: str
    file_count: int
    size_bytes: int
    files: list[RunnerDatastoreFile]
    next_page_token: str | None = None


class DatastoreManifestRequest(WireModel):
    """Our addition: body of ``POST .../datastores/{id}/manifest`` (entries are added or replaced by path)."""

    files: list[ManifestEntry]


class DatastoreManifestResponse(WireModel):
    file_count: int
    size_bytes: int


class LocalFile(NamedByBlake3):
    """Our addition: one file of a same-host upload, which the control plane copies from its own disk: its
    datastore ``path``, where it is (``localPath``, absolute) and what the client saw when it scanned it
    (``sizeBytes``, ``mtimeNs``). With ``blake3`` the server checks the copy against it."""

    path: str
    local_path: str
    size_bytes: int
    mtime_ns: int
    mode: int | None = None
    blake3: str | None = None


class LocalFilesRequest(WireModel):
    """Our addition: body of ``POST .../datastores/{id}/local-files``. ``probePath`` is a file the client
    just wrote with ``probeToken`` in it: the server reads it to know it sees the client's files."""

    probe_path: str
    probe_token: str
    files: list[LocalFile]


class LocalFileStored(WireModel):
    """Our addition: a file of a same-host upload, stored and added to the version."""

    path: str
    blake3: str
    size_bytes: int


class LocalFilesResponse(WireModel):
    """Our addition: what a same-host upload did. ``sameHost`` false: the server does not see the client's
    files (nothing was done; upload through presigned URLs). ``changed``: files that differ from what the
    client scanned; ``unavailable``: files the server cannot read (send them through presigned URLs)."""

    same_host: bool
    files: list[LocalFileStored] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unavailable: list[str] = Field(default_factory=list)


class DatastoreEvent(WireModel):
    """``V1DatastoreEvent``."""

    desired_state: DatastoreState | None = None
    id: str
    message: str | None = None
    phase: DatastoreOptimizationStatus | None = None
    timestamp: datetime


class ListDatastoreEventsResponse(WireModel):
    events: list[DatastoreEvent]


class DatastoreFile(WireModel):
    """``V1DatastoreFile``: ``url`` downloads the file (signed, expiring); ``blake3``, ``mode`` are additions."""

    filename: str
    last_modified: datetime | None = None
    md5_checksum: str | None = None
    size_bytes: str | None = None
    url: str | None = None
    # additions
    blake3: str | None = None
    mode: int | None = None


class ListDatastoreFilesResponse(WireModel):
    files: list[DatastoreFile]
    next_page_token: str | None = None
    previous_page_token: str | None = None
