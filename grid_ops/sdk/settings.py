"""The settings of a ``Run`` before it starts: checking them, merging a config file, and the wire request.

``RunSettings`` holds the ``Run`` constructor arguments; ``normalize`` checks them all at once and
returns the cleaned-up copy that ``to_request`` turns into a ``CreateRunRequest``; ``from_wire`` goes back
from a stored run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from grid_ops import git_url, schemas
from grid_ops.config_file import ACTION_KEYS, RunConfig, prefer
from grid_ops.errors import ValidationError
from grid_ops.metrics import compile_metrics_pattern
from grid_ops.names import validate_run_name
from grid_ops.sdk.resources import Actions, Resources, ScratchSpace

STRATEGIES = ("grid_search", "random_search", "none")
FRAMEWORKS = ("lightning", "pytorch", "torch", "tensorflow", "julia", "torchelastic")
_JULIA_VERSION = re.compile(r"julia:\d+\.\d+\.\d+")
DEFAULT_DEPENDENCY_FILE = "./requirements.txt"


@dataclass
class RunSettings:
    """Every argument of a run, with the defaults of the ``Run`` constructor."""

    name: str | None = None
    run_command: str | None = None
    description: str | None = None
    strategy: str = "grid_search"
    strategy_options: dict[str, str] | None = None
    num_trials: int = 0
    env_vars: dict[str, str] | None = None
    framework: str = "lightning"
    dependency_file: str | None = DEFAULT_DEPENDENCY_FILE
    localdir: bool = False
    url: str | None = None
    path: Path | None = None
    dockerfile: str | None = None
    auto_resume: bool = False
    resources: Resources = field(default_factory=Resources)
    datastore: str | None = None
    datastore_mount_dir: str | None = None
    actions: Actions = field(default_factory=Actions)
    scratch: ScratchSpace | None = None
    cluster_id: str | None = None
    dry_run: bool = False
    relative_working_dir: str | None = None
    max_parallel: int | None = None
    metrics_pattern: str | None = None


# --------------------------------------------------------------------------- single-value checks


def check_strategy(value: object) -> str:
    """``value`` if it is a sweep strategy (``None`` means ``grid_search``)."""
    if value is None:
        return "grid_search"
    if value not in STRATEGIES:
        raise ValidationError(f"strategy {value!r} is not supported; use one of {', '.join(STRATEGIES)}")
    return str(value)


def check_framework(value: object) -> str:
    """``value`` if it is a supported framework (``torch`` is reported as ``pytorch``)."""
    if not isinstance(value, str) or not (value in FRAMEWORKS or _JULIA_VERSION.fullmatch(value)):
        raise ValidationError(
            f"framework {value!r} is not supported; use one of {', '.join(FRAMEWORKS)} or julia:X.Y.Z"
        )
    return "pytorch" if value == "torch" else value


def check_num_trials(value: object) -> int:
    """``value`` if it is a whole number >= 0 (0: not set)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"num_trials must be a whole number (0 for not set), got {value!r}")
    return value


def check_path(value: object) -> Path:
    """``value`` as an absolute path of an existing directory."""
    if not isinstance(value, str | Path):
        raise ValidationError(f"path must be a directory path, got {value!r}")
    path = Path(value).expanduser().absolute()
    if not path.exists():
        raise ValidationError(f"path {str(path)!r} does not exist; pass the directory holding your code")
    if not path.is_dir():
        raise ValidationError(f"path {str(path)!r} is not a directory; pass the directory holding your code")
    return path


def string_map(name: str, value: object) -> dict[str, str] | None:
    """``value`` as a dict of strings (numbers and booleans are written out), or ``None``."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{name} must be a dict of names to values, got {value!r}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValidationError(f"{name} has an invalid name {key!r}: use a non-empty string without '='")
        if item is None or isinstance(item, dict | list | tuple | set):
            raise ValidationError(f"{name}[{key!r}] must be a string or number, got {item!r}")
        out[key] = str(item)
    return out


def datastore_ref(value: object) -> str | None:
    """The ``spec.datastores[].id`` for a datastore given as ``"name"``, ``"name:version"`` or an object with
    ``name`` (and ``version``) attributes, such as a ``Datastore``."""
    if value is None or isinstance(value, str):
        if value == "":
            raise ValidationError("datastore must be a name such as 'churn' or 'churn:3', got ''")
        return value
    name, version = getattr(value, "name", None), getattr(value, "version", None)
    if not isinstance(name, str) or not name:
        raise ValidationError(f"datastore must be a name, 'name:version' or a Datastore, got {value!r}")
    return f"{name}:{version}" if version else name


def _path_text(name: str, value: object, root: Path | None) -> str | None:
    """A file argument as text, relative to ``root`` when it is an absolute path inside it."""
    if value is None:
        return None
    if not isinstance(value, str | Path) or str(value) == "":
        raise ValidationError(f"{name} must be a file path, got {value!r}")
    if root is not None and Path(value).is_absolute():
        with contextlib.suppress(ValueError):
            return Path(value).relative_to(root).as_posix()
    return str(value)


def check_git_url(url: object) -> str:
    """A git source ``URL[#ref=REF]``; a local repository's path made absolute and checked to exist."""
    if not isinstance(url, str) or not url.strip():
        raise ValidationError(f"url must be the URL or path of a git repository, got {url!r}")
    text = url.strip()
    try:
        location, ref = git_url.split_ref(text)
        local = git_url.local_path(location)
    except ValueError as exc:
        raise ValidationError(f"url {url!r}: {exc}") from None
    if local is None:
        return text
    path = Path(local).expanduser()
    if not path.exists():
        raise ValidationError(
            f"url {url!r}: the local path {str(path)!r} does not exist; give the path or URL of a git "
            "repository (https://..., git@host:owner/repo, file:///path), optionally with #ref=<branch, tag or sha>"
        )
    absolute = str(path.resolve()) if location == local else location
    return absolute + (f"#ref={ref}" if ref is not None else "")


# --------------------------------------------------------------------------- the whole set


def normalize(settings: RunSettings, *, starting: bool) -> RunSettings:
    """A checked, cleaned-up copy of ``settings``; every problem is reported in one ValidationError.

    ``starting`` adds what only a start needs (a command; the source directory and dependency file).
    """
    problems: list[str] = []
    out = dataclasses.replace(settings)

    def check(fn: Callable[[], None]) -> None:
        try:
            fn()
        except ValidationError as exc:
            problems.append(exc.message)

    def name() -> None:
        out.name = validate_run_name(out.name)

    def command() -> None:
        if out.run_command is not None and (not isinstance(out.run_command, str) or not out.run_command.strip()):
            raise ValidationError(f"run_command must be a non-empty command line, got {out.run_command!r}")
        if starting and out.run_command is None:
            raise ValidationError(
                "run_command is required to start a run, e.g. run_command='python train.py --lr \"[0.1, 0.01]\"'"
            )

    def description() -> None:
        if out.description is not None and not isinstance(out.description, str):
            raise ValidationError(f"description must be a string, got {out.description!r}")

    def sweep() -> None:
        out.strategy = check_strategy(out.strategy)
        out.num_trials = check_num_trials(out.num_trials)
        out.strategy_options = string_map("strategy_options", out.strategy_options)
        from_options = (out.strategy_options or {}).get("num_trials")
        if from_options is not None:
            trials = check_num_trials(from_options)
            if out.num_trials and trials != out.num_trials:
                raise ValidationError(
                    f"num_trials={out.num_trials} contradicts strategy_options['num_trials']={from_options}; "
                    "give it once"
                )
            out.num_trials = trials
            # num_trials is the one place the count lives from here on, so the setter can change it
            out.strategy_options = {k: v for k, v in (out.strategy_options or {}).items() if k != "num_trials"}
        if out.strategy == "random_search" and out.num_trials <= 0:
            raise ValidationError(
                "strategy random_search needs num_trials (--num_trials on the command line): how many "
                "experiments to draw, e.g. 10"
            )
        if out.strategy != "random_search" and out.num_trials:
            raise ValidationError(
                f"num_trials (--num_trials) applies only to strategy random_search, not {out.strategy!r}; "
                "drop it or switch the strategy"
            )

    def environment() -> None:
        out.env_vars = string_map("env_vars", out.env_vars)

    def framework() -> None:
        out.framework = check_framework(out.framework)

    def source() -> None:
        if out.url is not None:
            out.url = check_git_url(out.url)
            return
        out.path = check_path(out.path if out.path is not None else Path.cwd())

    def files() -> None:
        root = out.path if out.url is None else None
        out.dependency_file = _path_text("dependency_file", out.dependency_file, root)
        out.dockerfile = _path_text("dockerfile", out.dockerfile, root)
        if starting and root is not None:
            for label, value, default in (
                ("dependency_file", out.dependency_file, DEFAULT_DEPENDENCY_FILE),
                ("dockerfile", out.dockerfile, None),
            ):
                if value is not None and value != default and not (root / value).is_file():
                    raise ValidationError(
                        f"{label} {value!r} does not exist in the source directory {str(root)!r}; "
                        "give a path relative to it"
                    )

    def components() -> None:
        for attr, kind in (("resources", Resources), ("actions", Actions)):
            if not isinstance(getattr(out, attr), kind):
                raise ValidationError(f"{attr} must be a {kind.__name__}(...), got {getattr(out, attr)!r}")
        if out.scratch is not None and not isinstance(out.scratch, ScratchSpace):
            raise ValidationError(f"scratch must be a ScratchSpace(...), got {out.scratch!r}")
        for flag in ("localdir", "auto_resume", "dry_run"):
            if not isinstance(getattr(out, flag), bool):
                raise ValidationError(f"{flag} must be True or False, got {getattr(out, flag)!r}")

    def datastore() -> None:
        out.datastore = datastore_ref(out.datastore)
        mount = out.datastore_mount_dir
        if mount is not None and (not isinstance(mount, str) or not mount or ".." in mount.split("/")):
            raise ValidationError(
                f"datastore_mount_dir must be a path without '..' (absolute, or relative to the working "
                f"directory), got {mount!r}"
            )
        if mount is not None and out.datastore is None:
            raise ValidationError("datastore_mount_dir is set but no datastore is; pass datastore= as well")
        if out.datastore is not None and mount is None:
            out.datastore_mount_dir = f"/datastores/{out.datastore.split(':')[0]}"

    def placement() -> None:
        if out.cluster_id is not None and (not isinstance(out.cluster_id, str) or not out.cluster_id):
            raise ValidationError(f"cluster_id must be a cluster id, got {out.cluster_id!r}")
        limit = out.max_parallel
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise ValidationError(f"max_parallel must be a whole number > 0 or None, got {limit!r}")
        work_dir = out.relative_working_dir
        if work_dir is not None:
            if (
                not isinstance(work_dir, str | Path)
                or PurePosixPath(work_dir).is_absolute()
                or ".." in (PurePosixPath(work_dir).parts)
            ):
                raise ValidationError(
                    f"relative_working_dir must be a path inside the source tree such as 'src', got {work_dir!r}"
                )
            out.relative_working_dir = PurePosixPath(work_dir).as_posix()

    def metrics() -> None:
        if out.metrics_pattern is not None:
            try:
                compile_metrics_pattern(out.metrics_pattern)
            except ValueError as exc:
                raise ValidationError(f"metrics_pattern: {exc}") from exc

    for step in (
        name,
        command,
        description,
        sweep,
        environment,
        framework,
        source,
        files,
        components,
        datastore,
        placement,
        metrics,
    ):
        check(step)
    if problems:
        if len(problems) == 1:
            raise ValidationError(problems[0])
        raise ValidationError(f"{len(problems)} problems with the settings of run {out.name!r}:", details=problems)
    return out


def apply_config(settings: RunSettings, config: RunConfig) -> RunSettings:
    """``settings`` completed from a config file: explicit values win, then the file, then the defaults.

    An argument still at its default value counts as not given; ``env_vars`` and ``strategy_options`` are
    merged key by key, explicit keys winning.
    """
    default = RunSettings()
    res, default_res = settings.resources, Resources()
    actions = settings.actions
    scratch = settings.scratch
    if scratch is not None or config.scratch_size_gb is not None or config.scratch_mount_path is not None:
        base, blank = scratch or ScratchSpace(), ScratchSpace()
        scratch = ScratchSpace(
            size_gb=prefer(base.size_gb, config.scratch_size_gb, blank.size_gb),
            mount_path=prefer(base.mount_path, config.scratch_mount_path, blank.mount_path),
        )
    file_options = dict(config.strategy_options or {})
    if settings.num_trials or (settings.strategy_options or {}).get("num_trials") is not None:
        file_options.pop("num_trials", None)  # an explicit trial count beats the file's
    merged_options = {**file_options, **(settings.strategy_options or {})}
    command = settings.run_command
    if config.params:
        if command is None:
            raise ValidationError(
                f"config file {config.path} sets hyper_params.params but no run_command was given; "
                "pass run_command= (the params are appended to it)"
            )
        command = config.apply_params(command)
    return dataclasses.replace(
        settings,
        run_command=command,
        strategy=prefer(settings.strategy, config.strategy, default.strategy),
        strategy_options=merged_options or None,
        env_vars={**(config.env_vars or {}), **(settings.env_vars or {})} or None,
        framework=prefer(settings.framework, config.framework, default.framework),
        dependency_file=prefer(settings.dependency_file, config.dependency_file, default.dependency_file),
        localdir=prefer(settings.localdir, config.localdir, default.localdir),
        dockerfile=prefer(settings.dockerfile, config.dockerfile, None),
        auto_resume=prefer(settings.auto_resume, config.auto_resume, default.auto_resume),
        dry_run=prefer(settings.dry_run, config.dry_run, default.dry_run),
        cluster_id=prefer(settings.cluster_id, config.cluster_id, None),
        datastore=prefer(settings.datastore, config.datastore, None),
        datastore_mount_dir=prefer(settings.datastore_mount_dir, config.datastore_mount_dir, None),
        resources=Resources(
            instance_type=prefer(res.instance_type, config.instance_type, default_res.instance_type),
            use_spot=prefer(res.use_spot, config.use_spot, default_res.use_spot),
            cpus=prefer(res.cpus, config.cpus, default_res.cpus),
            gpus=prefer(res.gpus, config.gpus, default_res.gpus),
            storage_gb=prefer(res.storage_gb, config.storage_gb, default_res.storage_gb),
            extra=res.extra,
            memory_mb=prefer(res.memory_mb, config.memory_mb, default_res.memory_mb),
        ),
        actions=Actions(**{key: prefer(getattr(actions, key), config.actions.get(key), None) for key in ACTION_KEYS}),
        scratch=scratch,
    )


# --------------------------------------------------------------------------- to and from the wire


def _package_manager(dependency_file: str) -> schemas.PackageManager | None:
    lowered = dependency_file.lower()
    if lowered.endswith(".txt"):
        return schemas.PackageManager.PIP
    if lowered.endswith((".yml", ".yaml")):
        return schemas.PackageManager.CONDA
    return None


def to_request(settings: RunSettings, *, cluster_id: str, dry_run: bool | None = None) -> schemas.CreateRunRequest:
    """The ``CreateRunRequest`` of normalized ``settings`` on ``cluster_id`` (``dry_run`` overrides)."""
    options = dict(settings.strategy_options or {})
    if settings.num_trials:
        options["num_trials"] = str(settings.num_trials)
    dependency = None
    if settings.dependency_file:
        dependency = schemas.DependencyFileInfo(
            path=settings.dependency_file, package_manager=_package_manager(settings.dependency_file)
        )
    datastores = None
    if settings.datastore is not None:
        datastores = [schemas.DatastoreMount(id=settings.datastore, mount_path=settings.datastore_mount_dir)]
    spec = schemas.RunSpec(
        cluster_id=cluster_id,
        run_controller_command=settings.run_command,
        sweep_type=settings.strategy,
        sweep_options=options or None,
        instance_type=settings.resources.instance_type,
        use_spot=settings.resources.use_spot,
        resources=settings.resources.to_wire(),
        env=settings.env_vars or None,
        image=schemas.ImageSpec(
            framework=settings.framework, dockerfile=settings.dockerfile, dependency_file_info=dependency
        ),
        actions=settings.actions.to_wire(),
        scratch=[settings.scratch.to_wire()] if settings.scratch else None,
        datastores=datastores,
        auto_resume=settings.auto_resume,
        max_parallel=settings.max_parallel,
        metrics_pattern=settings.metrics_pattern,
        relative_work_dir=settings.relative_working_dir,
        source_code=settings.url,
        dry_run=settings.dry_run if dry_run is None else dry_run,
    )
    return schemas.CreateRunRequest(
        name=settings.name, description=settings.description, local_dir=settings.url is None, spec=spec
    )


def from_wire(run: schemas.Run) -> RunSettings:
    """The settings of a stored run."""
    spec = run.spec
    image = spec.image or schemas.ImageSpec()
    options = dict(spec.sweep_options or {})
    trials = options.get("num_trials", "")
    mount = spec.datastores[0] if spec.datastores else None
    return RunSettings(
        name=run.name,
        run_command=spec.run_controller_command,
        description=run.description,
        strategy=spec.sweep_type or "grid_search",
        strategy_options=options or None,
        num_trials=int(trials) if trials.isdigit() else 0,
        env_vars=dict(spec.env) if spec.env else None,
        framework=image.framework or "lightning",
        dependency_file=image.dependency_file_info.path if image.dependency_file_info else None,
        localdir=not spec.source_code,
        url=spec.source_code or None,
        dockerfile=image.dockerfile or None,
        auto_resume=bool(spec.auto_resume),
        resources=Resources.from_wire(spec.instance_type, spec.use_spot, spec.resources),
        datastore=(f"{mount.name}:{mount.version}" if mount.name and mount.version else mount.id) if mount else None,
        datastore_mount_dir=mount.mount_path if mount else None,
        actions=Actions.from_wire(spec.actions),
        scratch=ScratchSpace.from_wire(spec.scratch),
        cluster_id=spec.cluster_id,
        dry_run=bool(spec.dry_run),
        relative_working_dir=spec.relative_work_dir or None,
        max_parallel=spec.max_parallel,
        metrics_pattern=spec.metrics_pattern,
    )
