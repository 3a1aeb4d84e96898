"""The MCP server's pure parts: which root is the workspace, argument error messages, strict
argument models, the diff size cap. The server itself is tested over stdio (tests/e2e/test_mcp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tether.checkpoints.diffing import FileDiff, cap_diff
from tether.mcp.backend import Backend, root_from_uris
from tether.mcp.server import argument_errors
from tether.mcp.tools import build_tools
from tether.paths import find_root


def test_root_from_uris_prefers_the_deepest_root_holding_the_cwd(tmp_path: Path) -> None:
    a, b, inner = tmp_path / "a", tmp_path / "b", tmp_path / "b" / "inner"
    inner.mkdir(parents=True)
    a.mkdir()
    uris = [a.as_uri(), b.as_uri(), inner.as_uri()]
    assert root_from_uris(uris, inner / "src") == inner
    assert root_from_uris(uris, b) == b
    assert root_from_uris(uris, tmp_path / "elsewhere") == a  # none holds the cwd: the first


@pytest.mark.parametrize(
    "uri",
    ["https://example.com/x", "file://otherhost/tmp", "file:///does/not/exist", "not a uri", "file:relative"],
)
def test_root_from_uris_ignores_what_is_not_a_local_directory(uri: str, tmp_path: Path) -> None:
    assert root_from_uris([uri], tmp_path) is None


def test_root_from_uris_decodes_escapes(tmp_path: Path) -> None:
    d = tmp_path / "with space é"
    d.mkdir()
    assert root_from_uris([d.as_uri()], tmp_path) == d


def test_find_root_walks_up_to_a_marker(tmp_path: Path) -> None:
    (tmp_path / "p" / ".git").mkdir(parents=True)
    (tmp_path / "p" / "a" / "b").mkdir(parents=True)
    assert find_root(tmp_path / "p" / "a" / "b") == (tmp_path / "p").resolve()
    (tmp_path / "bare").mkdir()
    assert find_root(tmp_path / "bare") in {(tmp_path / "bare").resolve(), *tmp_path.resolve().parents}


def test_argument_models_are_strict_and_the_errors_name_each_field() -> None:
    tool = next(t for t in build_tools(Backend()) if t.name == "record_step")
    model = tool.fn_metadata.arg_model
    assert model.model_validate({"done": "x", "files": ["a"]}).model_dump_one_level()["files"] == ["a"]
    with pytest.raises(ValidationError) as info:
        model.model_validate({"done": 1, "next_steps": ["ok", 2], "typo": True})
    message = argument_errors("record_step", info.value, list(tool.parameters["properties"]))
    assert message.startswith("record_step: invalid arguments: ")
    assert "done: Input should be a valid string" in message
    assert "next_steps[1]: Input should be a valid string" in message
    assert "typo: unknown argument (accepted: done, next_steps, task, files)" in message
    assert "input_value" not in message and "errors.pydantic.dev" not in message


def test_argument_errors_cut_long_names_and_many_errors() -> None:
    tool = next(t for t in build_tools(Backend()) if t.name == "handoff")
    with pytest.raises(ValidationError) as info:
        tool.fn_metadata.arg_model.model_validate({f"{'k' * 200}{i}": i for i in range(20)})
    message = argument_errors("handoff", info.value, [])
    assert "accepted: none" in message and "and 12 more" in message and len(message) < 1200


def test_no_coercion_of_numbers_and_booleans() -> None:
    tools = {t.name: t for t in build_tools(Backend())}
    restore = tools["restore"].fn_metadata.arg_model
    for bad in (
        {"checkpoint": "3"},
        {"checkpoint": 1.0},
        {"checkpoint": True},
        {"checkpoint": 1, "confirm": 1},
    ):
        with pytest.raises(ValidationError):
            restore.model_validate(bad)
    assert restore.model_validate({"checkpoint": 3}).model_dump_one_level()["confirm"] is False


def _d(path: str, n: int) -> FileDiff:
    body = "".join(f"+line {i}\n" for i in range(n))
    return FileDiff(path, "modified", False, f"--- a/{path}\n+++ b/{path}\n{body}")


def test_cap_diff_keeps_whole_files_then_cuts_one_at_a_line_then_names_the_rest() -> None:
    small, big, last = _d("a.py", 3), _d("b.py", 500), _d("c.py", 3)
    capped = cap_diff([small, big, last], 1000)
    assert [f.path for f in capped.files] == ["a.py", "b.py", "c.py"]
    assert capped.files[0].diff == small.diff
    assert capped.files[1].diff is not None and capped.files[1].diff.endswith("\n")
    assert big.diff is not None and big.diff.startswith(capped.files[1].diff)
    assert capped.files[2].diff is None
    assert capped.cut == ["b.py", "c.py"] and len(capped.text) <= 1000
    assert capped.total_chars == sum(len(d.diff or "") for d in (small, big, last))
    whole = cap_diff([small, last], 10_000)
    assert whole.cut == [] and whole.text == (small.diff or "") + (last.diff or "")
