"""Command params validation: every bad value names the command and the field."""

from __future__ import annotations

from collections import namedtuple

import pytest

from tether.errors import BadParamsError
from tether.lsp import params as prm


def test_as_params() -> None:
    assert prm.as_params("c", []) == {}
    assert prm.as_params("c", [None]) == {}
    assert prm.as_params("c", [{"a": 1}]) == {"a": 1}
    Obj = namedtuple("Obj", ["a"])
    assert prm.as_params("c", [Obj(a=2)]) == {"a": 2}
    with pytest.raises(BadParamsError, match="c takes one params object, got 2 arguments"):
        prm.as_params("c", [{}, {}])
    with pytest.raises(BadParamsError, match="c expects a params object, got str"):
        prm.as_params("c", ["x"])


@pytest.mark.parametrize(
    ("fn", "value", "needle"),
    [
        (lambda p: prm.opt_int("c", p, "n"), {"n": "1"}, "'n' must be a whole number, got '1'"),
        (lambda p: prm.opt_int("c", p, "n"), {"n": True}, "'n' must be a whole number"),
        (lambda p: prm.opt_int("c", p, "n"), {"n": 1.5}, "'n' must be a whole number"),
        (lambda p: prm.opt_int("c", p, "n", minimum=1), {"n": 0}, "'n' must be at least 1"),
        # SQLite integers are 64-bit: a bigger number is a bad param, not an OverflowError (issue 20)
        (lambda p: prm.opt_int("c", p, "n"), {"n": 2**63}, f"'n' must be at most {2**63 - 1}"),
        (lambda p: prm.checkpoint_id("c", p, "n", True), {"n": 10**20}, "must be at most"),
        (lambda p: prm.opt_int("c", p, "n"), {"n": 1e300}, "must be at most"),
        (lambda p: prm.opt_int("c", p, "n"), {"n": float("inf")}, "'n' must be a whole number"),
        (lambda p: prm.opt_int("c", p, "n"), {"n": float("nan")}, "'n' must be a whole number"),
        (lambda p: prm.req_int("c", p, "n"), {}, "'n' is required"),
        (lambda p: prm.req_str("c", p, "s"), {"s": "  "}, "'s' is required"),
        (lambda p: prm.opt_str("c", p, "s"), {"s": 3}, "'s' must be a string"),
        (lambda p: prm.opt_str("c", p, "s", max_len=3), {"s": "abcd"}, "longer than 3"),
        (lambda p: prm.opt_str("c", p, "s"), {"s": "a\x00"}, "NUL"),
        (lambda p: prm.opt_bool("c", p, "b", True), {"b": 1}, "'b' must be true or false"),
        (lambda p: prm.opt_str_list("c", p, "l"), {"l": "ab"}, "'l' must be a list of strings"),
        (lambda p: prm.opt_str_list("c", p, "l"), {"l": ["a", ""]}, "'l[1]' must be a non-empty string"),
        (lambda p: prm.opt_str_list("c", p, "l", max_items=1), {"l": ["a", "b"]}, "more than 1 items"),
    ],
)
def test_bad_values(fn: object, value: dict[str, object], needle: str) -> None:
    with pytest.raises(BadParamsError) as info:
        fn(value)  # type: ignore[operator]
    assert needle in info.value.message
    assert info.value.message.startswith("c: ")


def test_good_values_and_defaults() -> None:
    assert prm.opt_int("c", {"n": 3.0}, "n") == 3
    assert prm.opt_int("c", {}, "n", 50) == 50
    assert prm.opt_int("c", {"n": None}, "n", 50) == 50
    assert prm.checkpoint_id("c", {"checkpoint": 2}, "checkpoint", required=True) == 2
    assert prm.checkpoint_id("c", {}, "checkpoint", required=False) is None
    assert prm.opt_bool("c", {}, "b", True) is True
    assert prm.opt_str_list("c", {"l": ("a", "b")}, "l") == ["a", "b"]
    long_repr = prm._fail("c", "x", "a string", "y" * 100).message
    assert long_repr.endswith("...")
