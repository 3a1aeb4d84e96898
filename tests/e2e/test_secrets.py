"""Secrets never reach Tether's state in clear, and the state is private.

Secret values are planted in a real tmux session on a private socket (session environment, a
pane's environment, the scrollback via `echo`) and in a `tether run` command's output; then a
checkpoint with the tmux snapshot attached is taken through the CLI path. Every byte under the
state dir is searched for the planted values, with every SQLite cell also inflated (blobs are
zlib-compressed). None may be found; the variable names must still be there. Every directory
is 0700 and every file 0600.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.faults import bad_permissions, find_planted, state_bytes
from tests.support.retry import retry_until
from tests.support.tmuxsrv import PrivateTmux
from tether.checkpoints.checkpointer import Checkpointer
from tether.store.db import Store
from tether.tmux.config import TmuxConfig
from tether.tmux.link import TmuxLink

PROMPT = "tt$ "
GITHUB = "ghp_" + "Zq7Xw2Lm9Np4Rs6Tv8Uy0Ab3Cd5Ef1Gh7Ij2K"
AWS = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ8r2vK9tLmP"
DB_PW = "pw-Hunter2-c0rrect-h0rse"
RUN_TOKEN = "sk-" + "proj-" + "R4nd0mAp1K3yTh4tL00ksR34l"
ECHO_PW = "Sup3rS3cretValue99"
NAMES = ("GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setenv("SHELL", "/bin/bash")
    monkeypatch.delenv("PROMPT_COMMAND", raising=False)
    (h / ".bashrc").write_text(f"PS1='{PROMPT}'\nunset PROMPT_COMMAND\n")
    (h / ".bash_profile").write_text(". ~/.bashrc\n")
    return h


def _capture(srv: PrivateTmux, target: str) -> str:
    res = srv.cmd("capture-pane", "-p", "-J", "-S", "-", "-t", target, check=False)
    return res.stdout if res.returncode == 0 else ""


def _pane_uid(srv: PrivateTmux, target: str) -> str:
    return srv.cmd("display-message", "-p", "-t", target, "#{@tether_pane}").stdout.strip()


def _type(srv: PrivateTmux, target: str, line: str) -> None:
    retry_until(lambda: PROMPT.strip() in _capture(srv, target), timeout=15, what=f"prompt in {target}")
    srv.cmd("send-keys", "-t", target, "-l", "--", line)
    srv.cmd("send-keys", "-t", target, "Enter")


def test_planted_secrets_are_nowhere_in_the_state_dir(
    tmux_server: PrivateTmux, workspace: Path, state_dir: Path, home: Path
) -> None:
    (workspace / "app.py").write_text("print('hello')\n")
    link = TmuxLink(
        workspace,
        TmuxConfig(socket_path=tmux_server.socket_path, shell="/bin/bash", shell_rc=True),
        state_dir,
    )
    link.ensure_session()
    s = link.session
    tmux_server.cmd("set-environment", "-t", f"={s}:", "GITHUB_TOKEN", GITHUB)
    tmux_server.cmd(
        "new-window", "-d", "-t", f"={s}:5", "-n", "secrets",
        "-e", f"AWS_SECRET_ACCESS_KEY={AWS}", "-e", f"DB_PASSWORD={DB_PW}",
        "-e", f"GH={GITHUB}", "-e", f"ECHO_PASSWORD={ECHO_PW}",
        "--", "/bin/bash", "--noprofile", "--rcfile", str(home / ".bashrc"), "-i",
    )  # fmt: skip
    # Scrollback: token lines printed by a command (the values come from the environment, so
    # the typed command line itself holds no secret).
    _type(tmux_server, f"={s}:secrets", 'echo "export GITHUB_TOKEN=$GH"; echo "password=$ECHO_PASSWORD"')
    retry_until(lambda: "export GITHUB_TOKEN=" in _capture(tmux_server, f"={s}:secrets"), what="echo")
    _type(tmux_server, f"={s}:0", f"echo token {GITHUB} password={ECHO_PW}")
    retry_until(lambda: _capture(tmux_server, f"={s}:0").count(ECHO_PW) >= 2, what="echo in pane 0")

    # A recorded run whose output prints a key (the `tether run` CLI in a real process).
    env = dict(os.environ, TETHER_STATE_DIR=str(state_dir))
    run = subprocess.run(
        [
            sys.executable, "-m", "tether", "-C", str(workspace), "run", "--",
            "sh", "-c", f"echo OPENAI_API_KEY={RUN_TOKEN}; echo done",
        ],
        capture_output=True, text=True, timeout=60, env=env, check=False, cwd=workspace,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert RUN_TOKEN in run.stdout  # the user's terminal sees the output as is

    with Store.open(workspace, state_dir) as store:
        cp = Checkpointer(store)
        cp.add_provider("tmux", link.snapshot_bytes)
        info = cp.checkpoint("manual", "with secrets around", full=True, allow_empty=True).info
        assert info is not None
        assert store.attachment(info.id, "tmux") is not None

    hits = find_planted(state_dir, [GITHUB, AWS, DB_PW, RUN_TOKEN, ECHO_PW])
    # The panes' live shell history files (bash's own HISTFILE, kept under the state dir) are
    # judged separately below: everything else, the store above all, must be clean.
    assert [h for h in hits if not h[0].endswith(".hist")] == [], hits
    everything = b"".join(data for _where, data in state_bytes(state_dir))
    for name in NAMES:
        assert name.encode() in everything, f"{name} should be kept (value redacted)"
    assert b"[REDACTED]" in everything
    assert bad_permissions(state_dir) == []
    # The live history file too, once a snapshot has read it after the shell wrote the line.
    hist = link.history_file(_pane_uid(tmux_server, f"={s}:0"))
    retry_until(lambda: "echo token" in hist.read_text(), what="bash to append its history")
    link.snapshot_bytes()
    assert find_planted(state_dir, [GITHUB, ECHO_PW]) == []


def test_state_dir_permissions_hold_under_a_permissive_umask(workspace: Path, state_dir: Path) -> None:
    old = os.umask(0)
    try:
        (workspace / "a.txt").write_text("a\n")
        env = dict(os.environ, TETHER_STATE_DIR=str(state_dir))
        for args in (["checkpoint"], ["step", "--done", "first step", "--next", "then this"], ["status"]):
            res = subprocess.run(
                [sys.executable, "-m", "tether", "-C", str(workspace), *args],
                capture_output=True, text=True, timeout=60, env=env, check=False,
            )  # fmt: skip
            assert res.returncode == 0, (args, res.stderr)
    finally:
        os.umask(old)
    assert bad_permissions(state_dir) == []
    # The SQLite side files exist (WAL mode) and are covered by the walk.
    names = {p.name for p in state_dir.rglob("*")}
    assert "tether.db" in names


# --- the probe: every kind of secret, through every path that stores text ----------------------

# Each value is distinct, so a hit names the path that leaked it. Built by concatenation so that
# no secret scanner takes this file for a leak.
PROBE = {
    "session_token": "ghp_" + "Pr0beSess10nT0kenAbCdEfGhIjKlMnOpQr",
    "redis_pw": "R3disPr0bePassw0rd",
    "azure_key": "QXp1cmVQcm9iZUtleQ" + "+abc/DEF0123456789==",
    "pane_pat": "github_" + "pat_11PR0BE0abcdefghijklmnopqrstuvwxyz012345",
    "pane_url_pw": "Ur1Pr0bePassw0rd",
    "mysql_typed": "MyS9lTyp3dPw",
    "bearer_typed": "Bear3rTyp3dT0ken9876",
    "json_pw": "Js0nPr0bePassw0rd",
    "yaml_secret": "Yam1Pr0beS3cret",
    "flag_pw": "F1agPr0bePassw0rd",
    "flag_token": "F1agPr0beT0kenValue",
    "openai": "sk-" + "proj-" + "Pr0beOpenAiK3yAbCdEfGh",
    "anthropic": "sk-" + "ant-api03-" + "Pr0beAnthr0picK3yAbCd",
    "slack": "xox" + "b-1234509876-Pr0beSlackT0ken",
    "aws_id": "AKIA" + "PR0BE0EXAMPLE000",
    "google": "AIza" + "SyPr0beG00g1eK3yAbCdEfGhIjKlMnOpQrS",
    "jwt": "eyJ" + "hbGciOiJQcm9iZSJ9.eyJzdWIiOiJwcm9iZTEyMzQifQ.Pr0beJwtS1gnatureAbCdEf",
    "pgp_line": "lQOYBFPr0bePgpPr1vateK3yB0dyAbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "mysql_argv": "MyS9lArgvPw",
    "run_bearer": "RunBear3rT0ken5432",
    "hook_pw": "H00kMyS9lPw",
    "step_pw": "St3pPr0bePassw0rd",
    "next_bearer": "N3xtBear3rT0ken1234",
    "cp_pw": "Ch3ckp0intPw",
}
PGP_BLOCK = (
    "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n"
    f"{PROBE['pgp_line']}\n"
    "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789AbCdEfGhIjKlMnOpQrStUvWx\n"
    "=Pr0b\n"
    "-----END PGP PRIVATE KEY BLOCK-----\n"
)
SECRET_NAMES = ("GITHUB_TOKEN", "REDIS_URL", "AZURE_STORAGE_CONNECTION_STRING", "DEPLOY_PAT", "SERVICE_URL")


def _fake_tools(bin_dir: Path) -> Path:
    """`mysql` that just waits (its argv is the pane's running command) and `curl` that prints
    its request headers like `curl -v` does. Outside the workspace: its files are stored as is."""
    bin_dir.mkdir()
    (bin_dir / "mysql").write_text("#!/bin/sh\necho connecting...\nif [ -t 0 ]; then sleep 600; fi\n")
    (bin_dir / "curl").write_text(
        '#!/bin/sh\nfor a in "$@"; do printf "> %s\\n" "$a"; done\necho "< 200 OK"\n'
    )
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    return bin_dir


def test_probe_secrets_are_nowhere_in_the_state_dir(
    tmux_server: PrivateTmux, workspace: Path, state_dir: Path, home: Path, tmp_path: Path
) -> None:
    """Pane and session env, typed commands (history file and scrollback), echoed secrets and a
    PGP key in the scrollback, a running command's argv, `tether run` argv/output, a hook's Bash
    command, step and checkpoint messages, the hand-off repository: then every byte of the state
    dir (files, inflated zlib streams, SQLite cells, WAL) holds none of the values."""
    from tests.support.gitremote import git

    tools = _fake_tools(tmp_path / "bin")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "key.asc").write_text(PGP_BLOCK)
    (outside / "config.txt").write_text(
        f'{{"password": "{PROBE["json_pw"]}", "user": "app"}}\n'
        f"client_secret: {PROBE['yaml_secret']}\n"
        f"{PROBE['openai']} {PROBE['anthropic']} {PROBE['slack']}\n"
        f"aws {PROBE['aws_id']} google {PROBE['google']}\njwt {PROBE['jwt']}\n"
    )
    (workspace / "app.py").write_text("print('hello')\n")
    git(workspace, "init", "-q", "-b", "main")
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    git(workspace, "remote", "add", "origin", str(remote))

    link = TmuxLink(
        workspace,
        TmuxConfig(socket_path=tmux_server.socket_path, shell="/bin/bash", shell_rc=True),
        state_dir,
    )
    link.ensure_session()
    s = link.session
    # Session env: a token by name, credentials inside a URL and a connection string by value.
    tmux_server.cmd("set-environment", "-t", f"={s}:", "GITHUB_TOKEN", PROBE["session_token"])
    tmux_server.cmd(
        "set-environment", "-t", f"={s}:", "REDIS_URL", f"redis://:{PROBE['redis_pw']}@cache:6379"
    )
    tmux_server.cmd(
        "set-environment", "-t", f"={s}:", "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=https;AccountName=probe;AccountKey={PROBE['azure_key']};EndpointSuffix=x",
    )  # fmt: skip
    # A pane of its own env, echoing everything it has.
    tmux_server.cmd(
        "new-window", "-d", "-t", f"={s}:5", "-n", "secrets",
        "-e", f"DEPLOY_PAT={PROBE['pane_pat']}",
        "-e", f"SERVICE_URL=https://deploy:{PROBE['pane_url_pw']}@svc.example.com/api",
        "--", "/bin/bash", "--noprofile", "--rcfile", str(home / ".bashrc"), "-i",
    )  # fmt: skip
    sec = f"={s}:secrets"
    _type(tmux_server, sec, 'echo "$GITHUB_TOKEN $REDIS_URL $AZURE_STORAGE_CONNECTION_STRING"; env | sort')
    _type(tmux_server, sec, f"cat {outside}/key.asc {outside}/config.txt")
    retry_until(
        lambda: "END PGP PRIVATE KEY BLOCK" in _capture(tmux_server, sec), what="the key in scrollback"
    )
    # Typed at a prompt of Tether's own pane: its history file is in the state dir.
    p0 = f"={s}:0"
    typed = [
        f"curl -H 'Authorization: Bearer {PROBE['bearer_typed']}' https://api.example.com/v1",
        f"deploy --password={PROBE['flag_pw']} --token {PROBE['flag_token']} || true",
        f"{tools}/mysql -uroot -p{PROBE['mysql_typed']} shop </dev/null; true",
        # The last one keeps running: its argv is what a resume would re-run.
        f"{tools}/mysql -uroot -p{PROBE['mysql_argv']} shop",
    ]
    for line in typed:
        _type(tmux_server, p0, line)
    retry_until(lambda: _capture(tmux_server, p0).count("connecting...") >= 2, what="the mysql stand-in")
    hist = link.history_file(_pane_uid(tmux_server, p0))
    retry_until(
        lambda: hist.exists() and "shop </dev/null" in hist.read_text(), what="bash to append history"
    )

    env = dict(
        os.environ,
        TETHER_STATE_DIR=str(state_dir),
        TETHER_TMUX_SOCKET=tmux_server.socket_path,
        TETHER_CONFIG=str(tmp_path / "no-config.toml"),
        SHELL="/bin/bash",
    )

    def tether(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            [sys.executable, "-m", "tether", "-C", str(workspace), *args],
            capture_output=True, text=True, timeout=120, env=env, check=False, cwd=workspace, input=stdin,
        )  # fmt: skip
        assert res.returncode == 0, (args, res.stderr)
        return res

    run = tether(
        "run", "--", str(tools / "curl"), "-H", f"Authorization: Bearer {PROBE['run_bearer']}",
        "https://api.example.com/v1",
    )  # fmt: skip
    assert PROBE["run_bearer"] in run.stdout  # the user's terminal sees the output as is
    (workspace / "app.py").write_text("print('hook')\n")
    payload = {
        "hook_event_name": "PostToolUse",
        "session_id": "7f0c8e2a-1b2c-4d5e-8f90-123456789abc",
        "cwd": str(workspace),
        "tool_name": "Bash",
        "tool_input": {"command": f"mysql -uroot -p{PROBE['hook_pw']} shop -e 'select 1'"},
        "tool_response": {"stdout": f"mysql -p{PROBE['hook_pw']}"},
    }
    tether("hook", "claude-code", stdin=json.dumps(payload))
    (workspace / "app.py").write_text("print('step')\n")
    tether(
        "step", "--done", f"deployed, password={PROBE['step_pw']}",
        "--next", f"curl -H 'Authorization: Bearer {PROBE['next_bearer']}' https://api.example.com",
    )  # fmt: skip
    (workspace / "notes.txt").write_text("n\n")
    tether("checkpoint", "-m", f"mysql -uroot -p{PROBE['cp_pw']} shop")
    tether("push", "--include-terminal")

    with Store.open(workspace, state_dir) as store:
        messages = " ".join(c.message or "" for c in store.list_checkpoints(limit=None))
        snap = json.loads(store.latest_attachment("tmux")[1])  # type: ignore[index]
    assert "claude Bash: mysql -uroot -p[REDACTED] shop" in messages
    assert "before run:" in messages and "Authorization: Bearer [REDACTED]" in messages
    running = next(p for w in snap["windows"] for p in w["panes"] if p["command"] and "shop" in p["command"])
    assert running["command"][-2:] == ["-p[REDACTED]", "shop"]  # saved for re-run, redacted

    hits = find_planted(state_dir, PROBE.values())
    assert hits == [], sorted({(Path(w.split("@")[0].split(":")[0]).name, n) for w, n in hits})
    everything = b"".join(data for _where, data in state_bytes(state_dir))
    for name in SECRET_NAMES:
        assert name.encode() in everything, f"{name} should be kept (value redacted)"
    assert bad_permissions(state_dir) == []
