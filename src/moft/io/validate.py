"""One validation kit for JSON-like input: each check names the field path in a one-line error.

Trajectory files, evaluation suites and run settings are all JSON-like values read from users. The
checks here take a value and its field path (``regions[1].mask.box[2]``) and either return the value
in its Python form or raise one line that starts with the path, in the file's own terms (array,
object, true/false, null). An unknown key or choice gets a "did you mean" hint from ``difflib``.

A ``Fields`` kit raises the error class of its caller (``TrajectoryError``, ``SuiteError``, ...), so
each front keeps its own ``ValueError`` subclass while the wording is shared.

Example:
    >>> check = Fields()                                  # FieldError; Fields(MyError) for another class
    >>> check.integer(8, "frames", 2, 4096)
    8
    >>> check.number("x", "regions[1].path[3]")
    Traceback (most recent call last):
        ...
    moft.io.validate.FieldError: regions[1].path[3]: must be a number, got string 'x'
    >>> check.object({"sped": 1}, "regions[0]", allowed=("speed", "direction"))
    Traceback (most recent call last):
        ...
    moft.io.validate.FieldError: regions[0]: unknown key 'sped'; did you mean 'speed'?
    >>> check.string("cosine", "distance", choices=("l1", "l2", "cosine"))
    'cosine'
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["FieldError", "Fields", "did_you_mean", "one_line", "short", "type_name"]


class FieldError(ValueError):
    """A JSON-like value failed a check; the message is one line starting with the field path."""


# --------------------------------------------------------------------------- how values read in a message


def one_line(text: str) -> str:
    """Escape every non-printable character (newlines included) so text stays on one line.

    Example:
        >>> one_line("a\\nb")
        'a\\\\nb'
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def is_bool(value: object) -> bool:
    """Whether ``value`` is a boolean (Python's or numpy's), which JSON keeps apart from numbers."""
    return isinstance(value, (bool, np.bool_))


def type_name(value: object) -> str:
    """The JSON name of a value's type, as users see it in the file.

    Example:
        >>> [type_name(v) for v in (None, True, 1.5, "x", [1], {"a": 1})]
        ['null', 'boolean', 'number', 'string', 'array', 'object']
    """
    if value is None:
        return "null"
    if is_bool(value):
        return "boolean"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return one_line(type(value).__name__)


def short(value: object, limit: int = 40) -> str:
    """A short one-line rendering of a scalar (``null``, ``true``, ``'text'``, ``1.5``), else its type name.

    Example:
        >>> short(None), short(False), short("up"), short(0.25), short([1, 2])
        ('null', 'false', "'up'", '0.25', 'array')
    """
    if value is None:
        return "null"
    if is_bool(value):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value if len(value) <= limit else value[:limit] + "...")
    elif isinstance(value, numbers.Number):
        text = repr(value)
        if len(text) > limit:
            text = text[:limit] + "..."
    else:
        text = type_name(value)
    return one_line(text)


def _got(value: object) -> str:
    """What a message says it got: a number as itself, anything else by type (and a scalar's value)."""
    if isinstance(value, numbers.Number) and not is_bool(value):
        return short(value)
    if isinstance(value, str) or is_bool(value):
        return f"{type_name(value)} {short(value)}"
    return type_name(value)


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to a misspelt ``name``, else ``""``.

    Example:
        >>> did_you_mean("sped", ["speed", "direction"])
        "; did you mean 'speed'?"
        >>> did_you_mean("colour", ["speed", "direction"])
        ''
    """
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {short(close[0])}?" if close else ""


def _bound(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _range(lo: float, hi: float, lo_open: bool = False) -> str:
    """``in [lo, hi]``, ``in (lo, hi]``, ``>= lo``, ``> lo`` or ``<= hi``; ``""`` for no bound."""
    has_lo, has_hi = lo != -math.inf, hi != math.inf
    if has_lo and has_hi:
        return f"in {'(' if lo_open else '['}{_bound(lo)}, {_bound(hi)}]"
    if has_lo:
        return f"{'>' if lo_open else '>='} {_bound(lo)}"
    return f"<= {_bound(hi)}" if has_hi else ""


# --------------------------------------------------------------------------- the checks


class Fields:
    """Field checks that raise ``error`` (a ``ValueError`` subclass) with ``"<path>: <problem>"`` on one line.

    Example:
        >>> class SuiteError(ValueError): ...
        >>> check = Fields(SuiteError)
        >>> check.array([1, 2], "seeds")
        [1, 2]
        >>> check.integer(0, "steps", 1, 10_000)
        Traceback (most recent call last):
            ...
        moft.io.validate.SuiteError: steps: must be in [1, 10000], got 0

    Args:
        error: The exception class raised, called with the one-line message.
    """

    def __init__(self, error: type[ValueError] = FieldError):
        self.error = error

    def fail(self, path: str, message: str) -> ValueError:
        """The error (to ``raise``) for ``path``: ``"<path>: <message>"`` on one line."""
        return self.error(one_line(f"{path}: {message}"))

    def object(self, value: object, path: str, allowed: Iterable[str] = (), required: Iterable[str] = ()) -> Mapping:
        """An object whose keys are all in ``allowed`` (or ``required``) and that has every ``required`` key.

        An unknown key is named with a "did you mean" hint; the first one in the document is reported.
        """
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be an object, got {type_name(value)}")
        required = tuple(required)
        known = set(allowed) | set(required)
        for key in value:
            if not isinstance(key, str) or key not in known:
                raise self.fail(path, f"unknown key {short(key)}{did_you_mean(key, sorted(known))}")
        for key in required:
            if key not in value:
                raise self.fail(path, f"missing key {short(key)}")
        return value

    def array(self, value: object, path: str, min_len: int = 1, max_len: float = math.inf,
              what: str = "items") -> list:
        """An array (list or tuple) of ``min_len`` to ``max_len`` items, returned as a list (non-empty by default)."""
        if not isinstance(value, (list, tuple)):
            raise self.fail(path, f"must be an array, got {type_name(value)}")
        if min_len <= len(value) <= max_len:
            return list(value)
        if min_len == max_len:
            raise self.fail(path, f"must have exactly {min_len} {what}, got {len(value)}")
        if len(value) < min_len:
            raise self.fail(path, f"must have at least {min_len} {what}, got {len(value)}")
        raise self.fail(path, f"must have at most {max_len} {what}, got {len(value)}")

    def integer(self, value: object, path: str, lo: float = -math.inf, hi: float = math.inf) -> int:
        """An integer in ``[lo, hi]`` (booleans and floats such as ``8.0`` are refused)."""
        if is_bool(value) or not isinstance(value, numbers.Integral):
            raise self.fail(path, f"must be an integer, got {_got(value)}")
        number = int(value)
        if not lo <= number <= hi:
            raise self.fail(path, f"must be {_range(lo, hi)}, got {short(number)}")
        return number

    def number(self, value: object, path: str, lo: float = -math.inf, hi: float = math.inf, *,
               lo_open: bool = False) -> float:
        """A finite real number in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``) as a float; booleans refused."""
        if is_bool(value) or not isinstance(value, numbers.Real):
            raise self.fail(path, f"must be a number, got {_got(value)}")
        try:
            number = float(value)
        except (OverflowError, TypeError, ValueError):  # a huge int, an exotic Real
            number = math.nan
        if not math.isfinite(number):
            raise self.fail(path, f"must be a finite number, got {short(value)}")
        if not (lo < number if lo_open else lo <= number) or not number <= hi:
            raise self.fail(path, f"must be {_range(lo, hi, lo_open)}, got {short(number)}")
        return number

    def string(self, value: object, path: str, choices: Iterable[str] | None = None, *,
               allow_empty: bool = False) -> str:
        """A string, non-blank unless ``allow_empty``, and one of ``choices`` when given (with a hint)."""
        if not isinstance(value, str) or not (allow_empty or value.strip()):
            kind = "a string" if allow_empty else "a non-empty string"
            raise self.fail(path, f"must be {kind}, got {_got(value)}")
        if choices is not None:
            choices = tuple(choices)
            if value not in choices:
                listed = ", ".join(short(c) for c in choices)
                raise self.fail(path, f"must be one of {listed}, got {short(value)}{did_you_mean(value, choices)}")
        return value

    def boolean(self, value: object, path: str) -> bool:
        """``true`` or ``false`` (numbers and strings such as ``"yes"`` are refused)."""
        if not is_bool(value):
            raise self.fail(path, f"must be true or false, got {_got(value)}")
        return bool(value)
