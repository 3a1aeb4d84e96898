"""The editors' packaging says the same as the project: the extension's Marketplace links and the
install command it offers point at pyproject.toml's URLs, its project markers are the server's,
and the Marketplace fields are there."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from tether.paths import ROOT_MARKERS

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "vscode-client"


def _pyproject_urls() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    urls: dict[str, str] = data["project"]["urls"]
    return urls


def _package() -> dict[str, object]:
    pkg: dict[str, object] = json.loads((EXT / "package.json").read_text())
    return pkg


def test_marketplace_links_are_the_project_urls() -> None:
    urls, pkg = _pyproject_urls(), _package()
    assert pkg["repository"] == {"type": "git", "url": urls["Repository"]}
    assert pkg["bugs"] == {"url": urls["Issues"]}
    assert pkg["homepage"] == urls["Homepage"]


def test_offered_install_command_uses_the_repository() -> None:
    src = (EXT / "src" / "install.ts").read_text()
    m = re.search(r'export const REPOSITORY_URL = "([^"]+)";', src)
    assert m, "REPOSITORY_URL not found in install.ts"
    assert m.group(1) == _pyproject_urls()["Repository"]
    assert "pip install tether" not in src.replace("`pip install tether` installs another project", "")
    readme = (EXT / "README.md").read_text()
    assert f'pipx install "git+{m.group(1)}"' in readme


def test_project_markers_are_the_servers() -> None:
    src = (EXT / "src" / "folders.ts").read_text()
    m = re.search(r"export const PROJECT_MARKERS = \[([^\]]*)\] as const;", src)
    assert m
    markers = re.findall(r'"([^"]+)"', m.group(1))
    assert sorted(markers) == sorted(ROOT_MARKERS)
    pkg = _package()
    events = pkg["activationEvents"]
    assert isinstance(events, list)
    # The extension activates by itself only where a project marker (or an opt-in) can be.
    assert sorted(e for e in events if e != "workspaceContains:.vscode/settings.json") == sorted(
        f"workspaceContains:{m}" for m in ROOT_MARKERS
    )
    assert "onStartupFinished" not in events and "*" not in events


def test_marketplace_fields() -> None:
    pkg = _package()
    icon = EXT / str(pkg["icon"])
    data = icon.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (128, 128)  # the Marketplace's minimum
    assert pkg["keywords"] and pkg["categories"] and pkg["galleryBanner"]
    assert "!images/icon.png" in (EXT / ".vscodeignore").read_text().split()
    scripts = pkg["scripts"]
    assert isinstance(scripts, dict)
    assert "--minify" in scripts["vscode:prepublish"]
    engines = pkg["engines"]
    assert isinstance(engines, dict)
    assert engines["node"] == ">=22"  # what @vscode/vsce 4 declares
