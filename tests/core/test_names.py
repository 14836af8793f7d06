"""Run and experiment names: generation, the validation rule, and the ``<run>-exp<N>`` convention."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grid_ops.errors import GridError, ValidationError
from grid_ops.names import (
    ADJECTIVES,
    MAX_RUN_NAME_LENGTH,
    SCIENTISTS,
    experiment_name,
    generate_run_name,
    split_experiment_name,
    validate_run_name,
)

GENERATED = re.compile(r"[a-z]+-[a-z]+-\d{4}")


def test_word_lists_are_large_distinct_and_name_safe() -> None:
    for words in (ADJECTIVES, SCIENTISTS):
        assert len(words) >= 55
        assert len(set(words)) == len(words)
        assert all(re.fullmatch(r"[a-z]+", word) for word in words)


def test_generated_names_have_the_documented_shape_and_are_valid() -> None:
    for _ in range(200):
        name = generate_run_name()
        assert GENERATED.fullmatch(name), name
        assert validate_run_name(name) == name
        adjective, surname, _number = name.split("-")
        assert adjective in ADJECTIVES
        assert surname in SCIENTISTS


def test_generation_is_reproducible_with_a_seeded_rng_and_varied_without() -> None:
    assert generate_run_name(random.Random(7)) == generate_run_name(random.Random(7))
    assert len({generate_run_name() for _ in range(50)}) > 40


@pytest.mark.parametrize("name", ["a", "0", "my-run", "churn-sweep-2", "a--b", "x" * MAX_RUN_NAME_LENGTH, "9lives"])
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_run_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "-run", "run-", "My-Run", "my_run", "my run", "run.1", "räd", "x" * (MAX_RUN_NAME_LENGTH + 1), "a\n"],
)
def test_invalid_names_are_rejected_with_the_rule_and_the_name(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_run_name(name)
    message = str(caught.value)
    assert repr(name) in message
    assert "lowercase letters, digits and hyphens" in message
    assert "63" in message


def test_too_long_names_say_how_long_they_are() -> None:
    with pytest.raises(ValidationError, match="70 characters long"):
        validate_run_name("a" * 70)


def test_non_strings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="must be a string"):
        validate_run_name(3)


def test_validation_errors_are_both_grid_errors_and_value_errors() -> None:
    """Code written for the original SDK catches ValueError; ours catches GridError."""
    with pytest.raises(ValueError):
        validate_run_name("Bad")
    with pytest.raises(GridError):
        validate_run_name("Bad")


def test_experiment_names_count_from_zero() -> None:
    assert experiment_name("my-run", 0) == "my-run-exp0"
    assert experiment_name("my-run", 12) == "my-run-exp12"
    with pytest.raises(ValidationError):
        experiment_name("my-run", -1)


@given(
    st.from_regex(r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?", fullmatch=True),
    st.integers(min_value=0, max_value=100_000),
)
def test_experiment_names_split_back_into_run_and_index(run: str, index: int) -> None:
    assert split_experiment_name(experiment_name(run, index)) == (run, index)


@pytest.mark.parametrize("name", ["my-run", "exp0", "-exp3", "my-run-exp", "my-run-expx"])
def test_names_without_the_experiment_suffix_do_not_split(name: str) -> None:
    assert split_experiment_name(name) is None
