"""Agent commands with a real tmux server on a private socket: pane history in `tether status` and
`tether resume --print`, and `tether resume` bringing a killed session back (in-process CLI)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import capture, panes_by_uid, run_in
from tether import protocol
from tether.cli import main
from tether.store.db import Store
from tether.tmux.link import TmuxLink

MakeLink = Callable[..., TmuxLink]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_history_in_status_and_resume_then_resume_recreates(
    tmux_server: PrivateTmux,
    make_link: MakeLink,
    workspace: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TETHER_TMUX_SOCKET", tmux_server.socket_path)
    # Anything that would inherit the client's cwd lands in the throwaway workspace, never the repo.
    monkeypatch.chdir(workspace)
    link = make_link()
    link.ensure_session()
    target = f"={link.session}:0.0"
    run_in(tmux_server, target, "echo first-command")
    run_in(tmux_server, target, f"printf 'x\\n' > {workspace}/edited-in-tmux.txt")
    [uid] = panes_by_uid(tmux_server, link.session)
    retry_until(
        lambda: (
            "edited-in-tmux"
            in (link.history_file(uid).read_text() if link.history_file(uid).exists() else "")
        ),
        what="the shell hook to write the pane's history",
    )
    retry_until((workspace / "edited-in-tmux.txt").exists, what="the pane's command to run")

    ws = ["-C", str(workspace)]
    code, out, err = cli(capsys, *ws, "step", "--done", "worked in tmux", "--next", "check history")
    assert code == 0, err
    with Store.open(workspace, state_dir) as store:
        info = store.latest()
        assert info is not None and "edited-in-tmux.txt" in info.files
        assert store.attachment(info.id, protocol.ATTACH_TMUX) is not None  # the step carries the snapshot

    code, out, _ = cli(capsys, *ws, "status")
    [line] = [ln for ln in out.splitlines() if ln.startswith("history")]
    assert "echo first-command" in line and "edited-in-tmux.txt" in line
    code, out, _ = cli(capsys, *ws, "resume", "--print")
    assert "Recent shell history (tmux):" in out and "$ echo first-command" in out
    code, out, _ = cli(capsys, *ws, "--json", "resume", "--print")
    assert any("echo first-command" in h for p in json.loads(out)["paneHistory"] for h in p["history"])

    # Alive: resume just says how to attach.
    code, out, _ = cli(capsys, *ws, "resume")
    assert code == 0 and f"tmux: session {link.session} is alive" in out

    # After a crash of tmux (or a reboot), resume recreates the session from the step's snapshot.
    tmux_server.kill()
    code, out, err = cli(capsys, *ws, "resume", "--no-run")
    assert code == 0, err
    assert f"tmux: recreated session {link.session} from checkpoint {info.id}" in out
    assert "Task:" in out and "1. check history" in out
    assert set(panes_by_uid(tmux_server, link.session)) == {uid}
    retry_until(lambda: "first-command" in capture(tmux_server, target), what="scrollback replayed")


def test_resume_without_any_snapshot_says_so(
    tmux_server: PrivateTmux,
    workspace: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TETHER_TMUX_SOCKET", tmux_server.socket_path)
    monkeypatch.chdir(workspace)
    code, out, err = cli(capsys, "-C", str(workspace), "resume")
    assert code == 0, err
    name = TmuxLink(workspace).session
    assert f"tmux: session {name} is not running and no snapshot of it was ever recorded" in out
    assert "`tether start`" in out
