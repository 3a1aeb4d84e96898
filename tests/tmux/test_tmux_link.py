"""The tmux link against a real tmux server on a private socket: snapshot, kill -9, recreate."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tests.tmux.conftest import (
    PROMPT,
    capture,
    foreground_cmdline,
    free_port,
    panes_by_uid,
    run_in,
    wait_prompt,
)
from tether.errors import TmuxError
from tether.tmux.config import RunPolicy, TmuxConfig, WindowSpec
from tether.tmux.link import TmuxLink, session_name_for
from tether.tmux.snapshot import SnapshotFormatError, TmuxSnapshot, layout_checksum

MakeLink = Callable[..., TmuxLink]
SPACED = ["python3", "-c", 'import time; print("a b"); time.sleep(600)', "x y", "it's"]


def _http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _proc_dead(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


_LEAF_IDS = re.compile(r"(\d+x\d+,\d+,\d+),\d+")


def _layouts(srv: PrivateTmux, session: str) -> dict[str, str]:
    """Window name -> unzoomed layout geometry, without the checksum and pane ids."""
    res = srv.cmd("list-windows", "-t", f"={session}:", "-F", "#{window_name}\x1f#{window_layout}")
    out = {}
    for line in res.stdout.splitlines():
        name, layout = line.split("\x1f")
        out[name] = _LEAF_IDS.sub(r"\1", layout.split(",", 1)[1])
    return out


def _settled(srv: PrivateTmux, session: str) -> dict[str, dict[str, str]]:
    """Pane rows once every pane reports a cwd (tmux reads it from /proc, empty while a pane starts)."""
    return retry_until(
        lambda: (
            (rows := panes_by_uid(srv, session))
            and all(r["pane_current_path"] for r in rows.values())
            and rows
        ),
        what="panes started",
    )


def _same_argv(got: list[str] | None, want: list[str]) -> bool:
    # A pyenv shim may exec the real interpreter by its full path.
    return bool(got) and os.path.basename(got[0]) == want[0] and got[1:] == want[1:]  # type: ignore[index]


def _wait_fg(srv: PrivateTmux, link: TmuxLink, uid: str, argv0: str) -> list[str]:
    def fg() -> list[str] | None:
        row = panes_by_uid(srv, link.session).get(uid)
        cmd = foreground_cmdline(int(row["pane_pid"])) if row else None
        return cmd if cmd and os.path.basename(cmd[0]).startswith(argv0) else None

    return retry_until(fg, timeout=10, what=f"{argv0} in front of pane {uid}")


def test_session_name_is_stable_and_tmux_safe(tmp_path: Path) -> None:
    a = tmp_path / "my proj.v2:x"
    a.mkdir()
    name = session_name_for(a)
    assert name == session_name_for(a)
    assert name.startswith("tether-my-proj-v2-x-")
    assert all(c.isalnum() or c in "-_" for c in name)
    b = tmp_path / "other" / "my proj.v2:x"
    b.mkdir(parents=True)
    assert session_name_for(b) != name


def test_ensure_session_creates_configured_windows_once(
    tmux_server: PrivateTmux, make_link: MakeLink
) -> None:
    link = make_link(windows=[WindowSpec("agent"), WindowSpec("tests", "echo configured-run", "sub")])
    (link.root / "sub").mkdir()
    name, created = link.ensure_session()
    assert created and name == link.session and link.alive()
    assert link.ensure_session() == (name, False)
    rows = panes_by_uid(tmux_server, name)
    assert sorted(r["window_name"] for r in rows.values()) == ["agent", "tests"]
    assert all(uid.startswith("p") for uid in rows)
    tests_pane = next(r for r in rows.values() if r["window_name"] == "tests")
    assert tests_pane["pane_current_path"] == str(link.root / "sub")
    retry_until(
        lambda: "\nconfigured-run" in capture(tmux_server, f"={name}:tests"), what="config command ran"
    )
    assert link.attach_argv()[-5:-2] == ["-S", tmux_server.socket_path, "attach-session"]
    assert link.attach_argv()[-2:] == ["-t", f"={name}"]


def test_kill_server_then_restore_everything(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link(windows=[WindowSpec("agent"), WindowSpec("server", None, "web")])
    root = link.root
    (root / "web").mkdir()
    (root / "web" / "index.html").write_text("hello from tether\n")
    (root / "lib").mkdir()
    s = link.session
    link.ensure_session()
    srv = tmux_server

    # agent window: scrollback + shell history in pane 0, a second pane in lib/, zoomed, active.
    run_in(srv, f"={s}:agent.0", "echo hist-marker-one")
    run_in(srv, f"={s}:agent.0", "for i in $(seq 1 80); do echo scroll-line-$i; done")
    retry_until(lambda: "scroll-line-80" in capture(srv, f"={s}:agent.0"), what="scrollback")
    srv.cmd("split-window", "-h", "-t", f"={s}:agent", "-c", str(root / "lib"))
    srv.cmd("resize-pane", "-t", f"={s}:agent.1", "-x", "70")
    srv.cmd("resize-pane", "-Z", "-t", f"={s}:agent.1")
    # server window: an allowlisted dev server, answering on loopback.
    port = free_port()
    run_in(srv, f"={s}:server", f"python3 -m http.server --bind 127.0.0.1 {port}")
    retry_until(lambda: _http_ok(port), timeout=15, what="http.server up")
    # a third window with quoted/spaced args: not allowlisted.
    srv.cmd("new-window", "-d", "-t", f"={s}:7", "-n", "spaced", "-c", str(root))
    run_in(srv, f"={s}:spaced", shlex.join(SPACED))
    retry_until(lambda: "\na b" in capture(srv, f"={s}:spaced"), what="spaced command output")
    srv.cmd("select-window", "-t", f"={s}:server")

    layouts_before = _layouts(srv, s)
    snap = link.snapshot()
    assert snap is not None
    data = link.snapshot_bytes()
    assert data is not None
    before = panes_by_uid(srv, s)
    by_uid = {p.uid: (w, p) for w in snap.windows for p in w.panes}
    assert set(by_uid) == set(before)
    spaced_uid = next(uid for uid, (w, _) in by_uid.items() if w.name == "spaced")
    server_uid = next(uid for uid, (w, _) in by_uid.items() if w.name == "server")
    assert _same_argv(by_uid[spaced_uid][1].command, SPACED)  # full argv from /proc, quoting intact
    server_cmd = by_uid[server_uid][1].command
    assert server_cmd is not None and server_cmd[1:] == [
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        str(port),
    ]

    srv.kill()  # SIGKILL: as after a crash or a reboot
    retry_until(lambda: not _http_ok(port), timeout=10, what="old http.server gone")
    assert not link.alive()

    report = link.restore(data)
    assert report.recreated
    actions = {p.uid: p.action for p in report.panes}
    assert actions[server_uid] == "ran"
    assert actions[spaced_uid] == "typed"

    after = _settled(srv, s)
    assert set(after) == set(before)  # same panes, same stable ids
    for uid, row in after.items():
        old = before[uid]
        for key in ("window_index", "window_name", "pane_index", "pane_current_path", "window_zoomed_flag"):
            assert row[key] == old[key], (uid, key)
        assert row["pane_active"] == old["pane_active"], uid
        assert row["window_active"] == old["window_active"], uid
    # layout: pane count and sizes per window (the unzoomed layout; pane ids aside)
    assert _layouts(srv, s) == layouts_before
    assert len(next(w for w in snap.windows if w.name == "agent").panes) == 2
    assert "{" in layouts_before["agent"] and ",70x" in layouts_before["agent"]

    # the dev server came back and answers
    retry_until(lambda: _http_ok(port), timeout=15, what="restored http.server answers")
    # scrollback replayed
    agent0 = next(uid for uid, (w, p) in by_uid.items() if w.name == "agent" and p.index == 0)
    retry_until(lambda: "scroll-line-80" in capture(srv, f"={s}:agent.0"), what="replayed scrollback")
    assert "scroll-line-1\n" in capture(srv, f"={s}:agent.0")
    # shell history: the restored bash has the old commands
    out = link.root / "hist.out"
    run_in(srv, f"={s}:agent.0", f"history > {out}")
    text = retry_until(lambda: out.exists() and out.read_text(), what="history dump")
    assert "echo hist-marker-one" in text
    assert agent0 in {p.uid for p in report.panes}
    # the non-allowlisted command is typed at the prompt but not run
    wait_prompt(srv, f"={s}:spaced")
    retry_until(
        lambda: capture(srv, f"={s}:spaced", history=False).rstrip().endswith(PROMPT + shlex.join(SPACED)),
        what="spaced command typed at the prompt",
    )
    assert foreground_cmdline(int(after[spaced_uid]["pane_pid"])) is None
    # shown once at the prompt (plus once in the replayed scrollback), not echoed a second time
    assert capture(srv, f"={s}:spaced").count(shlex.join(SPACED)) == 2
    # ... and runs unchanged once the user presses Enter: quoting survived the round trip
    srv.cmd("send-keys", "-t", f"={s}:spaced", "Enter")
    assert _same_argv(_wait_fg(srv, link, spaced_uid, "python3"), SPACED)


def test_alive_session_reattaches_without_rerun(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link()
    link.ensure_session()
    s = link.session
    run_in(tmux_server, f"={s}:", "sleep 600")
    uid = next(iter(panes_by_uid(tmux_server, s)))
    _wait_fg(tmux_server, link, uid, "sleep")
    snap = link.snapshot()
    assert snap is not None
    before = panes_by_uid(tmux_server, s)

    report = link.restore(snap, RunPolicy())
    assert not report.recreated and report.panes == []
    after = panes_by_uid(tmux_server, s)
    assert after == before  # same panes, same pids: nothing recreated, nothing re-run
    assert _wait_fg(tmux_server, link, uid, "sleep") == ["sleep", "600"]
    lines = capture(tmux_server, f"={s}:").count("sleep 600")
    assert lines == 1


def test_pane_whose_process_died(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link()
    link.ensure_session()
    s = link.session
    run_in(tmux_server, f"={s}:", "sleep 600")
    uid = next(iter(panes_by_uid(tmux_server, s)))
    retry_until(lambda: foreground_cmdline(int(panes_by_uid(tmux_server, s)[uid]["pane_pid"])), what="sleep")
    fg_pid = int(
        Path(f"/proc/{panes_by_uid(tmux_server, s)[uid]['pane_pid']}/stat")
        .read_text()
        .rsplit(")", 1)[1]
        .split()[5]
    )
    os.kill(fg_pid, signal.SIGKILL)
    retry_until(lambda: _proc_dead(fg_pid), what="sleep killed")
    # a second window whose own process exited, kept by remain-on-exit
    tmux_server.cmd("set-option", "-wg", "remain-on-exit", "on")
    tmux_server.cmd(
        "new-window", "-d", "-t", f"={s}:3", "-n", "gone", "--", "sh", "-c", "echo bye; sleep 0.3; exit 3"
    )
    retry_until(
        lambda: (
            tmux_server.cmd("display-message", "-p", "-t", f"={s}:gone", "#{pane_dead}").stdout.strip() == "1"
        ),
        what="pane dead",
    )
    snap = link.snapshot()
    assert snap is not None
    panes = {w.name: w.panes[0] for w in snap.windows}
    shell_pane = next(p for name, p in panes.items() if name != "gone")
    assert shell_pane.command is None and shell_pane.shell is not None
    assert panes["gone"].dead and panes["gone"].command is None
    # tmux 3.3a sometimes marks the pane dead (pty EOF) without ever filling in the exit status.
    assert panes["gone"].dead_status in (3, None)
    assert "bye" in panes["gone"].scrollback

    tmux_server.kill()
    report = link.restore(snap.to_bytes())
    assert {p.action for p in report.panes} == {"none"}
    rows = panes_by_uid(tmux_server, s)
    assert len(rows) == 2
    for target in (f"={s}:gone", f"={s}:0"):
        wait_prompt(tmux_server, target)
        assert capture(tmux_server, target, history=False).rstrip().endswith(PROMPT.rstrip())
    assert "bye" in capture(tmux_server, f"={s}:gone")


def test_allowlist_pattern_and_never_policy(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link(allowlist=["sleep 6*"])
    link.ensure_session()
    s = link.session
    run_in(tmux_server, f"={s}:", "sleep 601")
    uid = next(iter(panes_by_uid(tmux_server, s)))
    _wait_fg(tmux_server, link, uid, "sleep")
    snap = link.snapshot()
    assert snap is not None
    tmux_server.kill()
    report = link.restore(snap, "never")
    assert [p.action for p in report.panes] == ["typed"]
    wait_prompt(tmux_server, f"={s}:")
    retry_until(
        lambda: capture(tmux_server, f"={s}:", False).rstrip().endswith(PROMPT + "sleep 601"), what="typed"
    )
    assert foreground_cmdline(int(panes_by_uid(tmux_server, s)[uid]["pane_pid"])) is None
    tmux_server.kill()
    report = link.restore(snap, "allowlist")
    assert [p.action for p in report.panes] == ["ran"]
    assert _wait_fg(tmux_server, link, uid, "sleep") == ["sleep", "601"]


def test_an_allowlisted_name_never_reruns_a_script_the_repository_ships(
    tmux_server: PrivateTmux, make_link: MakeLink, workspace: Path
) -> None:
    # `vite` is on the default allowlist; the repository ships its own tools/vite (issue 20).
    tool = workspace / "tools" / "vite"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\ntouch {workspace}/RAN\nsleep 600\n")
    tool.chmod(0o755)
    link = make_link()
    link.ensure_session()
    s = link.session
    run_in(tmux_server, f"={s}:", "./tools/vite")
    uid = next(iter(panes_by_uid(tmux_server, s)))
    assert _wait_fg(tmux_server, link, uid, "sh") == ["/bin/sh", "./tools/vite"]
    snap = link.snapshot()
    assert snap is not None
    tmux_server.kill()
    (workspace / "RAN").unlink()
    report = link.restore(snap, "allowlist")
    assert [(p.command, p.action) for p in report.panes] == [(["/bin/sh", "./tools/vite"], "typed")]
    wait_prompt(tmux_server, f"={s}:")
    retry_until(
        lambda: capture(tmux_server, f"={s}:", False).rstrip().endswith("/bin/sh ./tools/vite"),
        what="the command typed at the prompt",
    )
    assert not (workspace / "RAN").exists()
    assert foreground_cmdline(int(panes_by_uid(tmux_server, s)[uid]["pane_pid"])) is None


def test_a_command_with_a_secret_is_saved_redacted_and_typed_never_run(
    tmux_server: PrivateTmux, make_link: MakeLink
) -> None:
    """Allowlisted, even confirmed: the saved argv holds a placeholder where the secret was, so
    it is typed for the user to fill in, never run."""
    link = make_link(allowlist=["python3 -c *"])
    link.ensure_session()
    s = link.session
    argv = ["python3", "-c", "import time; time.sleep(600)", "--token", "T0kenV4lue-not-a-shape"]
    run_in(tmux_server, f"={s}:", shlex.join(argv))
    uid = next(iter(panes_by_uid(tmux_server, s)))
    _wait_fg(tmux_server, link, uid, "python3")
    data = link.snapshot_bytes()
    assert data is not None and b"T0kenV4lue" not in data
    snap = TmuxSnapshot.from_bytes(data)
    saved = snap.windows[0].panes[0].command
    assert saved is not None and saved[-2:] == ["--token", "[REDACTED]"]
    for policy in (RunPolicy(), RunPolicy(confirmed=frozenset({uid}))):
        tmux_server.kill()
        report = link.restore(snap, policy)
        assert [p.action for p in report.panes] == ["typed"]
        assert any("[REDACTED]" in w and "fill it in" in w for w in report.warnings)
        wait_prompt(tmux_server, f"={s}:")
        retry_until(
            lambda: capture(tmux_server, f"={s}:", False).rstrip().endswith("--token '[REDACTED]'"),
            what="the command typed with its placeholder",
        )
        assert foreground_cmdline(int(panes_by_uid(tmux_server, s)[uid]["pane_pid"])) is None


BAD_SNAPSHOTS: list[tuple[str, object]] = [
    ("not json", b"{not json"),
    ("wrong schema", {"schema": 99, "session": "x", "root": "/", "windows": [], "env": []}),
    ("no windows", {"schema": 1, "session": "x", "root": "/", "windows": [], "env": []}),
    ("top-level list", [1, 2]),
]


def _layout(body: str) -> str:
    return f"{layout_checksum(body)},{body}"


def _good_doc() -> dict[str, object]:
    pane = {
        "uid": "pabc",
        "index": 0,
        "active": True,
        "cwd": "/tmp",
        "width": 80,
        "height": 24,
        "shell": None,
        "command": ["touch", "/tmp/should-not-exist"],
        "dead": False,
        "dead_status": None,
        "scrollback": [],
        "history": [],
        "env": [],
    }
    win = {
        "index": 0,
        "name": "w",
        "layout": _layout("80x24,0,0,1"),
        "zoomed": False,
        "active": True,
        "width": 80,
        "height": 24,
        "panes": [pane],
    }
    return {"schema": 1, "session": "x", "root": "/tmp", "windows": [win], "env": []}


def _mutate(path: str, value: object) -> dict[str, object]:
    doc = _good_doc()
    cur: object = doc
    keys = path.split(".")
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]  # type: ignore[index]
    if isinstance(cur, list):
        cur[int(keys[-1])] = value
    else:
        cur[keys[-1]] = value  # type: ignore[index]
    return doc


BAD_SNAPSHOTS += [
    ("relative cwd", _mutate("windows.0.panes.0.cwd", "relative/dir")),
    ("bad uid", _mutate("windows.0.panes.0.uid", "a b;c")),
    ("command not a list", _mutate("windows.0.panes.0.command", "rm -rf /")),
    ("empty command", _mutate("windows.0.panes.0.command", [])),
    ("layout injection", _mutate("windows.0.layout", _layout("80x24,0,0,1 ; kill-server"))),
    ("layout pane count", _mutate("windows.0.layout", _layout("80x24,0,0{40x24,0,0,1,39x24,41,0,2}"))),
    ("layout checksum", _mutate("windows.0.layout", "0000,80x24,0,0,1")),
    ("index out of range", _mutate("windows.0.index", -1)),
    ("width not int", _mutate("windows.0.width", "80")),
    ("bool as int", _mutate("windows.0.panes.0.index", True)),
    ("env bad name", _mutate("env", [{"name": "A=B", "kind": "project", "value": "x", "source": "s"}])),
    ("pane not object", _mutate("windows.0.panes", ["x"])),
]


@pytest.mark.parametrize(("what", "doc"), BAD_SNAPSHOTS, ids=[b[0] for b in BAD_SNAPSHOTS])
def test_malformed_snapshot_is_refused_and_creates_nothing(
    tmux_server: PrivateTmux, make_link: MakeLink, what: str, doc: object
) -> None:
    link = make_link()
    data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    with pytest.raises(SnapshotFormatError) as err:
        link.restore(data)
    assert "tmux snapshot" in err.value.message
    assert not tmux_server.alive()  # not even a server was started
    assert not Path("/tmp/should-not-exist").exists()


def test_good_doc_is_accepted(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    # The fixture the malformed cases mutate is itself valid (so each case fails for its own reason).
    link = make_link()
    report = link.restore(json.dumps(_good_doc()).encode(), "never")
    assert report.recreated and [p.action for p in report.panes] == ["typed"]
    assert not Path("/tmp/should-not-exist").exists()


def test_dead_server_gives_clear_error(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link()
    link.ensure_session()
    tmux_server.kill()
    assert not link.alive()
    assert link.snapshot() is None
    with pytest.raises(TmuxError) as err:
        link.panes()
    assert "no tmux server is running" in err.value.message
    assert tmux_server.socket_path in err.value.message


def test_secret_env_values_never_in_snapshot(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    link = make_link()
    link.ensure_session()
    s = link.session
    tmux_server.cmd("set-environment", "-t", f"={s}:", "GITHUB_TOKEN", token)
    tmux_server.cmd("set-environment", "-t", f"={s}:", "APP_MODE", "development")
    tmux_server.cmd(
        "new-window", "-d", "-t", f"={s}:4", "-n", "envs",
        "-e", "DB_PASSWORD=hunter2-very-secret", "-e", "PLAIN_URL=https://bob:s3cr3tpw@example.com/x",
        "-e", "FEATURE_FLAG=on", "--", "/bin/bash", "--noprofile", "--norc", "-i",
    )  # fmt: skip
    run_in(tmux_server, f"={s}:0", f"echo password=hunter2-very-secret token {token}")
    run_in(tmux_server, f"={s}:0", "export AWS_SECRET_ACCESS_KEY=AKIAABCDEFGHIJKLMNOP")
    retry_until(lambda: capture(tmux_server, f"={s}:0").count("hunter2") >= 2, what="echo output")
    pane0 = next(u for u, r in panes_by_uid(tmux_server, s).items() if r["window_index"] == "0")
    hist = link.history_file(pane0)
    retry_until(lambda: hist.exists() and "AKIAABCDEFGHIJKLMNOP" in hist.read_text(), what="bash history -a")
    data = link.snapshot_bytes()
    assert data is not None
    for secret in (token, "hunter2-very-secret", "s3cr3tpw", "AKIAABCDEFGHIJKLMNOP"):
        assert secret.encode() not in data, secret
        # the shell's own history file is redacted in place by the snapshot
        assert secret not in hist.read_text(), secret
    assert "export AWS_SECRET_ACCESS_KEY=[REDACTED]" in hist.read_text()
    assert (hist.stat().st_mode & 0o777) == 0o600
    snap = TmuxSnapshot.from_bytes(data)
    session_env = {e.name: e for e in snap.env}
    assert session_env["GITHUB_TOKEN"].kind == "secret" and session_env["GITHUB_TOKEN"].value is None
    assert session_env["APP_MODE"].value == "development"
    envs = next(w for w in snap.windows if w.name == "envs").panes[0]
    pane_env = {e.name: e for e in envs.env}
    assert pane_env["DB_PASSWORD"].kind == "secret"
    assert pane_env["PLAIN_URL"].kind == "secret"
    assert pane_env["FEATURE_FLAG"].kind == "project" and pane_env["FEATURE_FLAG"].value == "on"
    assert "[REDACTED]" in data.decode()

    tmux_server.kill()
    report = link.restore(data)
    assert any(m.startswith("GITHUB_TOKEN") for m in report.missing_secrets)
    assert any(m.startswith("DB_PASSWORD") for m in report.missing_secrets)
    out = link.root / "env.out"
    run_in(tmux_server, f"={s}:envs", f'echo "$APP_MODE/$FEATURE_FLAG/${{GITHUB_TOKEN:-none}}" > {out}')
    assert retry_until(lambda: out.exists() and out.read_text()) == "development/on/none\n"


def test_hostile_names_and_paths_are_not_expanded(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link()
    marker = Path(os.environ["HOME"]) / "pwned"
    weird = link.root / "dir #(cd;touch pwned) x;"
    weird.mkdir()
    doc = _good_doc()
    win = doc["windows"][0]  # type: ignore[index]
    win["name"] = f"w #(touch {marker});"
    win["panes"][0]["cwd"] = str(weird)
    win["panes"][0]["command"] = ["echo", f"#(touch {marker})", "end;"]
    link.restore(json.dumps(doc).encode(), "never")
    s = link.session
    rows = _settled(tmux_server, s)
    (row,) = rows.values()
    assert row["window_name"] == f"w #(touch {marker});"
    assert row["pane_current_path"] == str(weird)
    wait_prompt(tmux_server, f"={s}:")
    retry_until(lambda: "end;" in capture(tmux_server, f"={s}:", False), what="typed text")
    assert not marker.exists()


def test_unchanged_session_snapshot_is_cached(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link()
    link.ensure_session()
    s = link.session
    wait_prompt(tmux_server, f"={s}:")
    first = link.snapshot()
    assert first is not None
    second = link.snapshot()
    assert second is first  # nothing changed: nothing captured
    run_in(tmux_server, f"={s}:", "echo changed-now")
    third = retry_until(
        lambda: (snap := link.snapshot()) is not first and snap, what="snapshot to notice the change"
    )
    assert any("changed-now" in line for w in third.windows for p in w.panes for line in p.scrollback)


def test_many_panes_in_one_window_keep_order_and_layout(
    tmux_server: PrivateTmux, make_link: MakeLink
) -> None:
    link = make_link()
    link.ensure_session()
    s = link.session
    for _ in range(5):
        tmux_server.cmd("split-window", "-t", f"={s}:0", "-c", "/tmp")
        tmux_server.cmd("select-layout", "-t", f"={s}:0", "tiled")
    tmux_server.cmd("select-layout", "-t", f"={s}:0", "main-vertical")
    tmux_server.cmd("select-pane", "-t", f"={s}:0.3")
    snap = link.snapshot()
    assert snap is not None
    layouts = _layouts(tmux_server, s)
    order = [p.uid for p in snap.windows[0].panes]
    tmux_server.kill()
    link.restore(snap)
    rows = panes_by_uid(tmux_server, s)
    assert sorted(rows, key=lambda u: int(rows[u]["pane_index"])) == order
    assert rows[order[3]]["pane_active"] == "1"
    assert _layouts(tmux_server, s) == layouts  # same geometry; only checksum/pane ids differ


def test_untrusted_window_commands_are_typed_not_run(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    marker = Path(os.environ["HOME"]) / "ran"
    cfg, _ = TmuxConfig.from_wire({"windows": [{"name": "dev", "command": f"touch {marker}"}]}, trusted=False)
    link = make_link(windows=cfg.windows)
    link.ensure_session()
    target = f"={link.session}:dev"
    wait_prompt(tmux_server, target)
    retry_until(
        lambda: capture(tmux_server, target, False).rstrip().endswith(f"{PROMPT}touch {marker}"),
        what="command typed at the prompt",
    )
    assert not marker.exists()


def test_snapshot_json_matches_record_fields(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    # to_json is hand-written for speed; it must carry every field the records define.
    from tether.record import asdict

    link = make_link()
    link.ensure_session()
    wait_prompt(tmux_server, f"={link.session}:")
    snap = link.snapshot()
    assert snap is not None
    assert snap.to_json() == asdict(snap)
    assert TmuxSnapshot.from_bytes(snap.to_bytes()) == snap


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_history_hook_and_restore(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    home = Path(os.environ["HOME"])
    (home / ".zshrc").write_text(f"PROMPT='{PROMPT}'\n")
    link = make_link(shell="zsh")
    link.ensure_session()
    s = link.session
    run_in(tmux_server, f"={s}:", "echo zsh-marker-one")
    (uid,) = panes_by_uid(tmux_server, s)
    retry_until(
        lambda: (
            link.history_file(uid).exists() and "echo zsh-marker-one" in link.history_file(uid).read_text()
        ),
        what="zsh hook to append the command",
    )
    snap = link.snapshot()
    assert snap is not None and snap.windows[0].panes[0].history == ["echo zsh-marker-one"]
    tmux_server.kill()
    link.restore(snap)
    out = link.root / "zhist.out"
    run_in(tmux_server, f"={s}:", f"fc -ln 1 > {out}")
    assert "echo zsh-marker-one" in retry_until(lambda: out.exists() and out.read_text(), what="fc output")
    assert "zsh-marker-one" in capture(tmux_server, f"={s}:")  # scrollback replayed


def test_history_limit_is_set_before_panes_exist(tmux_server: PrivateTmux, make_link: MakeLink) -> None:
    link = make_link(scrollback_lines=5000, windows=[WindowSpec("a"), WindowSpec("b")])
    link.ensure_session()
    limits = tmux_server.cmd("list-panes", "-s", "-t", f"={link.session}:", "-F", "#{history_limit}").stdout
    assert limits.split() == ["5000", "5000"]  # every pane, including the first window's
