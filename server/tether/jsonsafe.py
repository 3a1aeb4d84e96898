"""JSON from untrusted sources, parsed with a nesting limit.

``json.loads`` accepts an array nested ~980 deep (2 KB of ``[``), and everything downstream that
recurses over it (``json.dumps`` when the state is written back, comparisons, ``copy``) then
dies with ``RecursionError``. Nothing Tether reads legitimately nests more than a few levels, so
documents deeper than :data:`MAX_DEPTH` are refused as a :class:`ValueError`, like any other
malformed JSON, before they reach the rest of the program.
"""

from __future__ import annotations

import json

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 64


class JsonTooDeepError(ValueError):
    pass


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers in ``value`` nest deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """``json.loads`` refusing documents nested deeper than ``max_depth`` (JsonTooDeepError, a
    ValueError, as for any malformed JSON)."""
    try:
        value = json.loads(data, **kwargs)
    except RecursionError:
        raise JsonTooDeepError(f"nested deeper than {max_depth} levels") from None
    if depth_exceeds(value, max_depth):
        raise JsonTooDeepError(f"nested deeper than {max_depth} levels")
    return value
