"""The distribution a user installs: the wheel and sdist built from this tree (``python -m build``),
their file lists, and the wheel installed with pip into a fresh virtualenv, whose ``tether`` entry
point runs ``--version``, ``doctor`` and a ``step`` in a new git repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    res = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False
    )
    assert res.returncode == 0, f"{argv}: {res.stdout}\n{res.stderr}"
    return res.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    (wheel,) = out.glob("tether-*.whl")
    (sdist,) = out.glob("tether-*.tar.gz")
    yield wheel, sdist


def _package_modules() -> set[str]:
    """Every module and the shell hooks (package data files: tether/tmux/hooks)."""
    src = ROOT / "server"
    hooks = (src / "tether" / "tmux" / "hooks").iterdir()
    return {p.relative_to(src).as_posix() for p in [*(src / "tether").rglob("*.py"), *hooks]}


def test_wheel_files(dists: tuple[Path, Path]) -> None:
    wheel, _ = dists
    assert wheel.name == f"tether-{tether.__version__}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    info = f"tether-{tether.__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    assert _package_modules() <= names  # every module and every shell hook
    assert not [
        n for n in names if n.startswith(("tests/", "server/", "bench/", "docs/")) or "__pycache__" in n
    ]
    meta = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"Version: {tether.__version__}" in meta and "License-Expression: MIT" in meta
    assert "Project-URL: Repository" in meta and "Classifier: Operating System" in meta
    entry = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "tether = tether.cli:main" in entry


def test_sdist_files(dists: tuple[Path, Path]) -> None:
    _, sdist = dists
    top = f"tether-{tether.__version__}"
    with tarfile.open(sdist) as tar:
        names = {n.removeprefix(top + "/") for n in tar.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "PKG-INFO"} <= names
    assert {"tests/conftest.py", "docs/getting-started.md"} <= names
    assert {f"server/{m}" for m in _package_modules()} <= names
    # Only the top-level README: not the clients' (nor anything else of theirs).
    assert not [n for n in names if n.startswith(("vscode-client", "neovim-client"))]
    assert [n for n in names if n.endswith("README.md")] == ["README.md"]


def test_installed_wheel_runs(dists: tuple[Path, Path], tmp_path: Path) -> None:
    wheel, _ = dists
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv)
    _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    exe = venv / "bin" / "tether"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"TETHER_STATE_DIR": str(tmp_path / "state"), "HOME": str(tmp_path / "home")}
    assert _run(exe, "--version", env=env) == f"tether {tether.__version__}\n"
    # The installed copy, not this tree, answers.
    where = _run(
        venv / "bin" / "python", "-c", "import tether; print(tether.__file__)", env=env, cwd=tmp_path
    )
    assert where.startswith(str(venv))
    repo = tmp_path / "proj"
    repo.mkdir()
    _run("git", "init", "-q", repo)
    res = subprocess.run(
        [exe, "--json", "doctor"], check=False, capture_output=True, text=True, env=env, cwd=repo, timeout=60
    )
    checks = {c["check"]: c for c in json.loads(res.stdout)["checks"]}
    assert checks["python"]["ok"] and checks["pygls"]["ok"] and checks["state dir"]["ok"], checks
    (repo / "app.py").write_text("print(1)\n")
    _run(exe, "step", "--done", "wrote app.py", "--next", "test it", env=env, cwd=repo)
    log = json.loads(_run(exe, "log", "--json", env=env, cwd=repo))
    assert log["checkpoints"][0]["files"] and "app.py" in json.dumps(log["checkpoints"][0])
