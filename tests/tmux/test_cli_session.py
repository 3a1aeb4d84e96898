"""`tether start | attach | doctor` against a real private tmux server (in-process CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import foreground_cmdline, panes_by_uid, run_in
from tether.cli import main
from tether.protocol import ATTACH_TMUX
from tether.store.db import Store
from tether.tmux.config import TmuxConfig
from tether.tmux.link import TmuxLink


@pytest.fixture(autouse=True)
def _socket(tmux_server: PrivateTmux, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETHER_TMUX_SOCKET", tmux_server.socket_path)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_start_creates_once_and_prints_name(
    tmux_server: PrivateTmux, workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _cli(capsys, "-C", str(workspace), "start")
    name = TmuxLink(workspace).session
    assert code == 0 and out.strip() == name
    assert tmux_server.cmd("has-session", "-t", f"={name}").returncode == 0
    code, out, _ = _cli(capsys, "-C", str(workspace), "--json", "start")
    doc = json.loads(out)
    assert code == 0 and doc["session"] == name and doc["created"] is False
    assert doc["attach"][-4:] == [tmux_server.socket_path, "attach-session", "-t", f"={name}"]


def test_start_attach_without_terminal_is_a_clear_error(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(capsys, "-C", str(workspace), "start", "--attach")
    assert code == 1 and "needs a terminal" in err


def test_attach_recreates_dead_session_from_latest_snapshot(
    tmux_server: PrivateTmux, workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = TmuxLink(workspace, TmuxConfig(shell="/bin/bash"), state_dir=state_dir)
    link.ensure_session()
    tmux_server.cmd("split-window", "-t", f"={link.session}:0", "-c", str(workspace))
    run_in(tmux_server, f"={link.session}:0.0", "sleep 777")
    pid = int(tmux_server.cmd("display-message", "-p", "-t", f"={link.session}:0.0", "#{pane_pid}").stdout)
    retry_until(lambda: foreground_cmdline(pid) == ["sleep", "777"], what="sleep in front")
    snap = link.snapshot_bytes()
    assert snap is not None
    uids = set(panes_by_uid(tmux_server, link.session))
    with Store.open(workspace, state_dir) as store:
        info = store.create_checkpoint(
            "manual", "with tmux", [], attachments={ATTACH_TMUX: snap}, allow_empty=True
        )
        assert info is not None
    tmux_server.kill()

    code, out, err = _cli(capsys, "-C", str(workspace), "--json", "attach", "--no-run")
    doc = json.loads(out)
    assert code == 0, err
    assert doc["recreated"] is True and doc["checkpoint"] == info.id
    assert "recreated" in err and "1 typed" in err
    assert set(panes_by_uid(tmux_server, link.session)) == uids
    # alive now: a second attach recreates nothing
    code, out, _ = _cli(capsys, "-C", str(workspace), "--json", "attach")
    assert json.loads(out)["recreated"] is False
    assert set(panes_by_uid(tmux_server, link.session)) == uids


def test_attach_without_snapshot_starts_fresh_says_so_and_records_it(
    tmux_server: PrivateTmux, workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _cli(capsys, "-C", str(workspace), "attach", "--print")
    name = TmuxLink(workspace).session
    assert code == 0 and out.split()[-1] == f"={name}"
    assert f"no snapshot of {name} was ever recorded" in err
    assert tmux_server.cmd("has-session", "-t", f"={name}").returncode == 0
    # The new session is recorded at once: a reboot right now would bring it back.
    from tether.store.db import Store
    from tether.tmux.watch import latest_snapshot

    with Store.open(workspace, state_dir) as store:
        assert latest_snapshot(store) is not None


def test_doctor_reports_ok(workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, "-C", str(workspace), "doctor", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    checks = {c["check"]: c for c in doc["checks"]}
    assert "tmux 3." in checks["tmux"]["detail"]
    assert checks["pygls"]["ok"] and checks["store"]["ok"]


def test_doctor_fails_without_tmux(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(workspace))  # an empty dir: no tmux anywhere
    code, out, _ = _cli(capsys, "-C", str(workspace), "doctor")
    assert code == 1
    assert "ERR  tmux" in out and "not found" in out


def test_doctor_reports_a_corrupt_store(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Store.open(workspace, state_dir).close()
    (db,) = state_dir.glob("workspaces/*/tether.db")
    db.write_bytes(b"this is not a database" * 100)
    code, out, _ = _cli(capsys, "-C", str(workspace), "--json", "doctor")
    doc = json.loads(out)
    assert code == 1
    assert not {c["check"]: c for c in doc["checks"]}["store"]["ok"]


def test_doctor_checks_every_blob_and_says_how_to_recover(
    workspace: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Damage no command has read yet (a stored file's bytes): doctor finds it, judges the store
    corrupt (no command writes to it from then on) and prints how to move it aside and keep
    what is readable."""
    from tether.model import FileChange

    with Store.open(workspace, state_dir) as s:
        s.create_checkpoint("manual", None, [FileChange("a.txt", b"payload " * 400)])
    (db,) = state_dir.glob("workspaces/*/tether.db")
    raw = bytearray(db.read_bytes())
    at = raw.find(b"\x78\x01")  # the compressed file content
    raw[at + 8 : at + 24] = bytes(16)
    db.write_bytes(bytes(raw))
    code, out, _ = _cli(capsys, "-C", str(workspace), "doctor")
    assert code == 1
    assert "ERR  store" in out and "is corrupt" in out
    assert f"mv {db} {db}.bad" in out and ".recover" in out
    code, _, err = _cli(capsys, "-C", str(workspace), "checkpoint")
    assert code == 5 and "is corrupt" in err
    assert db.read_bytes() == bytes(raw)


def test_start_takes_windows_from_the_users_config_file(
    tmux_server: PrivateTmux,
    workspace: Path,
    state_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[tmux]\nshell = "/bin/bash"\n'
        '[[tmux.windows]]\nname = "agent"\n'
        '[[tmux.windows]]\nname = "tests"\ncommand = "echo from-user-config"\n'
    )
    monkeypatch.setenv("TETHER_CONFIG", str(cfg))
    code, out, _ = _cli(capsys, "-C", str(workspace), "start")
    name = out.strip()
    assert code == 0
    windows = tmux_server.cmd("list-windows", "-t", f"={name}", "-F", "#{window_name}").stdout.split()
    assert windows == ["agent", "tests"]
    # The user's own window command runs (the config file is trusted).
    retry_until(
        lambda: (
            "from-user-config"
            in tmux_server.cmd("capture-pane", "-p", "-t", f"={name}:tests").stdout.replace(
                "echo from-user-config", ""
            )
        ),
        what="the configured command's output",
    )
