"""`tether doctor` names the config file it uses, and one it ignores: on macOS platformdirs'
``~/Library/Application Support/tether`` and the documented ``~/.config/tether`` may both exist
(platformdirs' own macOS answer is used here, on Linux). HOME is a temp dir."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.cli import main


def _config_check(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    main(["doctor", "--json"])
    doc = json.loads(capsys.readouterr().out)
    return next(c for c in doc["checks"] if c["check"] == "config")


def test_doctor_names_the_file_used_and_the_one_ignored(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import platformdirs
    from platformdirs.macos import MacOS

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("TETHER_CONFIG", raising=False)
    monkeypatch.setattr(platformdirs, "user_config_dir", lambda app: MacOS(app).user_config_dir)
    monkeypatch.setattr("tether.paths.PLATFORMDIRS_OS", True)  # asked, as on macOS
    monkeypatch.chdir(tmp_path)
    xdg = home / ".config" / "tether" / "config.toml"
    plat = home / "Library" / "Application Support" / "tether" / "config.toml"

    check = _config_check(capsys)
    assert check["ok"] and check["detail"] == f"{xdg} (absent: defaults)"

    plat.parent.mkdir(parents=True)
    plat.write_text('[tmux]\nallowlist = ["p"]\n')
    check = _config_check(capsys)
    assert check["ok"] and check["detail"] == str(plat)

    xdg.parent.mkdir(parents=True)
    xdg.write_text("[tmux\nbroken")
    check = _config_check(capsys)
    detail = str(check["detail"])
    assert detail.startswith(f"{xdg}\nalso found, ignored: {plat}\n")
    assert not check["ok"] and "cannot read the Tether config" in detail  # a broken file is an error
