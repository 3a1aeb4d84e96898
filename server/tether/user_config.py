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
from typing import Any, Literal

import platformdirs

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
