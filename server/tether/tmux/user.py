"""The workspace's tmux link as the user's own config file sets it up (the only trusted source of
window commands and the re-run allowlist, see :mod:`tether.user_config`)."""

from __future__ import annotations

from pathlib import Path

from tether.tmux.config import TmuxConfig
from tether.tmux.link import TmuxLink
from tether.user_config import agent_resume, config_path, load_user_config


def tmux_config(path: Path | None = None) -> tuple[TmuxConfig, list[str]]:
    """``TmuxConfig`` from the user's file (trusted: its allowlist and windows apply)."""
    data, warnings = load_user_config(path)
    resume, more_warnings = agent_resume(data, path)
    warnings = warnings + more_warnings
    section = data.get("tmux")
    if section is None:
        cfg = TmuxConfig()
        cfg.agent_resume = resume
        return cfg, warnings
    cfg, more = TmuxConfig.from_wire(section, trusted=True)
    cfg.agent_resume = resume
    return cfg, warnings + [f"{path or config_path()}: {w}" for w in more]


def user_link(root: Path, state_dir: Path | str | None = None) -> tuple[TmuxLink, list[str]]:
    """The workspace's ``TmuxLink`` configured from the user's file, and its warnings."""
    cfg, warnings = tmux_config()
    return TmuxLink(root, cfg, state_dir=Path(state_dir) if state_dir else None), warnings
