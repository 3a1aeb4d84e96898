"""Config parsing: camelCase wire options, bad values fall back to defaults with a warning."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest

from tether.lsp.config import Config, TmuxSettings, camel, snake


def test_defaults_and_round_trip() -> None:
    cfg, warnings = Config.from_wire({})
    assert warnings == []
    assert cfg == Config()
    assert cfg.checkpoint_interval_seconds == 600
    assert cfg.save_debounce_ms == 750
    assert cfg.buffer_journal_debounce_ms == 1000
    wire = cfg.to_wire()
    assert wire["checkpointIntervalSeconds"] == 600
    assert wire["tmux"] == {"enabled": True, "scrollbackLines": 2000}
    again, w2 = Config.from_wire(wire)
    assert again == cfg and w2 == []


def test_none_means_defaults() -> None:
    assert Config.from_wire(None) == (Config(), [])


def test_good_values_are_taken() -> None:
    cfg, warnings = Config.from_wire(
        {
            "checkpointIntervalSeconds": 0,
            "saveDebounceMs": 100.0,
            "tmux": {"enabled": False, "windows": [{"name": "agent"}]},
        }
    )
    assert warnings == []
    assert cfg.checkpoint_interval_seconds == 0
    assert cfg.save_debounce_ms == 100 and isinstance(cfg.save_debounce_ms, int)
    assert cfg.tmux == TmuxSettings(enabled=False)
    # The tmux link's own keys travel along untouched.
    assert cfg.tmux.wire is not None and cfg.tmux.wire["windows"] == [{"name": "agent"}]


@pytest.mark.parametrize("source", ["initializationOptions", "settings tether"])
def test_editor_settings_never_choose_where_tether_writes_or_attaches(source: str) -> None:
    # A repository's .vscode/settings.json reaches the server as initializationOptions or
    # workspace/configuration: it must not pick the store or the tmux socket (issue 20).
    base = Config(state_dir="/from/the/cli")
    cfg, warnings = base.merged(
        {"stateDir": ".ts", "tmux": {"socketPath": "./.sock", "scrollbackLines": 10}, "watcher": False},
        source,
    )
    assert cfg.state_dir == "/from/the/cli"
    assert cfg.tmux.scrollback_lines == 10 and cfg.watcher is False
    assert cfg.tmux.wire is not None and "socketPath" not in cfg.tmux.wire
    assert len(warnings) == 2, warnings
    assert all(w.startswith("Tether: ignoring ") and f"from {source}" in w for w in warnings)
    assert "$TETHER_STATE_DIR" in warnings[0] and "$TETHER_TMUX_SOCKET" in warnings[1]
    # null (a client sending every known key) is no cause for a warning
    assert Config().merged({"stateDir": None, "tmux": {"socketPath": None}})[1] == []


@pytest.mark.parametrize(
    ("wire", "needle"),
    [
        (
            {"checkpointIntervalSeconds": "often"},
            "checkpointIntervalSeconds must be a number, got a string; using 600",
        ),
        ({"checkpointIntervalSeconds": -1}, "must be at least 0"),
        ({"checkpointIntervalSeconds": float("nan")}, "must be a finite number"),
        ({"saveDebounceMs": 1.5}, "saveDebounceMs must be a whole number"),
        ({"saveDebounceMs": True}, "must be a number, got a boolean"),
        ({"saveDebounceMs": 10**9}, "must be at most 60000"),
        ({"watcher": "yes"}, "watcher must be true or false"),
        ({"watcher": None}, "watcher must not be null"),
        ({"tmux": 3}, "tmux must be an object, got a number"),
        ({"tmux": {"scrollbackLines": -5}}, "tmux.scrollbackLines must be at least 0"),
        ({"maxFileBytes": [1]}, "maxFileBytes must be a number, got a list"),
    ],
)
def test_bad_values_warn_and_default(wire: dict[str, Any], needle: str) -> None:
    cfg, warnings = Config.from_wire(wire)
    assert len(warnings) == 1, warnings
    assert needle in warnings[0]
    assert warnings[0].startswith("Tether: initializationOptions.")
    assert cfg == Config()


def test_bad_value_keeps_the_other_good_ones() -> None:
    cfg, warnings = Config.from_wire({"saveDebounceMs": "x", "checkpointIntervalSeconds": 30})
    assert len(warnings) == 1
    assert cfg.checkpoint_interval_seconds == 30
    assert cfg.save_debounce_ms == 750


def test_not_an_object() -> None:
    cfg, warnings = Config.from_wire("fast")
    assert cfg == Config()
    assert warnings == ["Tether: initializationOptions must be an object, got a string; using defaults"]


def test_unknown_keys_are_ignored() -> None:
    assert Config.from_wire({"noSuchKey": 1, "tmux": {"alsoUnknown": 2}})[1] == []


def test_namedtuples_from_pygls_are_accepted() -> None:
    Obj = namedtuple("Obj", ["saveDebounceMs", "tmux"])
    Tmux = namedtuple("Tmux", ["enabled"])
    cfg, warnings = Config.from_wire(Obj(saveDebounceMs=10, tmux=Tmux(enabled=False)))
    assert warnings == []
    assert cfg.save_debounce_ms == 10 and cfg.tmux.enabled is False


def test_nested_namedtuples_become_plain_data() -> None:
    Win = namedtuple("Win", ["name"])
    Tmux = namedtuple("Tmux", ["windows"])
    Obj = namedtuple("Obj", ["tmux"])
    cfg, warnings = Config.from_wire(Obj(tmux=Tmux(windows=[Win(name="agent")])))
    assert warnings == []
    assert cfg.tmux.wire == {"windows": [{"name": "agent"}]}


def test_merged_layers_workspace_settings_over_init_options() -> None:
    base, _ = Config.from_wire({"saveDebounceMs": 10, "checkpointIntervalSeconds": 5})
    cfg, warnings = base.merged({"saveDebounceMs": 20, "watcher": 1}, "settings tether")
    assert cfg.save_debounce_ms == 20 and cfg.checkpoint_interval_seconds == 5
    assert cfg.watcher is True
    assert warnings == ["Tether: settings tether.watcher must be true or false, got a number; using True"]


def test_name_conversions() -> None:
    assert camel("save_debounce_ms") == "saveDebounceMs"
    assert snake("saveDebounceMs") == "save_debounce_ms"
