from __future__ import annotations

from pathlib import Path

import pytest

from tether.tmux.config import DEFAULT_ALLOWLIST, TmuxConfig
from tether.tmux.user import tmux_config
from tether.user_config import load_user_config


def test_absent_file_gives_defaults(tmp_path: Path) -> None:
    cfg, warnings = tmux_config(tmp_path / "nope.toml")
    assert cfg == TmuxConfig() and warnings == []


def test_user_file_is_trusted_for_allowlist_and_windows(tmp_path: Path) -> None:
    p = tmp_path / "config.toml"
    p.write_text(
        '[tmux]\nallowlist = ["make watch"]\nscrollbackLines = 42\n'
        '[[tmux.windows]]\nname = "agent"\ncommand = "claude"\n'
    )
    cfg, warnings = tmux_config(p)
    assert warnings == []
    assert cfg.allowlist == ["make watch"]
    assert cfg.scrollback_lines == 42
    assert [(w.name, w.command) for w in cfg.windows] == [("agent", "claude")]


def test_untrusted_wire_cannot_set_allowlist() -> None:
    cfg, warnings = TmuxConfig.from_wire({"allowlist": ["rm -rf ~"]}, trusted=False)
    assert cfg.allowlist == list(DEFAULT_ALLOWLIST)
    assert any("allowlist" in w for w in warnings)


@pytest.mark.parametrize("text", ["[tmux\nbroken", "tmux = 3", '[tmux]\nscrollbackLines = "many"'])
def test_bad_file_warns_and_falls_back(tmp_path: Path, text: str) -> None:
    p = tmp_path / "config.toml"
    p.write_text(text)
    cfg, warnings = tmux_config(p)
    assert warnings, "a bad config must say so"
    assert cfg.scrollback_lines == TmuxConfig().scrollback_lines


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[tmux]\nhistoryLines = 7\n")
    monkeypatch.setenv("TETHER_CONFIG", str(p))
    data, _ = load_user_config()
    assert data == {"tmux": {"historyLines": 7}}


@pytest.mark.parametrize(
    ("text", "expected", "warned"),
    [
        ('[agents]\nresume = "run"\n', "run", False),
        ('[agents]\nresume = "type"\n', "type", False),
        ("[agents]\n", "type", False),
        ('[agents]\nresume = "yes"\n', "type", True),
        ('agents = "run"\n', "type", True),
        ('[tmux]\nscrollbackLines = 10\n[agents]\nresume = "run"\n', "run", False),
    ],
)
def test_agents_resume_comes_from_the_users_file_only(
    tmp_path: Path, text: str, expected: str, warned: bool
) -> None:
    p = tmp_path / "config.toml"
    p.write_text(text)
    cfg, warnings = tmux_config(p)
    assert cfg.agent_resume == expected
    assert bool(warnings) is warned


def test_wire_settings_cannot_make_agents_run() -> None:
    # Editor/workspace settings reach TmuxConfig through from_wire: no key there sets it.
    for key in ("agentResume", "agent_resume", "agents"):
        cfg, _ = TmuxConfig.from_wire({key: "run"}, trusted=True)
        assert cfg.agent_resume == "type"


# --- where the file is looked for -------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("TETHER_CONFIG", raising=False)
    return h


@pytest.fixture
def macos_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """platformdirs' own macOS answer (``~/Library/Application Support/<app>``), on this Linux."""
    import platformdirs
    from platformdirs.macos import MacOS

    monkeypatch.setattr(platformdirs, "user_config_dir", lambda app: MacOS(app).user_config_dir)
    monkeypatch.setattr("tether.paths.PLATFORMDIRS_OS", True)  # asked, as on macOS


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_documented_path_is_honoured_where_platformdirs_looks_elsewhere(
    home: Path, macos_dirs: None
) -> None:
    from tether.user_config import config_candidates, platform_config_path

    assert platform_config_path() == home / "Library" / "Application Support" / "tether" / "config.toml"
    p = _write(home / ".config" / "tether" / "config.toml", '[tmux]\nallowlist = ["make watch"]\n')
    assert config_candidates() == (p, [])
    cfg, warnings = tmux_config()
    assert warnings == [] and cfg.allowlist == ["make watch"]


def test_xdg_config_home_is_honoured(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.user_config import config_path

    xdg = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    p = _write(xdg / "tether" / "config.toml", '[tmux]\nallowlist = ["npm run dev"]\n')
    _write(home / ".config" / "tether" / "config.toml", '[tmux]\nallowlist = ["other"]\n')
    assert config_path() == p
    assert tmux_config()[0].allowlist == ["npm run dev"]
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # ignored, as the XDG spec says
    assert config_path() == home / ".config" / "tether" / "config.toml"


def test_the_platform_path_is_used_when_only_it_exists(home: Path, macos_dirs: None) -> None:
    from tether.user_config import config_candidates

    p = _write(
        home / "Library" / "Application Support" / "tether" / "config.toml", '[tmux]\nallowlist = ["x"]\n'
    )
    assert config_candidates() == (p, [])
    assert tmux_config()[0].allowlist == ["x"]


def test_both_present_the_xdg_one_wins_and_the_other_is_named(home: Path, macos_dirs: None) -> None:
    from tether.user_config import config_candidates

    xdg = _write(home / ".config" / "tether" / "config.toml", '[tmux]\nallowlist = ["xdg"]\n')
    plat = _write(
        home / "Library" / "Application Support" / "tether" / "config.toml", '[tmux]\nallowlist = ["p"]\n'
    )
    assert config_candidates() == (xdg, [plat])
    assert tmux_config()[0].allowlist == ["xdg"]


def test_nothing_present_points_at_the_documented_path(home: Path, macos_dirs: None) -> None:
    from tether.user_config import config_candidates

    assert config_candidates() == (home / ".config" / "tether" / "config.toml", [])


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"XDG_CONFIG_HOME": "/x/config", "XDG_STATE_HOME": "/x/state"},
        {"XDG_CONFIG_HOME": "relative", "XDG_STATE_HOME": "relative"},  # ignored, as the spec says
        {"XDG_CONFIG_HOME": "", "XDG_STATE_HOME": ""},
    ],
)
def test_the_dirs_computed_without_platformdirs_are_its_own(
    home: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """On this OS Tether does not import platformdirs (start-up): its answer must still be the one
    platformdirs gives, for the config file and the state dir."""
    import platformdirs

    from tether import paths

    assert not paths.PLATFORMDIRS_OS
    for var in ("XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert paths.user_dir("config") == Path(platformdirs.user_config_dir("tether"))
    assert paths.user_dir("state") == Path(platformdirs.user_state_dir("tether"))
