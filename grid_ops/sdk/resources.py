"""``Resources``, ``Actions`` and ``ScratchSpace``: the run components of the original SDK, and wire forms.

Argument names and order match ``lightning-grid`` so user code ports unchanged. Differences: the default
``instance_type`` is ``None`` (the cluster's default instance type; the original's ``'t2.medium'`` exists on
no grid-ops cluster) and ``Resources`` has a trailing ``memory_mb``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from grid_ops import schemas
from grid_ops.config_file import ACTION_KEYS as ACTION_FIELDS
from grid_ops.errors import ValidationError


def _whole(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


def _int(text: str | None) -> int:
    try:
        return int(float(text)) if text else 0
    except ValueError:
        return 0


def _commands(name: str, value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"Actions.{name} must be a list of command strings, got {value!r}")
    return list(value)


T = TypeVar("T")


def stored(cls: type[T], **fields: Any) -> T:
    """An instance of ``cls`` from a stored run, without the argument checks: what the server holds
    (possibly written by another client) is shown as it is, never refused when a run is loaded."""
    obj = cls.__new__(cls)
    obj.__dict__.update(fields)
    return obj


@dataclass
class ScratchSpace:
    """Scratch disk for every experiment: ``size_gb`` GB at ``mount_path`` (absolute, or relative to the
    working directory; the experiment always finds it at ``$GRID_SCRATCH_DIR``)."""

    size_gb: int = 100
    mount_path: str = "/scratch"

    def __post_init__(self) -> None:
        _whole("ScratchSpace.size_gb", self.size_gb, minimum=1)
        if not isinstance(self.mount_path, str) or not self.mount_path or ".." in self.mount_path.split("/"):
            raise ValidationError(
                f"ScratchSpace.mount_path must be a path without '..' (absolute, or relative to the working "
                f"directory), got {self.mount_path!r}"
            )

    def to_wire(self) -> schemas.ScratchSpace:
        """The ``spec.scratch`` entry."""
        return schemas.ScratchSpace(size_gb=self.size_gb, mount_path=self.mount_path)

    @classmethod
    def from_wire(cls, scratch: list[schemas.ScratchSpace] | None) -> ScratchSpace | None:
        """The scratch space of a ``spec.scratch`` list (the first entry), if any."""
        if not scratch:
            return None
        first = scratch[0]
        return stored(cls, size_gb=first.size_gb or 100, mount_path=first.mount_path or "/scratch")


@dataclass
class Resources:
    """What each experiment runs on: an instance type (``None``: the cluster's default), spot or not, and
    the CPUs, GPUs and memory it needs (0: what the instance type offers)."""

    instance_type: str | None = None
    use_spot: bool = False
    cpus: int = 0
    gpus: int = 0
    storage_gb: int = 100
    extra: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 0

    def __post_init__(self) -> None:
        if self.instance_type is not None and (not isinstance(self.instance_type, str) or not self.instance_type):
            raise ValidationError(f"Resources.instance_type must be a name or None, got {self.instance_type!r}")
        if not isinstance(self.use_spot, bool):
            raise ValidationError(f"Resources.use_spot must be True or False, got {self.use_spot!r}")
        for name in ("cpus", "gpus", "storage_gb", "memory_mb"):
            _whole(f"Resources.{name}", getattr(self, name))
        if not isinstance(self.extra, dict):
            raise ValidationError(f"Resources.extra must be a dict of strings, got {self.extra!r}")

    def to_wire(self) -> schemas.Resources:
        """The ``spec.resources`` object (strings, as in the Grid dialect; zero values left out)."""
        return schemas.Resources(
            cpu=str(self.cpus) if self.cpus else None,
            gpu=str(self.gpus) if self.gpus else None,
            memory_mb=str(self.memory_mb) if self.memory_mb else None,
            storage_gb=str(self.storage_gb) if self.storage_gb else None,
            extra={str(k): str(v) for k, v in self.extra.items()} or None,
        )

    @classmethod
    def from_wire(
        cls, instance_type: str | None, use_spot: bool | None, resources: schemas.Resources | None
    ) -> Resources:
        """The resources of a run or experiment spec."""
        res = resources or schemas.Resources()
        return stored(
            cls,
            instance_type=instance_type or None,
            use_spot=bool(use_spot),
            cpus=_int(res.cpu),
            gpus=_int(res.gpu),
            storage_gb=_int(res.storage_gb),
            extra=dict(res.extra or {}),
            memory_mb=_int(res.memory_mb),
        )


@dataclass
class Actions:
    """Commands run at points of an experiment's life: while building its environment (``on_build*``) and
    before or after its command (``on_experiment_start``/``on_experiment_end``)."""

    on_build: list[str] | None = None
    on_build_start: list[str] | None = None
    on_build_end: list[str] | None = None
    on_experiment_start: list[str] | None = None
    on_experiment_end: list[str] | None = None

    def __post_init__(self) -> None:
        for name in ACTION_FIELDS:
            setattr(self, name, _commands(name, getattr(self, name)))

    def to_wire(self) -> schemas.RunActions | None:
        """The ``spec.actions`` object, or ``None`` when no action is set."""
        values = {name: getattr(self, name) for name in ACTION_FIELDS if getattr(self, name)}
        return schemas.RunActions(**values) if values else None

    @classmethod
    def from_wire(cls, actions: schemas.RunActions | None) -> Actions:
        """The actions of a run or experiment spec."""
        if actions is None:
            return cls()
        return stored(cls, **{name: getattr(actions, name) or None for name in ACTION_FIELDS})
