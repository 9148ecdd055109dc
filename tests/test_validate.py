"""Tests for moft.io.validate: the one validation kit (field paths, one-line errors, did-you-mean hints)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moft.io.validate import FieldError, Fields, did_you_mean

check = Fields()


class SuiteError(ValueError):
    pass


def message(call) -> str:
    with pytest.raises(FieldError) as info:
        call()
    text = str(info.value)
    assert "\n" not in text
    return text


def test_each_error_names_the_field_path_and_what_it_got():
    assert message(lambda: check.number("x", "regions[1].path[3]")) == "regions[1].path[3]: must be a number, got string 'x'"
    assert message(lambda: check.number(True, "a")) == "a: must be a number, got boolean true"
    assert message(lambda: check.number(None, "a")) == "a: must be a number, got null"
    assert message(lambda: check.number([1], "a")) == "a: must be a number, got array"
    assert message(lambda: check.number(float("nan"), "a")) == "a: must be a finite number, got nan"
    assert message(lambda: check.number(10**400, "a")) .startswith("a: must be a finite number, got 1000")
    assert message(lambda: check.integer(8.0, "frames")) == "frames: must be an integer, got 8.0"
    assert message(lambda: check.integer(np.bool_(True), "frames")) == "frames: must be an integer, got boolean true"
    assert message(lambda: check.boolean("yes", "shared_kv")) == "shared_kv: must be true or false, got string 'yes'"
    assert message(lambda: check.boolean(1, "shared_kv")) == "shared_kv: must be true or false, got 1"
    assert message(lambda: check.object([1], "top")) == "top: must be an object, got array"
    assert message(lambda: check.array({}, "seeds")) == "seeds: must be an array, got object"
    assert message(lambda: check.string(3, "prompts[0]")) == "prompts[0]: must be a non-empty string, got 3"
    assert message(lambda: check.string("  ", "name")) == "name: must be a non-empty string, got string '  '"
    assert message(lambda: check.string(3, "note", allow_empty=True)) == "note: must be a string, got 3"


def test_ranges_are_inclusive_unless_said_open_and_the_message_states_the_range():
    assert check.integer(2, "f", 2, 5) == 2 and check.integer(np.int64(5), "f", 2, 5) == 5
    assert type(check.integer(np.int64(5), "f")) is int
    assert message(lambda: check.integer(1, "f", 2, 5)) == "f: must be in [2, 5], got 1"
    assert message(lambda: check.integer(6, "f", 2, 5)) == "f: must be in [2, 5], got 6"
    assert message(lambda: check.integer(-1, "seed", 0)) == "seed: must be >= 0, got -1"
    assert message(lambda: check.integer(9, "n", hi=8)) == "n: must be <= 8, got 9"
    assert check.number(1.0, "speed", 0.0, 1.0, lo_open=True) == 1.0
    assert message(lambda: check.number(0, "speed", 0.0, 1.0, lo_open=True)) == "speed: must be in (0, 1], got 0.0"
    assert message(lambda: check.number(-1e-9, "x", 0.0)) == "x: must be >= 0, got -1e-09"
    assert message(lambda: check.number(0.0, "x", 0.0, lo_open=True)) == "x: must be > 0, got 0.0"
    assert check.number(0.0, "x", 0.0) == 0.0 and message(lambda: check.number(-math.inf, "x")) == "x: must be a finite number, got -inf"


def test_objects_refuse_unknown_keys_with_a_hint_and_require_keys():
    region = {"mask": "all", "sped": 1}
    assert (message(lambda: check.object(region, "regions[0]", allowed=("speed", "direction"), required=("mask",)))
            == "regions[0]: unknown key 'sped'; did you mean 'speed'?")
    assert message(lambda: check.object({"colour": 1}, "r", allowed=("speed",))) == "r: unknown key 'colour'"
    assert message(lambda: check.object({3: 1}, "r", allowed=("speed",))) == "r: unknown key 3"
    assert message(lambda: check.object({}, "r", allowed=("speed",), required=("mask",))) == "r: missing key 'mask'"
    assert check.object({"mask": 1}, "r", required=("mask",)) == {"mask": 1}


def test_arrays_count_their_items_and_strings_come_from_choices():
    assert check.array((1, 2), "p", 2, 2) == [1, 2]
    assert message(lambda: check.array([], "seeds")) == "seeds: must have at least 1 items, got 0"
    assert message(lambda: check.array([1], "p", 2, 2, "numbers [x, y]")) == "p: must have exactly 2 numbers [x, y], got 1"
    assert message(lambda: check.array([1, 2, 3], "p", 1, 2, "points")) == "p: must have at most 2 points, got 3"
    assert check.string("l2", "distance", choices=("l1", "l2")) == "l2"
    assert (message(lambda: check.string("cosin", "distance", choices=("l1", "cosine")))
            == "distance: must be one of 'l1', 'cosine', got 'cosin'; did you mean 'cosine'?")


def test_a_kit_raises_its_callers_error_class_and_messages_stay_on_one_line():
    with pytest.raises(SuiteError, match=r"^steps: must be in \[1, 10000\], got 0$"):
        Fields(SuiteError).integer(0, "steps", 1, 10_000)
    assert not issubclass(SuiteError, FieldError) and issubclass(FieldError, ValueError)
    assert message(lambda: check.object({"a\nb": 1}, "top")) == "top: unknown key 'a\\nb'"
    assert did_you_mean("dwon", ["up", "down"]) == "; did you mean 'down'?" and did_you_mean(3, ["a"]) == ""
