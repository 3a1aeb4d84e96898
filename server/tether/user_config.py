"""The user's own configuration file: the only source trusted to name commands Tether may run.

``$TETHER_CONFIG`` or ``<user config dir>/tether/config.toml`` (``~/.config/tether/config.toml`` on
Linux). Workspace files and editor settings can be written by whoever wrote the repository, so the
re-run allowlist and the windows' start commands are read from here only.

```toml
[tmux]
scrollbackLines = 5000
allowlist = ["npm run dev", "pytest-watch*"]

[[tmux.windows]]
name = "agent"
command = "claude"

[[tmux.windows]]
name = "server"
command = "npm run dev"

[agents]
resume = "run"   # on recreate, run the agents' resume commands (default "type": wait for Enter)
```
"""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import platformdirs

if TYPE_CHECKING:
    from tether.tmux_link import TmuxConfig, TmuxLink

log = logging.getLogger(__name__)

CONFIG_ENV = "TETHER_CONFIG"


def config_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    return Path(platformdirs.user_config_dir("tether")) / "config.toml"


def load_user_config(path: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """The parsed file (empty when absent) and warnings; a broken file never stops Tether."""
    path = path or config_path()
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}, []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return {}, [f"{path}: cannot read the Tether config ({exc}); using defaults"]
    return data, []


def agent_resume(data: dict[str, Any], path: Path | None = None) -> tuple[Literal["type", "run"], list[str]]:
    """``[agents] resume`` of the user's parsed file: "type" (default) or "run"."""
    section = data.get("agents")
    if section is None:
        return "type", []
    where = path or config_path()
    if not isinstance(section, dict):
        return "type", [f"{where}: [agents] must be a table; ignored"]
    value = section.get("resume", "type")
    if value in ("type", "run"):
        return value, []
    return "type", [f'{where}: agents.resume: expected "type" or "run", got {value!r}; using "type"']


def tmux_config(path: Path | None = None) -> tuple[TmuxConfig, list[str]]:
    """``TmuxConfig`` from the user's file (trusted: its allowlist and windows apply)."""
    from tether.tmux_link import TmuxConfig

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
    from tether.tmux_link import TmuxLink

    cfg, warnings = tmux_config()
    return TmuxLink(root, cfg, state_dir=Path(state_dir) if state_dir else None), warnings
