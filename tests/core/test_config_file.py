"""The grid.yml config file: its shape, strict checking, params appended to the command, and precedence."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from grid_ops.config_file import RunConfig, load_config, parse_config, prefer
from grid_ops.errors import ValidationError
from grid_ops.sdk import Actions, Resources, Run, ScratchSpace
from grid_ops.sdk.settings import normalize, to_request

FULL = """
compute:
  provider:
    cluster: gpu-cluster
  train:
    instance: cpu-2
    use_spot: true
    cpus: 2
    gpus: 1
    storage_gb: 200
    framework: pytorch
    localdir: true
    dockerfile: docker/Dockerfile
    auto_resume: true
    dry_run: false
    environment:
      MODE: fast
      WORKERS: 4
    dependency_file_info:
      path: env/requirements.txt
    datastore_name: churn
    datastore_version: 3
    datastore_mount_dir: /data/churn
    actions:
      on_build: [apt-get update]
      on_experiment_start: echo start
      on_experiment_end: [echo end, echo bye]
    scratch:
      size_gb: 50
      mount_path: /tmp/scratch
hyper_params:
  settings:
    strategy: random_search
    num_trials: 4
    seed: 7
  params:
    --lr: "[0.1, 0.01]"
    --model: ["resnet18", "resnet50"]
    --note: two words
    --verbose:
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.yml"
    path.write_text(text)
    return path


def test_every_documented_key_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.path == (tmp_path / "grid.yml").absolute()
    assert config.cluster_id == "gpu-cluster"
    assert (config.instance_type, config.use_spot, config.cpus, config.gpus) == ("cpu-2", True, 2, 1)
    assert (config.storage_gb, config.framework, config.localdir) == (200, "pytorch", True)
    assert (config.dockerfile, config.auto_resume, config.dry_run) == ("docker/Dockerfile", True, False)
    assert config.env_vars == {"MODE": "fast", "WORKERS": "4"}
    assert config.dependency_file == "env/requirements.txt"
    assert config.datastore == "churn:3"
    assert config.datastore_mount_dir == "/data/churn"
    assert config.actions == {
        "on_build": ["apt-get update"],
        "on_experiment_start": ["echo start"],
        "on_experiment_end": ["echo end", "echo bye"],
    }
    assert (config.scratch_size_gb, config.scratch_mount_path) == (50, "/tmp/scratch")
    assert config.strategy == "random_search"
    assert config.strategy_options == {"num_trials": "4", "seed": "7"}


def test_params_are_appended_each_value_kept_as_one_argument(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    command = config.apply_params("python train.py --epochs 3")
    assert shlex.split(command) == [
        "python", "train.py", "--epochs", "3",
        "--lr", "[0.1, 0.01]",
        "--model", "['resnet18', 'resnet50']",  # a YAML list becomes a Python list literal: a sweep dimension
        "--note", "two words",
        "--verbose",  # no value: the flag alone
    ]  # fmt: skip


def test_an_empty_file_sets_nothing(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == RunConfig(path=(tmp_path / "grid.yml").absolute())


def test_unknown_keys_are_all_named_by_their_dotted_path(tmp_path: Path) -> None:
    text = """
compute:
  train:
    cpu: 2
    scratch: {size: 3}
  trian: {}
hyper_params:
  settings: {stratgy: grid_search}
extra: 1
"""
    with pytest.raises(ValidationError) as caught:
        load_config(write(tmp_path, text))
    error = caught.value
    for path in (
        "compute.train.cpu",
        "compute.train.scratch.size",
        "compute.trian",
        "hyper_params.settings.stratgy",
        "extra",
    ):
        assert any(f"unknown key {path!r}" == detail for detail in error.details), (path, error.details)
    assert "grid.yml" in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("compute: {train: {cpus: two}}", "compute.train.cpus must be a whole number >= 0, got 'two'"),
        ("compute: {train: {use_spot: 'yes'}}", "compute.train.use_spot must be true or false"),
        ("compute: {train: {environment: [A]}}", "compute.train.environment must be a mapping"),
        ("compute: {train: {actions: {on_build: {a: 1}}}}", "compute.train.actions.on_build must be a command"),
        ("compute: {train: {datastore_version: 0, datastore_name: d}}", "datastore_version must be a whole number > 0"),
        ("compute: {train: {datastore_version: 2}}", "datastore_version is set without compute.train.datastore_name"),
        ("hyper_params: {params: [--lr]}", "hyper_params.params must be a mapping of flags"),
        ("hyper_params: {settings: {num_trials: -1}}", "hyper_params.settings.num_trials must be a whole number > 0"),
        ("compute: 3", "compute must be a mapping"),
        ("- a\n- b", "the file must be a mapping"),
    ],
)
def test_values_of_the_wrong_type_are_named(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        load_config(write(tmp_path, text))


def test_contradicting_trial_counts_are_an_error() -> None:
    data = {"hyper_params": {"settings": {"strategy_options": {"num_trials": 3}, "num_trials": 5}}}
    with pytest.raises(ValidationError, match="contradicts"):
        parse_config(data)
    same = {"hyper_params": {"settings": {"strategy_options": {"num_trials": 5, "seed": 1}, "num_trials": 5}}}
    assert parse_config(same).strategy_options == {"num_trials": "5", "seed": "1"}


def test_keys_of_the_original_grid_yml_without_meaning_here_are_accepted() -> None:
    data = {
        "compute": {
            "provider": {"vendor": "aws", "region": "us-east-1", "credentials": "cc-1", "cluster": "c"},
            "train": {"dependency_file_info": {"package_manager": "pip", "path": "r.txt"}},
        }
    }
    config = parse_config(data)
    assert (config.cluster_id, config.dependency_file) == ("c", "r.txt")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"config file '.*nowhere\.yml' does not exist"):
        load_config(tmp_path / "nowhere.yml")


def test_a_file_that_is_not_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"config file '.*grid\.yml' is not valid YAML"):
        load_config(write(tmp_path, "compute: [unclosed\n"))


def test_prefer_explicit_then_file_then_default() -> None:
    assert prefer("explicit", "file", "default") == "explicit"
    assert prefer("default", "file", "default") == "file"  # left at its default: counts as not given
    assert prefer(None, "file", "default") == "file"
    assert prefer(None, None, "default") == "default"
    assert prefer("default", None, "default") == "default"
    assert prefer(False, True, False) is True
    assert prefer(True, False, False) is True


# --------------------------------------------------------------------------- merged into a Run (no server needed)


def test_run_arguments_win_over_the_file_and_the_file_over_defaults(tmp_path: Path) -> None:
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "requirements.txt").write_text("numpy\n")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM python\n")
    run = Run(
        run_command="python train.py",
        path=tmp_path,
        config_file=write(tmp_path, FULL),
        framework="tensorflow",  # explicit: wins over the file's pytorch
        env_vars={"MODE": "slow"},  # explicit key wins, the file's other keys stay
        resources=Resources(cpus=4),  # explicit cpus, the rest from the file
        strategy_options={"seed": 9},
        cluster_id="local",
    )
    assert run.framework == "tensorflow"
    assert run.env_vars == {"MODE": "slow", "WORKERS": "4"}
    assert run.resources == Resources(instance_type="cpu-2", use_spot=True, cpus=4, gpus=1, storage_gb=200)
    assert run.strategy == "random_search"
    assert run.strategy_options == {"seed": "9"}  # the trial count lives in num_trials
    assert run.num_trials == 4
    assert run.cluster_id == "local"
    assert run.dependency_file == "env/requirements.txt"
    assert run.datastore == "churn:3"
    assert run.datastore_mount_dir == "/data/churn"
    assert run.actions == Actions(
        on_build=["apt-get update"], on_experiment_start=["echo start"], on_experiment_end=["echo end", "echo bye"]
    )
    assert run.scratch == ScratchSpace(size_gb=50, mount_path="/tmp/scratch")
    assert shlex.split(run.run_command or "")[:4] == ["python", "train.py", "--lr", "[0.1, 0.01]"]

    spec = to_request(normalize(run._settings, starting=True), cluster_id="local").spec
    assert spec.sweep_type == "random_search"
    assert spec.sweep_options == {"num_trials": "4", "seed": "9"}
    assert spec.resources is not None and (spec.resources.cpu, spec.resources.gpu) == ("4", "1")
    assert (spec.instance_type, spec.use_spot, spec.auto_resume) == ("cpu-2", True, True)
    assert spec.image is not None and spec.image.framework == "tensorflow"
    assert spec.datastores is not None and spec.datastores[0].id == "churn:3"


def test_a_file_with_params_but_no_command_is_an_error(tmp_path: Path) -> None:
    config = write(tmp_path, "hyper_params: {params: {--lr: '[1, 2]'}}")
    with pytest.raises(ValidationError, match="no run_command was given"):
        Run(path=tmp_path, config_file=config)
