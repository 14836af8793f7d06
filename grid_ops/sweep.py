"""Expand a run command that contains sweep expressions into experiments.

The command is split like a POSIX shell (:func:`shlex.split`).  An argument value is a
*sweep dimension* when it is one of:

* a Python list literal of str/int/float/bool/None: ``"[0.01, 0.1]"``, ``"['a', 'b']"``;
* ``range(start, stop[, step])`` with Python semantics (ints only);
* a distribution whose last argument is a sample count: ``uniform(lo, hi, n)``,
  ``loguniform(lo, hi, n)``, ``normal(mu, sigma, n)``, ``randint(lo, hi, n)`` (``hi``
  exclusive).  In ``random_search`` the count is optional (one fresh sample per trial).

A value is attached to a flag either as the token after ``--flag`` / ``-f`` or in the
``--flag=value`` form.  A bare positional token that is a sweep expression is a dimension
too, named ``arg<i>`` after its index in the split command.  Everything else passes
through unchanged (quoting is preserved: :attr:`Trial.command` re-quotes with
:func:`shlex.join`).

Expressions are parsed with :mod:`ast`, never evaluated.  This module is pure (no I/O)
and only uses the standard library.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import math
import random
import re
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

__all__ = [
    "DEFAULT_MAX_EXPERIMENTS",
    "STRATEGIES",
    "Dimension",
    "SweepError",
    "Trial",
    "count_experiments",
    "expand",
    "parse_command",
]


class SweepError(ValueError):
    """A command, sweep expression or strategy cannot be expanded; the message says why."""


STRATEGIES: Final[tuple[str, ...]] = ("grid_search", "random_search", "none")
DEFAULT_MAX_EXPERIMENTS: Final[int] = 10_000

_DISTRIBUTIONS: Final[tuple[str, ...]] = ("uniform", "loguniform", "normal", "randint")
_SIGNATURES: Final[Mapping[str, str]] = {
    "range": "range(start, stop[, step])",
    "uniform": "uniform(low, high, n)",
    "loguniform": "loguniform(low, high, n)",
    "normal": "normal(mu, sigma, n)",
    "randint": "randint(low, high, n)",
}
# A single range(...) dimension is materialised into a tuple; refuse absurd sizes.
_MAX_RANGE_VALUES: Final[int] = 1_000_000

_CALL_RE: Final = re.compile(r"(range|uniform|loguniform|normal|randint)\s*\(")
_FLAG_RE: Final = re.compile(r"--?[^\s=\-][^\s=]*")
_FLAG_EQ_RE: Final = re.compile(r"(--?[^\s=\-][^\s=]*)=(.*)", re.DOTALL)

DimensionKind = Literal["list", "range", "distribution"]


@dataclass(frozen=True)
class Dimension:
    """One swept argument of a run command."""

    name: str
    """The flag without leading dashes (``"lr"`` for ``--lr``), or ``"arg<i>"`` for a positional."""
    flag: str
    """The flag token as written (``"--lr"``); ``""`` for a positional argument."""
    expression: str
    """The sweep expression exactly as written, e.g. ``"[0.1, 0.01]"``."""
    values: tuple[object, ...] | None
    """The finite values (list or range), or ``None`` for a distribution."""
    kind: DimensionKind = "list"
    position: int = 0
    """Index in the split command of the token holding the expression."""
    prefix: str = ""
    """Text before the expression in that token: ``"--lr="`` for the ``=`` form, else ``""``."""
    distribution: str | None = None
    """``"uniform"``, ``"loguniform"``, ``"normal"`` or ``"randint"`` for a distribution."""
    dist_args: tuple[float, float] | None = None
    """``(low, high)`` or ``(mu, sigma)`` of a distribution."""
    count: int | None = None
    """Sample count of a distribution (``None`` when omitted)."""

    @property
    def size(self) -> int | None:
        """Number of values this dimension contributes to a grid (``None``: distribution without count)."""
        if self.values is not None:
            return len(self.values)
        return self.count

    def sample(self, rng: random.Random) -> int | float:
        """Draw one value from this distribution dimension."""
        if self.dist_args is None:
            raise SweepError(f"{self.expression!r} is not a distribution")
        a, b = self.dist_args
        if self.distribution == "uniform":
            return rng.uniform(a, b)
        if self.distribution == "loguniform":
            value = math.exp(rng.uniform(math.log(a), math.log(b)))
            return min(max(value, a), b)  # guard against exp/log rounding
        if self.distribution == "normal":
            return rng.normalvariate(a, b)
        return rng.randrange(int(a), int(b))

    def token(self, value: object) -> str:
        """The argv element carrying ``value`` for this dimension."""
        return self.prefix + _render(value)


@dataclass(frozen=True)
class Trial:
    """One experiment of an expanded sweep."""

    index: int
    """0..N-1, the experiment number."""
    argv: tuple[str, ...]
    """The experiment's command, split."""
    params: dict[str, str] = field(default_factory=dict, hash=False)
    """Dimension name -> rendered value, in dimension order."""

    @property
    def command(self) -> str:
        """The experiment's command as one shell-quoted string."""
        return shlex.join(self.argv)


# --------------------------------------------------------------------------- helpers


def _render(value: object) -> str:
    """Render a value for the command line: str as-is, floats via repr, others via str."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _derive_seed(seed: int, *parts: object) -> int:
    """A stable 64-bit seed derived from ``seed`` and ``parts`` (independent of hash randomisation)."""
    data = ":".join([str(seed), *(str(p) for p in parts)]).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_flag(token: str) -> bool:
    return _FLAG_RE.fullmatch(token) is not None and not _is_number(token)


def _looks_like_sweep(value: str) -> bool:
    text = value.strip()
    return text.startswith("[") or _CALL_RE.match(text) is not None


def _tokenize(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        try:
            return shlex.split(command, posix=True)
        except ValueError as exc:
            raise SweepError(f"cannot split command {command!r}: {exc}") from None
    tokens = list(command)
    for token in tokens:
        if not isinstance(token, str):
            raise SweepError(f"command tokens must be strings, got {token!r} ({type(token).__name__})")
    return tokens


# --------------------------------------------------------------------------- parsing


class _Where:
    """Builds error messages that quote the offending argument exactly as written."""

    def __init__(self, expression: str, flag: str, position: int, prefix: str) -> None:
        self.expression = expression
        if prefix:
            self.where = f"in argument '{prefix}{expression}'"
        elif flag:
            self.where = f"for {flag}"
        else:
            self.where = f"for positional argument {position}"

    def fail(self, reason: str) -> SweepError:
        return SweepError(f"invalid sweep expression '{self.expression}' {self.where}: {reason}")


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _NotLiteral from exc


class _NotLiteral(Exception):
    pass


def _parse_tree(text: str, where: _Where, what: str) -> ast.expr:
    try:
        return ast.parse(text, mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise where.fail(f"not a valid {what}") from None


def _parse_list(text: str, where: _Where) -> tuple[object, ...]:
    body = _parse_tree(text, where, "list literal (check brackets, commas and quotes)")
    if not isinstance(body, ast.List):
        raise where.fail("expected a single list literal such as [1, 2, 3]")
    if not body.elts:
        raise where.fail("the list is empty")
    values: list[object] = []
    seen: set[str] = set()
    for elt in body.elts:
        shown = ast.unparse(elt)
        try:
            value = _literal(elt)
        except _NotLiteral:
            hint = f" (quote strings: '{shown}')" if isinstance(elt, ast.Name) else ""
            raise where.fail(f"element {shown} is not a literal{hint}") from None
        if not (value is None or isinstance(value, (str, int, float))):
            raise where.fail(
                f"element {shown} is a {type(value).__name__}; elements must be str, int, float, bool or None"
            )
        rendered = _render(value)
        if rendered in seen:
            raise where.fail(f"value {rendered!r} appears more than once")
        seen.add(rendered)
        values.append(value)
    return tuple(values)


def _parse_call(text: str, fname: str, where: _Where) -> tuple[list[int | float], ast.Call]:
    signature = _SIGNATURES[fname]
    body = _parse_tree(text, where, f"{fname}(...) call; expected {signature}")
    if not (isinstance(body, ast.Call) and isinstance(body.func, ast.Name) and body.func.id == fname):
        raise where.fail(f"expected a single call {signature}")
    if body.keywords:
        raise where.fail(f"keyword arguments are not supported; write {signature}")
    args: list[int | float] = []
    for node in body.args:
        shown = ast.unparse(node)
        try:
            value = _literal(node)
        except _NotLiteral:
            raise where.fail(f"argument {shown} is not a number; expected {signature}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise where.fail(f"argument {shown} is not a number; expected {signature}")
        if isinstance(value, float) and not math.isfinite(value):
            raise where.fail(f"argument {shown} is not finite")
        args.append(value)
    return args, body


def _range_size(start: int, stop: int, step: int) -> int:
    return max(0, (stop - start + step + (-1 if step > 0 else 1)) // step)


def _parse_dimension(name: str, flag: str, expression: str, position: int, prefix: str) -> Dimension:
    where = _Where(expression, flag, position, prefix)
    text = expression.strip()
    base = Dimension(name, flag, expression, None, position=position, prefix=prefix)
    if text.startswith("["):
        return replace(base, values=_parse_list(text, where), kind="list")

    match = _CALL_RE.match(text)
    assert match is not None  # guarded by _looks_like_sweep
    fname = match.group(1)
    args, call = _parse_call(text, fname, where)

    if fname == "range":
        if not 1 <= len(args) <= 3:
            raise where.fail(f"range takes 1 to 3 arguments, got {len(args)}; expected {_SIGNATURES[fname]}")
        if not all(isinstance(a, int) for a in args):
            raise where.fail("range arguments must be integers")
        if len(args) == 3 and args[2] == 0:
            raise where.fail("range step must not be zero")
        span = range(*(int(a) for a in args))
        size = _range_size(span.start, span.stop, span.step)
        if size == 0:
            raise where.fail("the range is empty")
        if size > _MAX_RANGE_VALUES:
            raise where.fail(f"the range has {size} values, more than the {_MAX_RANGE_VALUES} supported")
        return replace(base, values=tuple(span), kind="range")

    signature = _SIGNATURES[fname]
    if len(args) not in (2, 3):
        raise where.fail(
            f"{fname} takes 2 parameters and a sample count, got {len(args)} arguments; expected {signature}"
        )
    a, b = args[0], args[1]
    count: int | None = None
    if len(args) == 3:
        n = args[2]
        if not isinstance(n, int) or n < 1:
            raise where.fail(f"the sample count must be a positive integer, got {ast.unparse(call.args[2])}")
        count = n
    if fname == "randint":
        if not (isinstance(a, int) and isinstance(b, int)):
            raise where.fail("randint bounds must be integers")
        if a >= b:
            raise where.fail(f"randint needs low < high (high is exclusive), got low={a}, high={b}")
    elif fname == "normal":
        if b <= 0:
            raise where.fail(f"normal needs sigma > 0, got sigma={b!r}")
    else:
        if a >= b:
            raise where.fail(f"{fname} needs low < high, got low={a!r}, high={b!r}")
        if fname == "loguniform" and a <= 0:
            raise where.fail(f"loguniform needs low > 0, got low={a!r}")
    return replace(base, kind="distribution", distribution=fname, dist_args=(a, b), count=count)


def parse_command(command: str | Sequence[str]) -> tuple[list[str], list[Dimension]]:
    """Split ``command`` and find its sweep dimensions.

    A ``str`` is split with :func:`shlex.split`; a sequence of strings is taken as already
    split.  Returns the argv tokens (unchanged) and the dimensions in command order.
    Raises :class:`SweepError` for malformed sweep expressions and duplicate dimension names.
    """
    tokens = _tokenize(command)
    dimensions: list[Dimension] = []
    by_name: dict[str, Dimension] = {}
    previous_flag: str | None = None
    for position, token in enumerate(tokens):
        dimension: Dimension | None = None
        eq = _FLAG_EQ_RE.fullmatch(token)
        if eq is not None and not _is_number(eq.group(1)):
            flag, value = eq.group(1), eq.group(2)
            if _looks_like_sweep(value):
                dimension = _parse_dimension(flag.lstrip("-"), flag, value, position, flag + "=")
            previous_flag = None
        elif _looks_like_sweep(token):
            if previous_flag is not None:
                dimension = _parse_dimension(previous_flag.lstrip("-"), previous_flag, token, position, "")
            else:
                dimension = _parse_dimension(f"arg{position}", "", token, position, "")
            previous_flag = None
        else:
            previous_flag = token if _is_flag(token) else None
        if dimension is not None:
            other = by_name.get(dimension.name)
            if other is not None:
                raise SweepError(
                    f"argument {dimension.name!r} is swept twice: '{other.expression}' and '{dimension.expression}'"
                )
            by_name[dimension.name] = dimension
            dimensions.append(dimension)
    return tokens, dimensions


# --------------------------------------------------------------------------- strategies


def _check_strategy(strategy: str) -> str:
    if not isinstance(strategy, str) or strategy.strip().lower() not in STRATEGIES:
        raise SweepError(f"unknown strategy {strategy!r}; valid strategies are: {', '.join(STRATEGIES)}")
    return strategy.strip().lower()


def _int_option(options: Mapping[str, object], key: str) -> int | None:
    raw = options.get(key)
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        try:
            return int(raw.strip())
        except ValueError:
            pass
    raise SweepError(f"strategy option {key!r} must be an integer, got {raw!r}")


def _seed(options: Mapping[str, object]) -> int:
    seed = _int_option(options, "seed")
    return 0 if seed is None else seed


def _num_trials(options: Mapping[str, object]) -> int:
    if options.get("num_trials") is None:
        raise SweepError("random_search needs strategy_options['num_trials'] (a positive integer)")
    k = _int_option(options, "num_trials")
    if k is None or k < 1:
        raise SweepError(f"num_trials must be a positive integer, got {options.get('num_trials')!r}")
    return k


def _check_max(max_experiments: int) -> None:
    if isinstance(max_experiments, bool) or not isinstance(max_experiments, int) or max_experiments < 1:
        raise SweepError(f"max_experiments must be a positive integer, got {max_experiments!r}")


def _grid_size(dimensions: Sequence[Dimension]) -> int:
    for d in dimensions:
        if d.size is None:
            dist = d.dist_args or (0, 1)
            raise SweepError(
                f"'{d.expression}' for {d.flag or d.name} has no sample count; grid_search needs one, "
                f"e.g. {d.distribution}({dist[0]!r}, {dist[1]!r}, 5)"
            )
    return math.prod(d.size or 0 for d in dimensions)


def _random_plan(dimensions: Sequence[Dimension], options: Mapping[str, object]) -> tuple[int, int]:
    """Validate a random search; returns (num_trials, size of the finite part of the product)."""
    k = _num_trials(options)
    finite = math.prod(len(d.values) for d in dimensions if d.values is not None)
    infinite = any(d.values is None for d in dimensions)
    if not infinite and k > finite:
        sizes = " x ".join(str(len(d.values or ())) for d in dimensions) or "no swept arguments"
        raise SweepError(
            f"random_search asks for num_trials={k} but the grid has only {finite} distinct points "
            f"({sizes}); lower num_trials or add values"
        )
    return k, finite


def count_experiments(
    command: str | Sequence[str],
    strategy: str = "grid_search",
    strategy_options: Mapping[str, object] | None = None,
    *,
    max_experiments: int | None = None,
) -> int | None:
    """How many experiments :func:`expand` would make, validating everything it validates.

    Always returns an int today (``None`` is reserved for an unknown count).  When
    ``max_experiments`` is given, a count above it raises :class:`SweepError` as in
    :func:`expand`.
    """
    strategy = _check_strategy(strategy)
    options: Mapping[str, object] = strategy_options or {}
    tokens = _tokenize(command)
    if not tokens:
        raise SweepError("the command is empty")
    if strategy == "none":
        total = 1
    else:
        _, dimensions = parse_command(tokens)
        _seed(options)
        if strategy == "grid_search":
            total = _grid_size(dimensions)
        else:
            total, _finite = _random_plan(dimensions, options)
    if max_experiments is not None:
        _check_max(max_experiments)
        _check_limit(total, max_experiments, strategy)
    return total


def _check_limit(total: int, max_experiments: int, strategy: str) -> None:
    if total > max_experiments:
        raise SweepError(f"{strategy} would create {total} experiments, more than max_experiments={max_experiments}")


def _draw_indices(rng: random.Random, total: int, k: int) -> list[int]:
    """``k`` indices into ``range(total)``: distinct while possible, then repeated shuffles."""
    drawn: list[int] = []
    while len(drawn) < k:
        need = min(k - len(drawn), total)
        if total <= sys.maxsize:
            drawn.extend(rng.sample(range(total), need))
        else:  # len(range) overflows; need <= k is tiny compared to total
            seen: set[int] = set()
            while len(seen) < need:
                index = rng.randrange(total)
                if index not in seen:
                    seen.add(index)
                    drawn.append(index)
    return drawn


def _grid_trials(tokens: list[str], dimensions: Sequence[Dimension], seed: int) -> Iterator[Trial]:
    choices: list[list[tuple[str, str]]] = []
    for i, d in enumerate(dimensions):
        if d.values is not None:
            values: Sequence[object] = d.values
        else:
            rng = random.Random(_derive_seed(seed, "dimension", i))
            values = [d.sample(rng) for _ in range(d.count or 0)]
        choices.append([(d.prefix + _render(v), _render(v)) for v in values])
    slots = [(d.position, d.name) for d in dimensions]
    for index, combo in enumerate(itertools.product(*choices)):
        argv = list(tokens)
        params: dict[str, str] = {}
        for (position, name), (token, rendered) in zip(slots, combo, strict=True):
            argv[position] = token
            params[name] = rendered
        yield Trial(index, tuple(argv), params)


def _random_trials(
    tokens: list[str], dimensions: Sequence[Dimension], seed: int, k: int, finite: int
) -> Iterator[Trial]:
    indices = _draw_indices(random.Random(_derive_seed(seed, "trials")), finite, k)
    rngs = {i: random.Random(_derive_seed(seed, "dimension", i)) for i, d in enumerate(dimensions) if d.values is None}
    radices = [(i, len(d.values)) for i, d in enumerate(dimensions) if d.values is not None]
    radices.reverse()  # decode least significant (last dimension, fastest) first
    for trial_index, flat in enumerate(indices):
        chosen: dict[int, object] = {}
        rest = flat
        for i, size in radices:
            rest, digit = divmod(rest, size)
            chosen[i] = dimensions[i].values[digit]  # type: ignore[index]
        argv = list(tokens)
        params: dict[str, str] = {}
        for i, d in enumerate(dimensions):
            value = chosen[i] if i in chosen else d.sample(rngs[i])
            argv[d.position] = d.token(value)
            params[d.name] = _render(value)
        yield Trial(trial_index, tuple(argv), params)


def expand(
    command: str | Sequence[str],
    strategy: str = "grid_search",
    strategy_options: Mapping[str, object] | None = None,
    max_experiments: int = DEFAULT_MAX_EXPERIMENTS,
) -> list[Trial]:
    """Expand ``command`` into experiments according to ``strategy``.

    * ``grid_search``: the Cartesian product, first swept argument slowest; a distribution
      contributes its ``n`` samples, seeded by ``strategy_options["seed"]`` (default 0).
    * ``random_search``: ``strategy_options["num_trials"]`` distinct points of the product,
      drawn reproducibly from ``seed``; distributions are sampled afresh per trial.
    * ``none``: the command once, as written.

    Option values may be strings (``"5"``).  The size is checked against
    ``max_experiments`` before anything is materialised.  Raises :class:`SweepError`.
    """
    strategy = _check_strategy(strategy)
    _check_max(max_experiments)
    options: Mapping[str, object] = strategy_options or {}
    tokens = _tokenize(command)
    if not tokens:
        raise SweepError("the command is empty")
    if strategy == "none":
        return [Trial(0, tuple(tokens), {})]

    _, dimensions = parse_command(tokens)
    seed = _seed(options)
    if strategy == "grid_search":
        total = _grid_size(dimensions)
        _check_limit(total, max_experiments, strategy)
        return list(_grid_trials(tokens, dimensions, seed))
    k, finite = _random_plan(dimensions, options)
    _check_limit(k, max_experiments, strategy)
    return list(_random_trials(tokens, dimensions, seed, k, finite))
