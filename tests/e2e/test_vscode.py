"""The VS Code extension in a real VS Code (code-server 4.139.1) driven by headless Chromium.

Builds the extension (npm ci, esbuild, vsce package) and runs the two harness runners in
vscode-client/test-harness/: the mocha suite inside the real extension host, and the Playwright
UI story (edit, kill, fresh editor, resume, timeline, diff, restore). Both use the real
`tether lsp`, a private TETHER_STATE_DIR and a private tmux socket. Screenshots and logs go to
artifacts/vscode/.

Tools come from vscode-client/test-harness/install-tools.sh (into .tools/). Locally the tests skip
when the tools are absent; with CI=true they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "vscode-client"
HARNESS = EXT / "test-harness"
TOOLS = Path(os.environ.get("TETHER_TOOLS_DIR", ROOT / ".tools"))
NODE24 = TOOLS / "node24/node_modules/node/bin/node"
CS_ENTRY = TOOLS / "code-server/node_modules/code-server/out/node/entry.js"
CHROMIUM = Path(os.environ.get("TETHER_CHROMIUM", "/usr/bin/chromium"))
TETHER_BIN = Path(sys.executable).parent / "tether"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.M)

RecordProperty = Callable[[str, object], None]

pytestmark = [pytest.mark.vscode, pytest.mark.timeout(900)]


def _missing_tools() -> list[str]:
    need = {
        "Node 24": NODE24,
        "code-server": CS_ENTRY,
        "chromium": CHROMIUM,
        "harness node_modules": HARNESS / "node_modules/playwright-core",
        "node": Path(shutil.which("node") or "/nonexistent/node"),
        "npm": Path(shutil.which("npm") or "/nonexistent/npm"),
    }
    return [f"{name} ({path})" for name, path in need.items() if not path.exists()]


def _run(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if res.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} (in {cwd}) exited {res.returncode}:\n{res.stdout[-6000:]}")
    return res.stdout


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    missing = _missing_tools()
    if missing:
        msg = (
            f"VS Code test tools missing: {', '.join(missing)}. "
            "Install them with: bash vscode-client/test-harness/install-tools.sh"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    stamp = EXT / "node_modules/.tether-lock-stamp"
    lock = (EXT / "package-lock.json").read_bytes()
    if not stamp.exists() or stamp.read_bytes() != lock:
        _run(["npm", "ci", "--no-audit", "--no-fund"], EXT, 600)
        stamp.write_bytes(lock)
    out = tmp_path_factory.mktemp("vsix") / "tether.vsix"
    # `vsce package` runs `vscode:prepublish` itself: typecheck, then the minified bundle.
    _run(["npx", "@vscode/vsce", "package", "--no-dependencies", "-o", str(out)], EXT, 300)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
        bundle = zf.getinfo("extension/dist/extension.js").file_size
    assert "extension/images/icon.png" in names, names
    assert not [n for n in names if n.endswith(".map") or "/src/" in n or "test-harness" in n], names
    # The production bundle is minified (the unminified one is ~1 MB).
    assert bundle < 600_000, f"dist/extension.js in the .vsix is {bundle} bytes: not the minified build"
    # The host tests load dist/extension.js from the folder: the readable build with source maps.
    _run(["npm", "run", "build"], EXT, 300)
    artifacts = ROOT / "artifacts/vscode"
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy2(out, artifacts / "tether.vsix")
    _run(["npx", "tsc", "--noEmit", "-p", "."], HARNESS, 300)
    _run(["node", "build.js"], HARNESS, 300)
    yield out


def _run_harness(script: str, *args: str) -> tuple[int, int, str]:
    env = {**os.environ, "TETHER_BIN": str(TETHER_BIN)}
    env.pop("TMUX", None)
    env.pop("TMUX_PANE", None)
    res = subprocess.run(
        ["node", f"out/{script}", *args],
        cwd=HARNESS,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    found = SUMMARY.findall(res.stdout)
    if not found:
        tail = res.stdout[-8000:]
        pytest.fail(f"{script} printed no 'N passed, N failed' line (exit {res.returncode}):\n{tail}")
    passed, failed = (int(x) for x in found[-1])
    print(res.stdout)
    if res.returncode != 0 or failed:
        pytest.fail(
            f"{script}: {passed} passed, {failed} failed (exit {res.returncode}); "
            f"screenshots and logs in artifacts/vscode/\n{res.stdout[-8000:]}"
        )
    return passed, failed, res.stdout


def test_mocha_suite_in_real_extension_host(vsix: Path, record_property: RecordProperty) -> None:
    passed, failed, _ = _run_harness("run-host-tests.js")
    record_property("mocha_passed", passed)
    assert failed == 0
    assert passed >= 25, f"only {passed} mocha tests ran"


def test_ui_in_code_server_with_chromium(vsix: Path, record_property: RecordProperty) -> None:
    passed, failed, _ = _run_harness("run-ui-tests.js", str(vsix))
    record_property("ui_passed", passed)
    assert failed == 0
    assert passed >= 13, f"only {passed} UI checks ran"
    shots = sorted((ROOT / "artifacts/vscode").glob("ui-*.png"))
    assert len(shots) >= 8, f"expected the UI screenshots, found {[s.name for s in shots]}"


def test_getting_started_walkthrough_in_code_server(vsix: Path, record_property: RecordProperty) -> None:
    """docs/getting-started.md's VS Code part, with code-server's own editor defaults (auto save):
    every claim the guide makes about the screen is checked, with a screenshot per step."""
    passed, failed, _ = _run_harness("run-walkthrough.js", str(vsix))
    record_property("walkthrough_passed", passed)
    assert failed == 0
    assert passed >= 7, f"only {passed} walkthrough steps ran"
    shots = sorted((ROOT / "artifacts/vscode").glob("walk-*.png"))
    assert len(shots) >= 7, f"expected the walkthrough screenshots, found {[s.name for s in shots]}"


def test_where_tether_runs_in_code_server(vsix: Path, record_property: RecordProperty) -> None:
    """Activation only in a project (or after "Track this folder"), one server per folder of a
    multi-root workspace with the status bar following the active editor, and the install offer
    when no `tether` can be found (vscode-client/test-harness/src/run-workspace-tests.ts)."""
    passed, failed, _ = _run_harness("run-workspace-tests.js", str(vsix))
    record_property("workspace_passed", passed)
    assert failed == 0
    assert passed >= 11, f"only {passed} workspace checks ran"
    shots = sorted((ROOT / "artifacts/vscode").glob("ws-*.png"))
    assert len(shots) >= 9, f"expected the workspace screenshots, found {[s.name for s in shots]}"
