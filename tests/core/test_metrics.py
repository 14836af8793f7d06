"""``grid_ops.metrics``: the metric line parsers the runner uses, and the checks the server shares."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grid_ops.metrics import (
    DEFAULT_METRICS_PATTERN,
    compile_metrics_pattern,
    metric_value,
    parse_metric_line,
    parse_metrics_file_line,
    valid_metric_name,
)

# names the default pattern can find: a letter or underscore first, then the allowed characters
pattern_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,60}", fullmatch=True)
finite = st.floats(allow_nan=False, allow_infinity=False)


def test_default_pattern_finds_every_name_value_pair_in_a_line() -> None:
    line = "epoch 3: loss=0.25 val/acc = 0.91 lr=1e-3 delta=-.5 up=+2. count=7"
    assert parse_metric_line(line) == [
        ("loss", 0.25),
        ("val/acc", 0.91),
        ("lr", 0.001),
        ("delta", -0.5),
        ("up", 2.0),
        ("count", 7.0),
    ]


def test_lines_without_metrics_give_nothing() -> None:
    assert parse_metric_line("starting training on 4 GPUs") == []
    assert parse_metric_line("x = nan, y = inf") == []
    assert parse_metric_line("") == []


def test_matches_with_names_the_server_refuses_are_skipped() -> None:
    # \w also matches non-ASCII letters; such names would make the whole batch a 400, so they are dropped
    assert parse_metric_line("café=1 ok=2") == [("ok", 2.0)]
    assert parse_metric_line("a" * 129 + "=1 b=2") == [("b", 2.0)]


def test_a_custom_pattern_is_used_and_non_numbers_are_skipped() -> None:
    pattern = r"(?P<name>\w+): (?P<value>\S+)"
    assert parse_metric_line("acc: 0.5 loss: nan f1: 0.7", pattern) == [("acc", 0.5), ("f1", 0.7)]
    assert parse_metric_line("acc: 0.5", re.compile(pattern)) == [("acc", 0.5)]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(", "not a valid regular expression"),
        (r"(?P<name>\w+)=(\d+)", "no named group 'value'"),
        (r"(\w+)=(\d+)", "no named group 'name' or 'value'"),
        ("", "empty"),
    ],
)
def test_bad_patterns_are_refused_with_the_reason(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_metrics_pattern(pattern)


def test_the_default_pattern_compiles() -> None:
    assert compile_metrics_pattern(DEFAULT_METRICS_PATTERN).groupindex.keys() >= {"name", "value"}


@given(name=pattern_names, value=finite)
def test_name_equals_repr_of_any_finite_float_round_trips(name: str, value: float) -> None:
    assert parse_metric_line(f"{name}={value!r}") == [(name, value)]
    assert parse_metric_line(f"step 1  {name} = {value!r}  done") == [(name, value)]


@given(
    name=st.from_regex(r"[A-Za-z0-9_.:/-]{1,128}", fullmatch=True),
    value=finite,
    step=st.none() | st.integers(min_value=-(2**53), max_value=2**53),
)
def test_metrics_file_lines_round_trip(name: str, value: float, step: int | None) -> None:
    record: dict[str, object] = {"name": name, "value": value}
    if step is not None:
        record["step"] = step
    assert parse_metrics_file_line(json.dumps(record) + "\n") == (name, value, step)


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   \n",
        "not json",
        "[1, 2]",
        '{"name": "acc"}',
        '{"name": "acc", "value": true}',
        '{"name": "acc", "value": NaN}',
        '{"name": "acc", "value": "abc"}',
        '{"name": "bad name", "value": 1}',
        '{"name": 3, "value": 1}',
        '{"name": "acc", "value": 1, "step": 1.5}',
        '{"name": "acc", "value": 1, "step": "3"}',
    ],
)
def test_malformed_metrics_file_lines_are_none(line: str) -> None:
    assert parse_metrics_file_line(line) is None


def test_metrics_file_line_accepts_integral_float_steps_and_numeric_strings() -> None:
    assert parse_metrics_file_line('{"name": "acc", "value": "0.5", "step": 3.0}') == ("acc", 0.5, 3)


@given(st.text(max_size=200))
def test_parsers_never_raise_on_any_text(text: str) -> None:
    for name, value in parse_metric_line(text):
        assert valid_metric_name(name) and math.isfinite(value)
    parsed = parse_metrics_file_line(text)
    assert parsed is None or (valid_metric_name(parsed[0]) and math.isfinite(parsed[1]))


def test_metric_value_takes_finite_numbers_only() -> None:
    assert metric_value(3) == 3.0
    assert metric_value("1e3") == 1000.0
    assert metric_value(True) is None
    assert metric_value(float("inf")) is None
    assert metric_value("1e999") is None
    assert metric_value(None) is None
