"""The user's own configuration file: the only source trusted to name commands Tether may run.

``$TETHER_CONFIG``, else ``$XDG_CONFIG_HOME/tether/config.toml`` (``~/.config/tether/config.toml``)
on every OS, else the platform's config dir when a file is there (macOS:
``~/Library/Application Support/tether/config.toml``). When both exist the XDG one is used and
``tether doctor`` says the other is ignored (:func:`config_candidates`). Workspace files and editor
settings can be written by whoever wrote the repository, so the re-run allowlist and the windows'
start commands are read from here only.

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
from pathlib import Path

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

log = logging.getLogger(__name__)

CONFIG_ENV = "TETHER_CONFIG"


def xdg_config_path() -> Path:
    """``$XDG_CONFIG_HOME/tether/config.toml`` (a relative value is ignored, as the spec says),
    else ``~/.config/tether/config.toml``: the documented place, on every OS."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "tether" / "config.toml"


def platform_config_path() -> Path:
    """The platform's own config dir (the same as the XDG one on Linux; macOS:
    ``~/Library/Application Support/tether``)."""
    from tether.paths import user_dir

    return user_dir("config") / "config.toml"


def config_candidates() -> tuple[Path, list[Path]]:
    """(the file used, the other existing files it shadows). ``$TETHER_CONFIG`` wins outright;
    else the XDG path when it exists, else the platform's when it exists, else the XDG path (where
    the docs tell a user to create it)."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser(), []
    xdg = xdg_config_path()
    plat = platform_config_path()
    found = [p for p in dict.fromkeys([xdg, plat]) if p.is_file()]
    if not found:
        return xdg, []
    return found[0], found[1:]


def config_path() -> Path:
    return config_candidates()[0]


def load_user_config(path: Path | None = None) -> tuple[dict[str, Any], list[str]]:
    """The parsed file (empty when absent) and warnings; a broken file never stops Tether."""
    path = path or config_path()
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return {}, []
    except OSError as exc:
        return {}, [f"{path}: cannot read the Tether config ({exc}); using defaults"]
    import tomllib  # here: most users have no config file, and `tether step` asks at every step

    try:
        with fh:
            data = tomllib.load(fh)
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
