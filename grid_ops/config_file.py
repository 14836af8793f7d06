"""Read a Grid ``grid.yml`` config file into typed Run arguments (docs/concepts.md, "Config file").

The file is checked strictly: every unknown key and every value of the wrong type is reported at once,
named by its dotted path. Arguments given explicitly to ``Run`` win over the file, and the file wins over
the defaults (``prefer``).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

from grid_ops.errors import ValidationError

T = TypeVar("T")

ACTION_KEYS = ("on_build", "on_build_start", "on_build_end", "on_experiment_start", "on_experiment_end")


@dataclass(frozen=True)
class RunConfig:
    """The Run arguments a config file sets; ``None`` (or empty) means the file leaves it to the caller."""

    path: Path | None = None
    cluster_id: str | None = None
    instance_type: str | None = None
    use_spot: bool | None = None
    cpus: int | None = None
    gpus: int | None = None
    memory_mb: int | None = None
    storage_gb: int | None = None
    framework: str | None = None
    localdir: bool | None = None
    dockerfile: str | None = None
    auto_resume: bool | None = None
    dry_run: bool | None = None
    env_vars: dict[str, str] | None = None
    dependency_file: str | None = None
    datastore_name: str | None = None
    datastore_version: int | None = None
    datastore_mount_dir: str | None = None
    actions: dict[str, list[str]] = field(default_factory=dict)
    scratch_size_gb: int | None = None
    scratch_mount_path: str | None = None
    strategy: str | None = None
    strategy_options: dict[str, str] | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def datastore(self) -> str | None:
        """The datastore to mount as ``name`` or ``name:version``, if the file names one."""
        if self.datastore_name is None:
            return None
        if self.datastore_version is None:
            return self.datastore_name
        return f"{self.datastore_name}:{self.datastore_version}"

    def apply_params(self, command: str) -> str:
        """``command`` with ``hyper_params.params`` appended, each flag and value kept as one argument."""
        parts = [command] if command else []
        for flag, value in self.params.items():
            parts.append(shlex.quote(flag))
            if value is not None:
                parts.append(shlex.quote(value))
        return " ".join(parts)


def prefer(explicit: T, from_file: T | None, default: T) -> T:
    """Merge one Run argument: ``explicit`` wins unless it is ``None`` or still equals ``default``; then the
    file's value; then ``default``. (An argument left at its default value counts as not given.)"""
    if explicit is not None and explicit != default:
        return explicit
    if from_file is not None:
        return from_file
    return default


# --------------------------------------------------------------------------- value checks

Coerce = Callable[[object, str], Any]


def _problem(path: str, expected: str, value: object) -> ValidationError:
    return ValidationError(f"{path} must be {expected}, got {value!r}")


def _str(value: object, path: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
        raise _problem(path, "a non-empty string", value)
    return str(value)


def _bool(value: object, path: str) -> bool:
    if not isinstance(value, bool):
        raise _problem(path, "true or false", value)
    return value


def _count(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _problem(path, "a whole number >= 0", value)
    return value


def _positive(value: object, path: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _problem(path, "a whole number > 0", value)
    return value


def _seed(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _problem(path, "a whole number", value)
    return value


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, list | tuple):  # a YAML list is a sweep dimension: write it as a Python list literal
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return str(value)


def _str_map(value: object, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _problem(path, "a mapping of names to values", value)
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise _problem(f"{path}", "keyed by non-empty strings", key)
        if item is None or isinstance(item, Mapping | list | tuple):
            raise _problem(f"{path}.{key}", "a string or number", item)
        out[key] = _scalar_text(item)
    return out


def _commands(value: object, path: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _problem(path, "a command string or a list of command strings", value)
    return list(value)


def _params(value: object, path: str) -> dict[str, str | None]:
    if not isinstance(value, Mapping):
        raise _problem(path, 'a mapping of flags to values, e.g. {"--lr": "[0.1, 0.01]"}', value)
    out: dict[str, str | None] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise _problem(path, "keyed by flags such as '--lr'", key)
        if isinstance(item, Mapping):
            raise _problem(f"{path}.{key}", "a value or a list of values", item)
        out[key] = None if item is None else _scalar_text(item)
    return out


# --------------------------------------------------------------------------- the schema

Schema = dict[str, "Schema | tuple[str, Coerce] | None"]

_SCHEMA: Schema = {
    "compute": {
        "provider": {
            "cluster": ("cluster_id", _str),
            # keys of the original grid.yml that have no meaning here; accepted and ignored
            "vendor": None,
            "region": None,
            "credentials": None,
        },
        "train": {
            "instance": ("instance_type", _str),
            "use_spot": ("use_spot", _bool),
            "cpus": ("cpus", _count),
            "gpus": ("gpus", _count),
            "memory_mb": ("memory_mb", _count),
            "storage_gb": ("storage_gb", _count),
            "framework": ("framework", _str),
            "localdir": ("localdir", _bool),
            "dockerfile": ("dockerfile", _str),
            "auto_resume": ("auto_resume", _bool),
            "dry_run": ("dry_run", _bool),
            "environment": ("env_vars", _str_map),
            "dependency_file_info": {"path": ("dependency_file", _str), "package_manager": None},
            "datastore_name": ("datastore_name", _str),
            "datastore_version": ("datastore_version", _positive),
            "datastore_mount_dir": ("datastore_mount_dir", _str),
            "actions": {key: (f"actions.{key}", _commands) for key in ACTION_KEYS},
            "scratch": {
                "size_gb": ("scratch_size_gb", _positive),
                "mount_path": ("scratch_mount_path", _str),
            },
        },
    },
    "hyper_params": {
        "settings": {
            "strategy": ("strategy", _str),
            "strategy_options": ("strategy_options", _str_map),
            "num_trials": ("num_trials", _positive),
            "seed": ("seed", _seed),
        },
        "params": ("params", _params),
    },
}


def _walk(node: object, schema: Schema, prefix: str, found: dict[str, Any], problems: list[str]) -> None:
    if node is None:
        return
    if not isinstance(node, Mapping):
        problems.append(f"{prefix or 'the file'} must be a mapping, got {node!r}")
        return
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in schema:
            problems.append(f"unknown key {path!r}")
            continue
        rule = schema[key]
        if rule is None:
            continue
        if isinstance(rule, dict):
            _walk(value, rule, path, found, problems)
            continue
        name, coerce = rule
        if value is None:
            continue
        try:
            found[name] = coerce(value, path)
        except ValidationError as exc:
            problems.append(exc.message)


def parse_config(data: object, source: str = "config file") -> RunConfig:
    """Check the decoded YAML ``data`` against the grid.yml shape and return its Run arguments."""
    found: dict[str, Any] = {}
    problems: list[str] = []
    _walk(data, _SCHEMA, "", found, problems)
    options: dict[str, str] | None = found.pop("strategy_options", None)
    for key in ("num_trials", "seed"):
        if key in found:
            text = str(found.pop(key))
            options = dict(options or {})
            if options.get(key, text) != text:
                problems.append(
                    f"hyper_params.settings.{key} ({text}) contradicts "
                    f"hyper_params.settings.strategy_options.{key} ({options[key]}); keep one of them"
                )
            options[key] = text
    actions = {key[len("actions.") :]: found.pop(key) for key in list(found) if key.startswith("actions.")}
    if "datastore_version" in found and "datastore_name" not in found:
        problems.append("compute.train.datastore_version is set without compute.train.datastore_name")
    if problems:
        summary = problems[0] if len(problems) == 1 else f"{len(problems)} problems:"
        raise ValidationError(
            f"{source} does not have the grid.yml shape: {summary}", details=problems if len(problems) > 1 else ()
        )
    return RunConfig(strategy_options=options, actions=actions, **found)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: where (line and column, from 1) and what, without PyYAML's excerpt of the
    source and its ``in "<unicode string>"``."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())

    def at(mark: yaml.Mark | None) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""

    text = f"{at(exc.problem_mark)}: {exc.problem}" if exc.problem_mark else str(exc.problem or "invalid YAML")
    if exc.context:
        started = f" that starts at {at(exc.context_mark)}" if exc.context_mark else ""
        text += f" ({exc.context}{started})"
    return text


def load_config(path: str | Path) -> RunConfig:
    """Read and check the config file at ``path``; errors name the file and what to change."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = "" if file.is_absolute() else f" (relative paths start from the current directory {str(Path.cwd())!r})"
        raise ValidationError(f"config file {str(file)!r} does not exist{where}") from None
    except OSError as exc:
        raise ValidationError(f"cannot read config file {str(file)!r}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"config file {str(file)!r} is not valid YAML: {_yaml_problem(exc)}") from exc
    return replace(parse_config(data, source=f"config file {str(file)!r}"), path=file.absolute())
