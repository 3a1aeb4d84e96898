"""Validation of command parameters: a raw JSON value in, typed values out, or a BadParamsError
whose message names the command and the field (no pygls here)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tether.errors import BadParamsError


def as_params(command: str, args: Sequence[Any]) -> Mapping[str, Any]:
    """Commands take zero or one argument, a params object."""
    if len(args) == 0 or (len(args) == 1 and args[0] is None):
        return {}
    if len(args) > 1:
        raise BadParamsError(f"{command} takes one params object, got {len(args)} arguments")
    raw = args[0]
    if isinstance(raw, Mapping):
        return raw
    asdict = getattr(raw, "_asdict", None)  # pygls turns unknown objects into namedtuples
    if callable(asdict):
        out = asdict()
        if isinstance(out, Mapping):
            return out
    raise BadParamsError(f"{command} expects a params object, got {type(raw).__name__}")


def _fail(command: str, name: str, want: str, got: Any) -> BadParamsError:
    shown = repr(got)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return BadParamsError(f"{command}: '{name}' must be {want}, got {shown}")


# Numbers end up in SQLite, whose integers are 64-bit: larger ones are bad params, not a crash.
MAX_INT = 2**63 - 1


def opt_int(
    command: str,
    p: Mapping[str, Any],
    name: str,
    default: int | None = None,
    minimum: int | None = None,
    *,
    maximum: int = MAX_INT,
) -> int | None:
    if name not in p or p[name] is None:
        return default
    value = p[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not math.isfinite(value))
        or int(value) != value
    ):
        raise _fail(command, name, "a whole number", value)
    if minimum is not None and value < minimum:
        raise _fail(command, name, f"at least {minimum}", value)
    if value > maximum:
        raise _fail(command, name, f"at most {maximum}", value)
    return int(value)


def req_int(command: str, p: Mapping[str, Any], name: str, minimum: int | None = None) -> int:
    if name not in p or p[name] is None:
        raise BadParamsError(f"{command}: '{name}' is required")
    value = opt_int(command, p, name, None, minimum)
    assert value is not None
    return value


def checkpoint_id(command: str, p: Mapping[str, Any], name: str, required: bool) -> int | None:
    if required:
        return req_int(command, p, name, minimum=1)
    return opt_int(command, p, name, None, minimum=1)


def opt_str(command: str, p: Mapping[str, Any], name: str, max_len: int = 10_000) -> str | None:
    if name not in p or p[name] is None:
        return None
    value = p[name]
    if not isinstance(value, str):
        raise _fail(command, name, "a string", value)
    if len(value) > max_len:
        raise BadParamsError(f"{command}: '{name}' is longer than {max_len} characters")
    if "\x00" in value:
        raise BadParamsError(f"{command}: '{name}' contains a NUL byte")
    return value


def req_str(command: str, p: Mapping[str, Any], name: str, max_len: int = 10_000) -> str:
    value = opt_str(command, p, name, max_len)
    if value is None or not value.strip():
        raise BadParamsError(f"{command}: '{name}' is required (a non-empty string)")
    return value


def opt_bool(command: str, p: Mapping[str, Any], name: str, default: bool) -> bool:
    if name not in p or p[name] is None:
        return default
    value = p[name]
    if not isinstance(value, bool):
        raise _fail(command, name, "true or false", value)
    return value


def opt_str_list(command: str, p: Mapping[str, Any], name: str, max_items: int = 10_000) -> list[str] | None:
    if name not in p or p[name] is None:
        return None
    value = p[name]
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _fail(command, name, "a list of strings", value)
    if len(value) > max_items:
        raise BadParamsError(f"{command}: '{name}' has more than {max_items} items")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item or "\x00" in item:
            raise _fail(command, f"{name}[{i}]", "a non-empty string", item)
        out.append(item)
    return out
