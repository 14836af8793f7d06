"""Tests for grid_ops.sweep: sweep syntax, strategies, invariants and error messages."""

from __future__ import annotations

import itertools
import math
import re
import shlex
import time
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid_ops.sweep import (
    DEFAULT_MAX_EXPERIMENTS,
    STRATEGIES,
    Dimension,
    SweepError,
    Trial,
    count_experiments,
    expand,
    parse_command,
)

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SWEEP_LIKE = re.compile(r"(range|uniform|loguniform|normal|randint)\s*\(")


def render(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def looks_like_sweep(text: str) -> bool:
    stripped = text.strip()
    return stripped.startswith("[") or _SWEEP_LIKE.match(stripped) is not None


# --------------------------------------------------------------------------- hypothesis strategies

safe_text = st.text(st.characters(codec="utf-8"), max_size=12)
scalars = st.one_of(
    st.integers(-10_000, 10_000),
    st.floats(allow_nan=False, allow_infinity=False),
    safe_text,
    st.booleans(),
    st.none(),
)


@dataclass(frozen=True)
class Dim:
    """A generated dimension: its flag name, expression, rendered values, and syntax form."""

    name: str
    expression: str
    rendered: tuple[str, ...]
    equals_form: bool


@st.composite
def list_dims(draw: st.DrawFn, name: str) -> Dim:
    values = draw(st.lists(scalars, min_size=1, max_size=4, unique_by=render))
    return Dim(name, repr(values), tuple(render(v) for v in values), draw(st.booleans()))


@st.composite
def range_dims(draw: st.DrawFn, name: str) -> Dim:
    start = draw(st.integers(-20, 20))
    step = draw(st.integers(-3, 3).filter(bool))
    size = draw(st.integers(1, 4))
    stop = start + step * size
    span = range(start, stop, step)
    assert len(span) == size
    return Dim(name, f"range({start}, {stop}, {step})", tuple(str(v) for v in span), draw(st.booleans()))


names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=0, max_size=4, unique=True)


@st.composite
def dims(draw: st.DrawFn, min_size: int = 0) -> list[Dim]:
    flag_names = draw(names.filter(lambda n: len(n) >= min_size))
    return [draw(st.one_of(list_dims(n), range_dims(n))) for n in flag_names]


pass_through = safe_text.filter(lambda s: not s.startswith("-") and not looks_like_sweep(s))


def build_argv(dimensions: list[Dim], extras: list[str] | None = None) -> list[str]:
    """python train.py, then for each dimension: an optional pass-through, then the swept flag."""
    extras = extras or []
    argv = ["python", "train.py"]
    for i, d in enumerate(dimensions):
        if i < len(extras):
            argv.append(extras[i])
        if d.equals_form:
            argv.append(f"--{d.name}={d.expression}")
        else:
            argv += [f"--{d.name}", d.expression]
    argv += extras[len(dimensions) :]
    return argv


def grid_points(dimensions: list[Dim]) -> list[tuple[str, ...]]:
    return list(itertools.product(*(d.rendered for d in dimensions)))


def points(trials: list[Trial]) -> list[tuple[str, ...]]:
    return [tuple(t.params.values()) for t in trials]


# --------------------------------------------------------------------------- property-based invariants


@PROPERTY
@given(dims())
def test_grid_size_is_product_of_dimension_sizes(dimensions: list[Dim]) -> None:
    command = shlex.join(build_argv(dimensions))
    expected = math.prod(len(d.rendered) for d in dimensions)
    trials = expand(command)
    assert len(trials) == expected
    assert count_experiments(command) == expected
    _, parsed = parse_command(command)
    assert [p.size for p in parsed] == [len(d.rendered) for d in dimensions]


@PROPERTY
@given(dims())
def test_grid_order_is_cartesian_with_first_dimension_slowest_and_indices_sequential(
    dimensions: list[Dim],
) -> None:
    trials = expand(build_argv(dimensions))
    assert [t.index for t in trials] == list(range(len(trials)))
    assert points(trials) == grid_points(dimensions)
    for t in trials:
        assert list(t.params) == [d.name for d in dimensions]


@PROPERTY
@given(dims())
def test_grid_substitutes_rendered_values_into_argv_in_both_flag_forms(dimensions: list[Dim]) -> None:
    argv = build_argv(dimensions)
    for trial in expand(argv):
        expected: list[str] = ["python", "train.py"]
        for d in dimensions:
            value = trial.params[d.name]
            expected += [f"--{d.name}={value}"] if d.equals_form else [f"--{d.name}", value]
        assert list(trial.argv) == expected
        assert shlex.split(trial.command) == expected


@PROPERTY
@given(dims(min_size=1), st.data())
def test_random_search_returns_num_trials_distinct_points_of_the_grid(
    dimensions: list[Dim], data: st.DataObject
) -> None:
    grid = grid_points(dimensions)
    k = data.draw(st.integers(1, len(grid)))
    seed = data.draw(st.integers(0, 2**32))
    trials = expand(build_argv(dimensions), "random_search", {"num_trials": k, "seed": seed})
    drawn = points(trials)
    assert len(trials) == k
    assert [t.index for t in trials] == list(range(k))
    assert len(set(drawn)) == k
    assert set(drawn) <= set(grid)
    assert count_experiments(build_argv(dimensions), "random_search", {"num_trials": k}) == k


@PROPERTY
@given(dims(min_size=1), st.integers(0, 2**40), st.data())
def test_random_search_same_seed_gives_identical_trials(
    dimensions: list[Dim], seed: int, data: st.DataObject
) -> None:
    total = math.prod(len(d.rendered) for d in dimensions)
    k = data.draw(st.integers(1, total))
    argv = build_argv(dimensions)
    first = expand(argv, "random_search", {"num_trials": k, "seed": seed})
    again = expand(shlex.join(argv), "random_search", {"num_trials": str(k), "seed": str(seed)})
    assert first == again
    assert [t.params for t in first] == [t.params for t in again]


def test_random_search_different_seeds_generally_differ() -> None:
    command = "python train.py --a 'range(100)' --b 'range(100)' --c \"['x', 'y', 'z']\""
    draws = {
        tuple(t.command for t in expand(command, "random_search", {"num_trials": 5, "seed": seed}))
        for seed in range(20)
    }
    assert len(draws) == 20


@PROPERTY
@given(dims(), st.lists(pass_through, max_size=5))
def test_pass_through_arguments_keep_their_quoting(dimensions: list[Dim], extras: list[str]) -> None:
    argv = build_argv(dimensions, extras)
    dimension_positions = {d.position for d in parse_command(argv)[1]}
    for trial in expand(shlex.join(argv)):
        split = shlex.split(trial.command)
        assert split == list(trial.argv)
        kept = [tok for i, tok in enumerate(split) if i not in dimension_positions]
        original = [tok for i, tok in enumerate(argv) if i not in dimension_positions]
        assert kept == original
        for extra in extras:
            assert extra in split


@PROPERTY
@given(dims())
def test_string_and_presplit_commands_expand_identically(dimensions: list[Dim]) -> None:
    argv = build_argv(dimensions)
    assert expand(argv) == expand(shlex.join(argv))


# --------------------------------------------------------------------------- syntax forms


def test_public_constants() -> None:
    assert STRATEGIES == ("grid_search", "random_search", "none")
    assert DEFAULT_MAX_EXPERIMENTS == 10_000
    assert issubclass(SweepError, ValueError)


def test_list_literal_of_floats_renders_with_repr() -> None:
    trials = expand('python train.py --lr "[0.01, 0.1, 1e-05]"')
    assert [t.argv for t in trials] == [
        ("python", "train.py", "--lr", "0.01"),
        ("python", "train.py", "--lr", "0.1"),
        ("python", "train.py", "--lr", "1e-05"),
    ]
    assert trials[1].params == {"lr": "0.1"}


def test_list_literal_of_strings_bools_none_and_ints() -> None:
    trials = expand("""train --model "['resnet18', 'res net']" --flag "[True, False, None]" --n "[1, -2]" """)
    assert len(trials) == 12
    assert trials[0].argv == ("train", "--model", "resnet18", "--flag", "True", "--n", "1")
    assert trials[-1].params == {"model": "res net", "flag": "None", "n": "-2"}
    assert trials[-1].command == "train --model 'res net' --flag None --n -2"
    _, parsed = parse_command("""train --flag "[True, False]" """)
    assert parsed[0].values == (True, False)


def test_equals_form_substitutes_inside_the_token() -> None:
    trials = expand('python train.py --lr="[0.1, 0.01]" --opt=adam')
    assert [t.argv[2:] for t in trials] == [("--lr=0.1", "--opt=adam"), ("--lr=0.01", "--opt=adam")]
    (dim,) = parse_command('python train.py --lr="[0.1, 0.01]"')[1]
    assert (dim.name, dim.flag, dim.expression, dim.values) == ("lr", "--lr", "[0.1, 0.01]", (0.1, 0.01))


def test_short_flag_and_dotted_flag_names() -> None:
    _, parsed = parse_command("run -b '[16, 32]' --model.depth=range(2)")
    assert [(d.name, d.flag) for d in parsed] == [("b", "-b"), ("model.depth", "--model.depth")]
    assert parsed[1].values == (0, 1)


def test_positional_dimension_is_named_by_its_position() -> None:
    argv, parsed = parse_command("python train.py data.csv '[1, 2]' --epochs 3")
    assert argv == ["python", "train.py", "data.csv", "[1, 2]", "--epochs", "3"]
    assert [(d.name, d.flag, d.position) for d in parsed] == [("arg3", "", 3)]
    assert [t.argv[3] for t in expand(argv)] == ["1", "2"]
    assert expand(argv)[0].params == {"arg3": "1"}


def test_value_after_a_flag_with_equals_is_positional() -> None:
    _, parsed = parse_command("run --mode=fast 'range(2)'")
    assert [d.name for d in parsed] == ["arg2"]


def test_range_follows_python_semantics() -> None:
    def values(expr: str) -> tuple[object, ...] | None:
        return parse_command(["run", "--x", expr])[1][0].values

    assert values("range(3)") == (0, 1, 2)
    assert values("range(2, 5)") == (2, 3, 4)
    assert values("range(0, 10, 3)") == (0, 3, 6, 9)
    assert values("range(5, 0, -2)") == (5, 3, 1)
    assert values(" range (-1, 1) ") == (-1, 0)
    assert [t.argv[-1] for t in expand("run --x 'range(1, 4)'")] == ["1", "2", "3"]


def test_brackets_mid_string_pass_through() -> None:
    commands = ("run --key a[0]", "run --key=a[0]", "run x[1:2] 'rangefinder(3)'", "run --f '{\"a\": [1]}'")
    for command in commands:
        argv, parsed = parse_command(command)
        assert parsed == []
        (trial,) = expand(command)
        assert list(trial.argv) == argv
        assert trial.params == {}


def test_quoted_argument_with_space_stays_one_element() -> None:
    (trial, *_) = expand('python train.py --name "hello world" --lr "[1, 2]"')
    assert trial.argv == ("python", "train.py", "--name", "hello world", "--lr", "1")
    assert trial.command == "python train.py --name 'hello world' --lr 1"


def test_trial_is_hashable_and_command_is_shlex_join() -> None:
    trials = expand("run --a '[1, 2]'")
    assert len({*trials}) == 2
    assert trials[0].command == shlex.join(trials[0].argv)
    assert isinstance(parse_command("run --a '[1, 2]'")[1][0], Dimension)


def test_no_dimensions_gives_one_experiment() -> None:
    (trial,) = expand("python train.py --lr 0.1")
    assert trial == Trial(0, ("python", "train.py", "--lr", "0.1"), {})
    assert count_experiments("python train.py") == 1


# --------------------------------------------------------------------------- distributions


def _dist_values(expr: str, seed: int = 0) -> list[str]:
    return [t.params["x"] for t in expand(["run", "--x", expr], strategy_options={"seed": seed})]


def test_uniform_samples_are_within_bounds_and_count_is_n() -> None:
    values = [float(v) for v in _dist_values("uniform(-2, 3, 50)")]
    assert len(values) == 50
    assert all(-2 <= v <= 3 for v in values)
    assert len(set(values)) == 50


def test_loguniform_samples_are_positive_and_within_bounds() -> None:
    values = [float(v) for v in _dist_values("loguniform(1e-5, 1e-1, 200)")]
    assert len(values) == 200
    assert all(1e-5 <= v <= 1e-1 for v in values)
    assert min(values) < 1e-3 < max(values)  # spread over decades, not uniform in linear space


def test_normal_samples_have_roughly_the_right_location() -> None:
    values = [float(v) for v in _dist_values("normal(10, 0.5, 400)")]
    assert abs(sum(values) / len(values) - 10) < 0.2


def test_randint_samples_are_ints_in_half_open_interval() -> None:
    values = _dist_values("randint(3, 7, 300)")
    assert all(re.fullmatch(r"-?\d+", v) for v in values)
    assert {int(v) for v in values} == {3, 4, 5, 6}


def test_grid_distribution_samples_are_seeded_and_deterministic() -> None:
    assert _dist_values("uniform(0, 1, 5)", seed=1) == _dist_values("uniform(0, 1, 5)", seed=1)
    assert _dist_values("uniform(0, 1, 5)", seed=1) != _dist_values("uniform(0, 1, 5)", seed=2)
    assert _dist_values("uniform(0, 1, 5)", seed=3) == [
        t.params["x"] for t in expand("run --x 'uniform(0, 1, 5)'", strategy_options={"seed": "3"})
    ]


def test_grid_distribution_combines_with_lists() -> None:
    trials = expand("run --opt '[\"sgd\", \"adam\"]' --lr 'loguniform(1e-4, 1e-1, 3)'")
    assert len(trials) == 6
    lrs = [t.params["lr"] for t in trials]
    assert lrs[:3] == lrs[3:]  # the same 3 samples for each optimizer
    _, parsed = parse_command("run --lr 'loguniform(1e-4, 1e-1, 3)'")
    assert parsed[0].values is None
    assert (parsed[0].kind, parsed[0].distribution, parsed[0].count) == ("distribution", "loguniform", 3)


def test_random_search_samples_distributions_per_trial_and_count_is_optional() -> None:
    command = "run --lr 'uniform(0, 1)' --m '[1, 2]' --k 'randint(0, 1000)'"
    trials = expand(command, "random_search", {"num_trials": 30, "seed": 7})
    assert len(trials) == 30
    lrs = [float(t.params["lr"]) for t in trials]
    assert all(0 <= v <= 1 for v in lrs)
    assert len(set(lrs)) == 30
    assert {t.params["m"] for t in trials} == {"1", "2"}  # finite part is cycled once exhausted
    assert trials == expand(command, "random_search", {"num_trials": 30, "seed": 7})
    assert count_experiments(command, "random_search", {"num_trials": 30}) == 30


def test_random_search_over_huge_product_is_fast_and_distinct() -> None:
    command = "run " + " ".join(f"--p{i} 'range(1000)'" for i in range(15))  # 10**45 points
    start = time.perf_counter()
    trials = expand(command, "random_search", {"num_trials": 500, "seed": 1})
    assert time.perf_counter() - start < 2
    assert len({t.argv for t in trials}) == 500
    assert count_experiments(command) == 1000**15


# --------------------------------------------------------------------------- strategy none & options


def test_strategy_none_runs_command_once_as_written() -> None:
    command = "python train.py --lr '[0.1, 0.2]' --x 'range(3)' 'hello world'"
    (trial,) = expand(command, "none")
    assert trial.argv == ("python", "train.py", "--lr", "[0.1, 0.2]", "--x", "range(3)", "hello world")
    assert trial.params == {}
    assert trial.index == 0
    assert count_experiments(command, "none") == 1


def test_random_search_accepts_string_options() -> None:
    trials = expand("run --a 'range(10)'", "random_search", {"num_trials": "4", "seed": "11"})
    assert len(trials) == 4
    assert trials == expand("run --a 'range(10)'", "random_search", {"num_trials": 4, "seed": 11})


def test_random_search_default_seed_is_zero() -> None:
    command = "run --a 'range(50)'"
    assert expand(command, "random_search", {"num_trials": 5}) == expand(
        command, "random_search", {"num_trials": 5, "seed": 0}
    )


def test_grid_search_of_ten_thousand_points_is_fast() -> None:
    command = (
        "python train.py --a 'range(100)' --b 'range(10)' "
        "--c '[0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]'"
    )
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        trials = expand(command)
        best = min(best, time.perf_counter() - start)
    assert len(trials) == 10_000
    assert best < 0.3


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("[1, 2", "not a valid list literal"),
        ("[]", "empty"),
        ("[a, b]", "not a literal"),
        ("[[1], 2]", "list"),
        ("[1j]", "complex"),
        ("[1, 2][0]", "single list literal"),
        ("[x for x in y]", "single list literal"),
        ("[1, 1]", "more than once"),
        ("range()", "1 to 3 arguments"),
        ("range(1, 2, 3, 4)", "1 to 3 arguments"),
        ("range(1.5)", "integers"),
        ("range(0, 5, 0)", "zero"),
        ("range(5, 0)", "empty"),
        ("range(stop=3)", "keyword"),
        ("range(3) + 1", "single call"),
        ("range(10000000)", "more than"),
        ("range(", "not a valid"),
        ("uniform(1)", "2 parameters and a sample count"),
        ("uniform(0, 1, 2, 3)", "2 parameters and a sample count"),
        ("uniform(1, 0, 3)", "low < high"),
        ("uniform(0, x, 3)", "not a number"),
        ("uniform(0, 1, 0)", "positive integer"),
        ("uniform(0, 1, 2.5)", "positive integer"),
        ("uniform(0, 1e999, 2)", "not finite"),
        ("loguniform(0, 1, 3)", "low > 0"),
        ("loguniform(-1, 1, 3)", "low > 0"),
        ("normal(0, -1, 3)", "sigma > 0"),
        ("randint(5, 1, 2)", "low < high"),
        ("randint(0.5, 3, 2)", "integers"),
        ("randint(True, 3, 2)", "not a number"),
    ],
)
def test_malformed_sweep_expression_error_quotes_the_argument(argument: str, reason: str) -> None:
    for argv in (["run", "--lr", argument], ["run", f"--lr={argument}"], ["run", argument]):
        with pytest.raises(SweepError) as excinfo:
            expand(argv)
        message = str(excinfo.value)
        assert f"'{argument}'" in message or f"'--lr={argument}'" in message
        assert reason in message
        with pytest.raises(SweepError):
            count_experiments(argv)
        with pytest.raises(SweepError):
            parse_command(argv)


def test_malformed_expression_in_string_command_names_flag() -> None:
    with pytest.raises(SweepError, match=r"'\[1, 2' for --lr"):
        expand('python train.py --lr "[1, 2"')
    with pytest.raises(SweepError, match=r"'--lr=\[1, 2'"):
        expand('python train.py --lr="[1, 2"')
    with pytest.raises(SweepError, match=r"'uniform\(1\)' for positional argument 2"):
        expand("python train.py 'uniform(1)'")


def test_grid_search_distribution_without_count_is_an_error() -> None:
    with pytest.raises(SweepError, match=r"'uniform\(0, 1\)'.*no sample count"):
        expand("run --lr 'uniform(0, 1)'")
    with pytest.raises(SweepError, match="no sample count"):
        count_experiments("run --lr 'uniform(0, 1)'")


def test_dimension_swept_twice_is_an_error() -> None:
    with pytest.raises(SweepError, match="'lr' is swept twice"):
        expand("run --lr '[1, 2]' --lr=range(3)")


def test_unknown_strategy_lists_valid_ones() -> None:
    with pytest.raises(SweepError) as excinfo:
        expand("run --a '[1]'", "bayesian")
    message = str(excinfo.value)
    assert "'bayesian'" in message
    assert all(name in message for name in STRATEGIES)
    with pytest.raises(SweepError, match="grid_search, random_search, none"):
        count_experiments("run", "hyperband")


def test_grid_larger_than_max_experiments_names_size_and_limit() -> None:
    with pytest.raises(SweepError, match=r"12000 experiments.*max_experiments=10000"):
        expand("run --a 'range(120)' --b 'range(100)'")
    with pytest.raises(SweepError, match=r"6 experiments.*max_experiments=5"):
        expand("run --a '[1, 2, 3]' --b '[1, 2]'", max_experiments=5)
    assert len(expand("run --a '[1, 2, 3]' --b '[1, 2]'", max_experiments=6)) == 6
    with pytest.raises(SweepError, match="max_experiments=5"):
        count_experiments("run --a '[1, 2, 3]' --b '[1, 2]'", max_experiments=5)


def test_max_experiments_is_checked_before_materialising() -> None:
    command = "run " + " ".join(f"--p{i} 'range(1000)'" for i in range(8))  # 10**24 points
    start = time.perf_counter()
    with pytest.raises(SweepError, match=r"1000000000000000000000000 experiments.*max_experiments=10000"):
        expand(command)
    assert time.perf_counter() - start < 1


def test_random_search_num_trials_above_max_experiments_is_an_error() -> None:
    with pytest.raises(SweepError, match=r"20 experiments.*max_experiments=10"):
        expand("run --a 'uniform(0, 1)'", "random_search", {"num_trials": 20}, max_experiments=10)


def test_random_search_more_trials_than_grid_points_is_an_error() -> None:
    with pytest.raises(SweepError, match=r"num_trials=7 but the grid has only 6 distinct points"):
        expand("run --a '[1, 2, 3]' --b '[1, 2]'", "random_search", {"num_trials": 7})
    assert len(expand("run --a '[1, 2, 3]' --b '[1, 2]'", "random_search", {"num_trials": 6})) == 6


@pytest.mark.parametrize("num_trials", [None, 0, -3, "0", "abc", 2.5, "2.5", True, ""])
def test_random_search_bad_num_trials_is_an_error(num_trials: object) -> None:
    options = {} if num_trials is None else {"num_trials": num_trials}
    with pytest.raises(SweepError, match="num_trials"):
        expand("run --a 'range(10)'", "random_search", options)
    with pytest.raises(SweepError, match="num_trials"):
        count_experiments("run --a 'range(10)'", "random_search", options)


@pytest.mark.parametrize("seed", ["x", 1.5, False])
def test_non_integer_seed_is_an_error(seed: object) -> None:
    with pytest.raises(SweepError, match="seed"):
        expand("run --a 'range(10)'", "random_search", {"num_trials": 2, "seed": seed})


def test_unbalanced_quotes_and_empty_command_are_errors() -> None:
    with pytest.raises(SweepError, match="cannot split"):
        expand("python train.py --name 'oops")
    with pytest.raises(SweepError, match="empty"):
        expand("   ")
    with pytest.raises(SweepError, match="empty"):
        expand([], "none")


def test_bad_max_experiments_is_an_error() -> None:
    with pytest.raises(SweepError, match="max_experiments"):
        expand("run", max_experiments=0)
