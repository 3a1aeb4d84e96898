"""Property tests for the JSON editor behind `tether setup`: any document, formatted any way,
reaches any target value, and adding then removing a member gives back the original bytes."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tether.setup import jsonedit

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
)
values = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=5), kids, max_size=4)
    ),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=5), values, max_size=5)
formats = st.sampled_from([None, 0, 1, 2, 4, "\t", "crlf"])


def render(doc: Any, indent: Any) -> str:
    if indent is None:
        return json.dumps(doc)
    if indent == "crlf":
        return json.dumps(doc, indent=2).replace("\n", "\r\n") + "\r\n"
    return json.dumps(doc, indent=indent) + "\n"


@settings(max_examples=150, deadline=None)
@given(objects, objects, formats)
def test_patch_reaches_any_target(doc: dict[str, Any], target: dict[str, Any], indent: Any) -> None:
    out = jsonedit.patch(render(doc, indent), target)
    assert jsonedit.same(json.loads(out), target)


@settings(max_examples=150, deadline=None)
@given(objects, st.text(max_size=5), values, formats)
def test_add_then_remove_is_byte_identical(doc: dict[str, Any], key: str, value: Any, indent: Any) -> None:
    if key in doc:
        return
    text = render(doc, indent)
    added = jsonedit.patch(text, {**doc, key: value})
    assert jsonedit.same(json.loads(added), {**doc, key: value})
    # Every original member is still there, spelled as it was.
    for k in doc:
        member = json.dumps(k) + ": "
        assert (member in added) == (member in text), k
    if indent == "crlf":
        assert "\n" not in added.replace("\r\n", "")  # the file's line endings are kept
    assert jsonedit.patch(added, doc) == text
