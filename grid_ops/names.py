"""Run and experiment names: generation, validation, and the ``<run>-exp<N>`` convention.

Pure functions over the standard library so that the SDK, the CLI and the control plane apply the same
rules (docs/concepts.md, "Names").
"""

from __future__ import annotations

import random
import re

from grid_ops.errors import ValidationError

MAX_RUN_NAME_LENGTH = 63
"""Run names must fit a DNS label, so that they can name processes, jobs and directories everywhere."""

_RUN_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
_EXPERIMENT_SUFFIX = re.compile(r"-exp(\d+)$")

ADJECTIVES = (
    "agile",
    "amber",
    "ancient",
    "bold",
    "brave",
    "bright",
    "brisk",
    "calm",
    "clever",
    "cosmic",
    "crimson",
    "curious",
    "daring",
    "dazzling",
    "eager",
    "electric",
    "elegant",
    "fearless",
    "fierce",
    "gentle",
    "gifted",
    "golden",
    "graceful",
    "happy",
    "honest",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucid",
    "lucky",
    "magnetic",
    "mellow",
    "mighty",
    "modest",
    "nimble",
    "noble",
    "patient",
    "placid",
    "polished",
    "quick",
    "quiet",
    "radiant",
    "rapid",
    "serene",
    "sharp",
    "silent",
    "sleek",
    "snowy",
    "solar",
    "steady",
    "stellar",
    "sturdy",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "witty",
    "zealous",
)
"""Adjectives for generated run names."""

SCIENTISTS = (
    "agnesi",
    "archimedes",
    "babbage",
    "bernoulli",
    "bohr",
    "boltzmann",
    "cantor",
    "carson",
    "cauchy",
    "curie",
    "darwin",
    "dirac",
    "einstein",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "fourier",
    "franklin",
    "galileo",
    "gauss",
    "germain",
    "godel",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hilbert",
    "hopper",
    "hubble",
    "hypatia",
    "jackson",
    "johnson",
    "kepler",
    "lamarr",
    "laplace",
    "leibniz",
    "lovelace",
    "maxwell",
    "meitner",
    "mendel",
    "mirzakhani",
    "newton",
    "noether",
    "pascal",
    "pasteur",
    "planck",
    "poincare",
    "ramanujan",
    "riemann",
    "sagan",
    "shannon",
    "tesla",
    "turing",
    "volta",
    "wiles",
    "wu",
    "yalow",
)
"""Surnames of scientists for generated run names."""


def generate_run_name(rng: random.Random | None = None) -> str:
    """A fresh run name ``adjective-surname-NNNN``; pass ``rng`` to make it reproducible."""
    chooser = rng if rng is not None else random.SystemRandom()
    return f"{chooser.choice(ADJECTIVES)}-{chooser.choice(SCIENTISTS)}-{chooser.randrange(10_000):04d}"


def validate_resource_name(name: object, kind: str, example: str) -> str:
    """Return ``name`` if it follows the naming rule of runs and datastores, else raise
    ``ValidationError`` stating the rule for ``kind`` (``"run"``, ``"datastore"``)."""
    if not isinstance(name, str):
        raise ValidationError(f"{kind} name must be a string, got {type(name).__name__} {name!r}")
    if len(name) > MAX_RUN_NAME_LENGTH or not _RUN_NAME.fullmatch(name):
        raise ValidationError(
            f"invalid {kind} name {name!r}: use 1 to {MAX_RUN_NAME_LENGTH} lowercase letters, digits and "
            f"hyphens, starting and ending with a letter or digit (e.g. {example!r})"
            + (f"; this one is {len(name)} characters long" if len(name) > MAX_RUN_NAME_LENGTH else "")
        )
    return name


def validate_run_name(name: object) -> str:
    """Return ``name`` if it is a valid run name, else raise ``ValidationError`` stating the rule."""
    return validate_resource_name(name, "run", "churn-sweep-2")


def experiment_name(run_name: str, index: int) -> str:
    """The name of the ``index``-th experiment (from 0) of a run: ``<run>-exp<index>``."""
    if index < 0:
        raise ValidationError(f"experiment index must be >= 0, got {index}")
    return f"{run_name}-exp{index}"


def split_experiment_name(name: str) -> tuple[str, int] | None:
    """``(run_name, index)`` for a name of the form ``<run>-exp<N>``, else ``None``."""
    match = _EXPERIMENT_SUFFIX.search(name)
    if match is None or match.start() == 0:
        return None
    return name[: match.start()], int(match.group(1))
