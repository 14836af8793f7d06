"""Server configuration: clusters, their executors and instance types, and limits.

Without a config file the control plane offers one ``local`` cluster whose instance types are slices of
this machine (1 CPU, 2 CPUs, ... all of it), priced at a notional per-CPU rate so that cost accounting
and estimates mean something; a YAML file (``--config``) declares real clusters and prices.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from grid_ops.server.datastore_config import DatastoreSettings, parse_datastore_settings

DEFAULT_CPU_HOURLY_COST = 0.04
DEFAULT_SPOT_FACTOR = 0.3
EXECUTORS = ("local", "ray")
RAY_OPTIONS = {
    "python": "the Python on the Ray workers that has grid-ops installed (default: python)",
    "node_dir": "the folder on each Ray node for experiments and the datastore cache (default: /tmp/grid-ops)",
    "control_plane_url": "where Ray workers reach this control plane (default: the URL it listens on)",
    "poll_seconds": "how often the status of running Ray jobs is read (default: 0.25)",
}


class ConfigError(ValueError):
    """The server config file is missing, malformed, or names unknown keys."""


@dataclass(frozen=True)
class InstanceTypeConfig:
    """An instance type a cluster offers: its resources and hourly prices (USD)."""

    name: str
    cpu: float
    gpu: int
    memory_mb: int
    hourly_cost: float
    spot_hourly_cost: float | None = None
    resources: dict[str, float] = field(default_factory=dict)

    def price(self, use_spot: bool) -> float:
        """The hourly price for on-demand or spot use (spot falls back to on-demand)."""
        if use_spot and self.spot_hourly_cost is not None:
            return self.spot_hourly_cost
        return self.hourly_cost


@dataclass(frozen=True)
class Capacity:
    """Resources a cluster can run at once."""

    cpu: float
    gpu: int
    memory_mb: int


STORAGE_BACKENDS = ("local", "s3")


@dataclass(frozen=True)
class StorageConfig:
    """Where a cluster keeps its datastores: local disk (``path``, default under the state directory) or
    an S3 bucket and prefix at any S3-compatible ``endpoint_url`` (credentials from boto3's usual chain)."""

    backend: str = "local"
    path: str | None = None
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    """One cluster: where its experiments run and what it offers."""

    id: str
    executor: str
    instance_types: tuple[InstanceTypeConfig, ...]
    default_instance_type: str
    capacity: Capacity
    address: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    storage: StorageConfig = field(default_factory=StorageConfig)
    capacity_from_executor: bool = False
    """The scheduler uses what the executor reports the cluster offers (a Ray cluster's resources), not
    ``capacity``: the config declared none."""

    def instance_type(self, name: str) -> InstanceTypeConfig | None:
        """The instance type called ``name``, or None."""
        return next((it for it in self.instance_types if it.name == name), None)


@dataclass(frozen=True)
class ServerConfig:
    """Everything the control plane is configured with."""

    clusters: dict[str, ClusterConfig]
    default_cluster: str
    max_experiments_per_run: int = 10_000
    cancel_grace_seconds: float = 10.0
    max_source_bytes: int = 512 * 1024 * 1024
    heartbeat_timeout_seconds: float = 60.0
    """A running experiment whose runner sends no heartbeat for this long fails as lost (0: never)."""
    heartbeat_interval_seconds: float = 0.0
    """How often runners send heartbeats (0: a quarter of the timeout, at most 5 s)."""
    heartbeat_grace_seconds: float = 30.0
    """After a restart, how much longer than the timeout runners have to send their first heartbeat."""

    def heartbeat_seconds(self) -> float:
        """The interval runners send heartbeats at (0 when heartbeats are off)."""
        if self.heartbeat_timeout_seconds <= 0:
            return 0.0
        return self.heartbeat_interval_seconds or min(5.0, self.heartbeat_timeout_seconds / 4)
    datastores: DatastoreSettings = field(default_factory=DatastoreSettings)


def machine_capacity() -> Capacity:
    """CPUs, GPUs (from ``nvidia-smi -L``) and memory of this machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1024 * 1024))
    return Capacity(cpu=float(cpus), gpu=count_gpus(), memory_mb=memory_mb)


def count_gpus() -> int:
    """GPUs that ``nvidia-smi -L`` lists, 0 when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def local_instance_types(
    capacity: Capacity, cpu_hourly_cost: float = DEFAULT_CPU_HOURLY_COST
) -> tuple[InstanceTypeConfig, ...]:
    """Slices of this machine: ``cpu-1`` … ``cpu-N``, and ``gpu-K`` slices when GPUs exist."""
    ncpu = max(1, int(capacity.cpu))
    mem_per_cpu = capacity.memory_mb // ncpu
    types = [
        InstanceTypeConfig(
            name=f"cpu-{n}",
            cpu=float(n),
            gpu=0,
            memory_mb=mem_per_cpu * n,
            hourly_cost=round(cpu_hourly_cost * n, 6),
            spot_hourly_cost=round(cpu_hourly_cost * n * DEFAULT_SPOT_FACTOR, 6),
        )
        for n in range(1, ncpu + 1)
    ]
    for g in range(1, capacity.gpu + 1):
        cpus = max(1, ncpu * g // capacity.gpu)
        types.append(
            InstanceTypeConfig(
                name=f"gpu-{g}",
                cpu=float(cpus),
                gpu=g,
                memory_mb=mem_per_cpu * cpus,
                hourly_cost=round(cpu_hourly_cost * cpus + 0.5 * g, 6),
                spot_hourly_cost=round((cpu_hourly_cost * cpus + 0.5 * g) * DEFAULT_SPOT_FACTOR, 6),
            )
        )
    return tuple(types)


def default_config() -> ServerConfig:
    """One ``local`` cluster made of slices of this machine."""
    cap = machine_capacity()
    local = ClusterConfig(
        id="local",
        executor="local",
        instance_types=local_instance_types(cap),
        default_instance_type="cpu-1",
        capacity=cap,
    )
    return ServerConfig(clusters={"local": local}, default_cluster="local")


_TOP_KEYS = {
    "default_cluster",
    "clusters",
    "max_experiments_per_run",
    "cancel_grace_seconds",
    "max_source_bytes",
    "heartbeat_timeout_seconds",
    "heartbeat_interval_seconds",
    "heartbeat_grace_seconds",
    "datastores",
}
_CLUSTER_KEYS = {
    "id",
    "executor",
    "address",
    "instance_types",
    "default_instance_type",
    "capacity",
    "options",
    "cpu_hourly_cost",
    "storage",
}
_IT_KEYS = {"name", "cpu", "gpu", "memory_mb", "hourly_cost", "spot_hourly_cost", "resources"}
_CAP_KEYS = {"cpu", "gpu", "memory_mb"}


def _check_keys(where: str, data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    return data


def _number(where: str, value: Any, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if value < 0:
        raise ConfigError(f"{where} must not be negative, got {value!r}")
    return kind(value)


def _instance_type(where: str, data: Any) -> InstanceTypeConfig:
    d = _check_keys(where, data, _IT_KEYS)
    if not isinstance(d.get("name"), str) or not d["name"]:
        raise ConfigError(f"{where}.name is required")
    spot = d.get("spot_hourly_cost")
    return InstanceTypeConfig(
        name=d["name"],
        cpu=_number(f"{where}.cpu", d.get("cpu", 1)),
        gpu=_number(f"{where}.gpu", d.get("gpu", 0), int),
        memory_mb=_number(f"{where}.memory_mb", d.get("memory_mb", 1024), int),
        hourly_cost=_number(f"{where}.hourly_cost", d.get("hourly_cost", 0.0)),
        spot_hourly_cost=None if spot is None else _number(f"{where}.spot_hourly_cost", spot),
        resources={str(k): _number(f"{where}.resources.{k}", v) for k, v in (d.get("resources") or {}).items()},
    )


_STORAGE_KEYS = {"local": {"backend", "path"}, "s3": {"backend", "bucket", "prefix", "endpoint_url", "region"}}


def _storage(where: str, data: Any) -> StorageConfig:
    """``clusters[].storage``: ``{backend: local[, path]}`` or ``{backend: s3, bucket[, prefix, endpoint_url,
    region]}``."""
    if data is None:
        return StorageConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping such as {{backend: local}}, got {type(data).__name__}")
    backend = data.get("backend", "local")
    if backend not in STORAGE_BACKENDS:
        raise ConfigError(f"{where}.backend must be one of {', '.join(STORAGE_BACKENDS)}, got {backend!r}")
    d = _check_keys(where, data, _STORAGE_KEYS[backend])
    for key in d.keys() - {"backend"}:
        if not isinstance(d[key], str) or (key != "prefix" and not d[key]):
            raise ConfigError(f"{where}.{key} must be a non-empty string, got {d[key]!r}")
    if backend == "s3" and not d.get("bucket"):
        raise ConfigError(f"{where}.bucket is required for the s3 backend, e.g. {{backend: s3, bucket: my-data}}")
    return StorageConfig(
        backend=backend,
        path=d.get("path"),
        bucket=d.get("bucket"),
        prefix=str(d.get("prefix", "")).strip("/"),
        endpoint_url=d.get("endpoint_url"),
        region=d.get("region"),
    )


# A Ray cluster without a declared capacity: the scheduler uses the resources the cluster reports, and
# requests are checked against those when they run, not against this bound when a run is created.
UNBOUNDED = Capacity(cpu=1e9, gpu=10**9, memory_mb=10**15)


def _ray_settings(where: str, d: dict[str, Any]) -> dict[str, Any]:
    """Check a ``ray`` cluster's ``address`` and ``options``; return the options."""
    address = d.get("address")
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise ConfigError(
            f"{where}.address must be the URL of the Ray cluster's dashboard (job API), "
            f"e.g. http://127.0.0.1:8265, got {address!r}"
        )
    options = _check_keys(f"{where}.options", d.get("options") or {}, set(RAY_OPTIONS))
    for key in ("python", "node_dir", "control_plane_url"):
        if key in options and (not isinstance(options[key], str) or not options[key]):
            raise ConfigError(f"{where}.options.{key} must be a non-empty string: {RAY_OPTIONS[key]}")
    if "poll_seconds" in options and _number(f"{where}.options.poll_seconds", options["poll_seconds"]) <= 0:
        raise ConfigError(f"{where}.options.poll_seconds must be above 0")
    return dict(options)


def _cluster(where: str, data: Any) -> ClusterConfig:
    d = _check_keys(where, data, _CLUSTER_KEYS)
    cid = d.get("id")
    if not isinstance(cid, str) or not cid:
        raise ConfigError(f"{where}.id is required")
    executor = d.get("executor", "local")
    if executor not in EXECUTORS:
        raise ConfigError(f"{where}.executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    reported = executor == "ray" and d.get("capacity") is None
    machine = UNBOUNDED if executor == "ray" else machine_capacity()
    cap_data = _check_keys(f"{where}.capacity", d.get("capacity") or {}, _CAP_KEYS)
    capacity = Capacity(
        cpu=_number(f"{where}.capacity.cpu", cap_data.get("cpu", machine.cpu)),
        gpu=_number(f"{where}.capacity.gpu", cap_data.get("gpu", machine.gpu), int),
        memory_mb=_number(f"{where}.capacity.memory_mb", cap_data.get("memory_mb", machine.memory_mb), int),
    )
    options = _ray_settings(where, d) if executor == "ray" else dict(d.get("options") or {})
    if "instance_types" in d:
        if not isinstance(d["instance_types"], list) or not d["instance_types"]:
            raise ConfigError(f"{where}.instance_types must be a non-empty list")
        types = tuple(_instance_type(f"{where}.instance_types[{i}]", it) for i, it in enumerate(d["instance_types"]))
    elif executor == "local":
        rate = _number(f"{where}.cpu_hourly_cost", d.get("cpu_hourly_cost", DEFAULT_CPU_HOURLY_COST))
        types = local_instance_types(capacity, rate)
    else:
        raise ConfigError(f"{where}.instance_types is required for executor {executor!r}")
    names = [t.name for t in types]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.instance_types: duplicate names in {names}")
    default = d.get("default_instance_type", types[0].name)
    if default not in names:
        raise ConfigError(f"{where}.default_instance_type {default!r} is not one of {', '.join(names)}")
    options = dict(d.get("options") or {})
    transfer = options.get("source_transfer", "local")
    if transfer not in ("local", "http"):
        raise ConfigError(f"{where}.options.source_transfer must be 'local' or 'http', got {transfer!r}")
    return ClusterConfig(
        id=cid,
        executor=executor,
        address=d.get("address"),
        instance_types=types,
        default_instance_type=default,
        capacity=capacity,
        options=options,
        storage=_storage(f"{where}.storage", d.get("storage")),
        capacity_from_executor=reported,
    )


def load_config(path: str | Path | None) -> ServerConfig:
    """Read a YAML server config, or the machine's default when ``path`` is None."""
    if path is None:
        return default_config()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"server config {p} does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"server config {p} is not valid YAML: {exc}") from exc
    d = _check_keys(str(p), data, _TOP_KEYS)
    raw_clusters = d.get("clusters")
    if not isinstance(raw_clusters, list) or not raw_clusters:
        raise ConfigError(f"{p}: 'clusters' must be a non-empty list")
    clusters: dict[str, ClusterConfig] = {}
    for i, c in enumerate(raw_clusters):
        cluster = _cluster(f"clusters[{i}]", c)
        if cluster.id in clusters:
            raise ConfigError(f"{p}: cluster id {cluster.id!r} is declared twice")
        clusters[cluster.id] = cluster
    default = d.get("default_cluster", next(iter(clusters)))
    if default not in clusters:
        raise ConfigError(f"{p}: default_cluster {default!r} is not one of {', '.join(clusters)}")
    config = ServerConfig(
        clusters=clusters,
        default_cluster=default,
        max_experiments_per_run=_number("max_experiments_per_run", d.get("max_experiments_per_run", 10_000), int),
        cancel_grace_seconds=_number("cancel_grace_seconds", d.get("cancel_grace_seconds", 10.0)),
        max_source_bytes=_number("max_source_bytes", d.get("max_source_bytes", 512 * 1024 * 1024), int),
        heartbeat_timeout_seconds=_number("heartbeat_timeout_seconds", d.get("heartbeat_timeout_seconds", 60.0)),
        heartbeat_interval_seconds=_number("heartbeat_interval_seconds", d.get("heartbeat_interval_seconds", 0.0)),
        heartbeat_grace_seconds=_number("heartbeat_grace_seconds", d.get("heartbeat_grace_seconds", 30.0)),
        datastores=parse_datastore_settings(d.get("datastores"), ConfigError),
    )
    check_heartbeats(config)
    return config


def check_heartbeats(config: ServerConfig) -> None:
    """Runners must be able to send several heartbeats within the timeout."""
    timeout, interval = config.heartbeat_timeout_seconds, config.heartbeat_interval_seconds
    if timeout > 0 and interval and interval * 2 > timeout:
        raise ConfigError(
            f"heartbeat_interval_seconds ({interval:g}) must be at most half of heartbeat_timeout_seconds "
            f"({timeout:g}), so that one late heartbeat does not fail an experiment"
        )
