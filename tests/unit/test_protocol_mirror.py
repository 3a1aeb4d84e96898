"""The clients' copies of the wire names must equal server/tether/protocol.py, string for string."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tether import protocol

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "neovim-client" / "lua" / "tether" / "protocol.lua"
TS = ROOT / "vscode-client" / "src" / "protocol.ts"

# `M.CMD_RESUME = 'tether.resume'` (Lua) / `export const CMD_RESUME = "tether.resume";` (TypeScript)
LUA_CONST = re.compile(r"^M\.([A-Z][A-Z0-9_]*)\s*=\s*(['\"])(.*?)\2\s*(?:--.*)?$", re.M)
TS_CONST = re.compile(r"^export\s+const\s+([A-Z][A-Z0-9_]*)\s*=\s*(['\"])(.*?)\2\s*;?\s*(?://.*)?$", re.M)
# `M.COMMANDS = { M.CMD_A, ... }` / `export const COMMANDS = [CMD_A, ...] as const;`
LUA_LIST = re.compile(r"^M\.([A-Z_]+)\s*=\s*\{(.*?)\}", re.M | re.S)
TS_LIST = re.compile(r"^export\s+const\s+([A-Z_]+)\s*=\s*\[(.*?)\]", re.M | re.S)


def server_constants() -> dict[str, str]:
    return {k: v for k, v in vars(protocol).items() if k.isupper() and isinstance(v, str)}


def parse_constants(text: str, pattern: re.Pattern[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, _quote, value in pattern.findall(text):
        assert name not in found, f"{name} defined twice"
        found[name] = value
    return found


def parse_lists(text: str, pattern: re.Pattern[str], consts: dict[str, str]) -> dict[str, list[str]]:
    """Resolve list literals made of constant references (or string literals) to their strings."""
    lists: dict[str, list[str]] = {}
    for name, body in pattern.findall(text):
        items: list[str] = []
        for raw in body.split(","):
            item = raw.strip()
            if not item:
                continue
            item = item.removeprefix("M.")
            if item[0] in "'\"":
                items.append(item.strip("'\""))
            else:
                assert item in consts, f"{name} refers to unknown constant {item}"
                items.append(consts[item])
        lists[name] = items
    return lists


def mirror_of(
    path: Path, const_re: re.Pattern[str], list_re: re.Pattern[str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    text = path.read_text(encoding="utf-8")
    consts = parse_constants(text, const_re)
    return consts, parse_lists(text, list_re, consts)


CLIENTS = [
    pytest.param(LUA, LUA_CONST, LUA_LIST, id="neovim"),
    pytest.param(TS, TS_CONST, TS_LIST, id="vscode"),
]


def _load(
    path: Path, const_re: re.Pattern[str], list_re: re.Pattern[str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    if path == TS and not path.exists():
        pytest.skip("vscode-client/src/protocol.ts not written yet")
    assert path.exists(), f"{path} is missing"
    return mirror_of(path, const_re, list_re)


@pytest.mark.parametrize(("path", "const_re", "list_re"), CLIENTS)
def test_command_strings_match(path: Path, const_re: re.Pattern[str], list_re: re.Pattern[str]) -> None:
    consts, lists = _load(path, const_re, list_re)
    client_cmds = {v for k, v in consts.items() if k.startswith("CMD_")}
    assert client_cmds == set(protocol.COMMANDS)
    assert sorted(lists["COMMANDS"]) == sorted(protocol.COMMANDS)


@pytest.mark.parametrize(("path", "const_re", "list_re"), CLIENTS)
def test_notification_strings_match(path: Path, const_re: re.Pattern[str], list_re: re.Pattern[str]) -> None:
    consts, lists = _load(path, const_re, list_re)
    client_notes = {v for k, v in consts.items() if k.startswith("NOTIFY_")}
    assert client_notes == set(protocol.NOTIFICATIONS)
    assert sorted(lists["NOTIFICATIONS"]) == sorted(protocol.NOTIFICATIONS)


@pytest.mark.parametrize(("path", "const_re", "list_re"), CLIENTS)
def test_same_names_carry_same_strings(
    path: Path, const_re: re.Pattern[str], list_re: re.Pattern[str]
) -> None:
    """Every constant a client defines under a server name has the server's exact value."""
    consts, lists = _load(path, const_re, list_re)
    server = server_constants()
    shared = {k for k in consts if k in server}
    required = ("CMD_", "NOTIFY_", "STATE_", "TRIGGER_", "ERR_")
    assert {k for k in server if k.startswith(required)} <= shared
    for name in sorted(shared):
        assert consts[name] == server[name], (
            f"{path.name}: {name} = {consts[name]!r}, server has {server[name]!r}"
        )
    if "TRIGGERS" in lists:
        assert sorted(lists["TRIGGERS"]) == sorted(protocol.TRIGGERS)


@pytest.mark.parametrize(("path", "const_re", "list_re"), CLIENTS)
def test_client_notification_strings_match(
    path: Path, const_re: re.Pattern[str], list_re: re.Pattern[str]
) -> None:
    """Client -> server notifications: whatever a client sends, the server knows by that name.

    The Neovim client sends all of them; another client may send a subset.
    """
    consts, _lists = _load(path, const_re, list_re)
    server = set(getattr(protocol, "CLIENT_NOTIFICATIONS", ()))
    sent = {v for k, v in consts.items() if k.startswith("CLIENT_NOTIFY_")}
    assert sent <= server
    if path == LUA:
        assert sent == server


def test_parser_catches_drift() -> None:
    """The parser reads what it must: a renamed command string shows up as a difference."""
    text = LUA.read_text(encoding="utf-8").replace("'tether.resume'", "'tether.resumed'")
    consts = parse_constants(text, LUA_CONST)
    assert {v for k, v in consts.items() if k.startswith("CMD_")} != set(protocol.COMMANDS)
    lists = parse_lists(text, LUA_LIST, consts)
    assert "tether.resumed" in lists["COMMANDS"]
