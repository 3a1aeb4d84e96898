"""Env classification, secret redaction and the tmux link's pure helpers (no subprocess)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tether.redact import REDACTED, redact_text
from tether.tmux.chain import chain_arg, pack
from tether.tmux.config import DEFAULT_ALLOWLIST, TmuxConfig, matches_allowlist
from tether.tmux.env import classify, classify_env, parse_environ, parse_show_environment
from tether.tmux.snapshot import SnapshotFormatError, TmuxSnapshot, layout_checksum

GH = "ghp_" + "Zx9" * 12


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("SSH_AUTH_SOCK", "/tmp/ssh-x/agent.1", "volatile"),
        ("TMUX", "/tmp/tmux-0/default,1,0", "volatile"),
        ("TMUX_PANE", "%3", "volatile"),
        ("DISPLAY", ":0", "volatile"),
        ("WINDOWID", "123", "volatile"),
        ("XDG_SESSION_ID", "4", "volatile"),
        ("GITHUB_TOKEN", "x", "secret"),
        ("OPENAI_API_KEY", "x", "secret"),
        ("DB_PASSWORD", "x", "secret"),
        ("AWS_SECRET_ACCESS_KEY", "x", "secret"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/p", "secret"),
        ("NPM_AUTH", "x", "secret"),
        ("innocent_name", GH, "secret"),  # the value gives it away
        ("DATABASE_URL", "postgres://u:pw@h/db", "secret"),
        ("SERVICE_URL", "https://bob:hunter2@example.com", "secret"),
        ("NODE_ENV", "development", "project"),
        ("PATH", "/usr/bin:/bin", "project"),
        ("VIRTUAL_ENV", "/w/.venv", "project"),
    ],
)
def test_classify(name: str, value: str, kind: str) -> None:
    assert classify(name, value) == kind


def test_classify_env_diff_drops_secret_and_volatile_values() -> None:
    env = {
        "NODE_ENV": "development",
        "HOME": "/home/u",
        "GITHUB_TOKEN": GH,
        "SSH_AUTH_SOCK": "/tmp/agent",
        "TETHER_HISTFILE": "/state/x.hist",
        "MY_CORP_THING": "abc",
    }
    base = {"HOME": "/home/u"}
    out = {v.name: v for v in classify_env(env, "pane", base, extra_secret_patterns=["CORP"])}
    assert set(out) == {"NODE_ENV", "GITHUB_TOKEN", "SSH_AUTH_SOCK", "MY_CORP_THING"}  # HOME unchanged
    assert out["NODE_ENV"].value == "development" and out["NODE_ENV"].kind == "project"
    assert out["GITHUB_TOKEN"].value is None and out["GITHUB_TOKEN"].kind == "secret"
    assert out["SSH_AUTH_SOCK"].value is None and out["SSH_AUTH_SOCK"].kind == "volatile"
    assert out["MY_CORP_THING"].kind == "secret"  # user-configured pattern
    assert all(v.source == "pane" for v in out.values())
    assert GH not in json.dumps([v.to_json() for v in out.values()])


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"git push https://{GH}@github.com/x/y", GH),
        ("export OPENAI_API_KEY=sk-proj-abcdefghijklmnop1234", "sk-proj-abcdefghijklmnop1234"),
        ("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("mysql -u root --password=hunter2", "hunter2"),
        ("password: correct horse", "correct"),
        ('DB_PASSWORD="s3cret value"', "s3cret value"),
        ("curl https://alice:pa55word@example.com/api", "pa55word"),
        ("SLACK=xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
        ("token eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0NTY3.SflKxwRJSMeKKF2QT4", "SflKxwRJSMeKKF2QT4"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "MIIEpAIBAAKCAQEA",
        ),
    ],
)
def test_redact_text_removes_values(line: str, secret: str) -> None:
    out = redact_text(line)
    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "line",
    [
        "$ pytest -q tests/test_auth.py",
        "Serving HTTP on 127.0.0.1 port 8000",
        "the auth module was refactored",
        "export TOKEN=$GITHUB_TOKEN",
        "gh auth login --with-token < file",
        "",
    ],
)
def test_redact_text_keeps_ordinary_lines(line: str) -> None:
    assert redact_text(line) == line


def test_parse_environ_and_show_environment() -> None:
    assert parse_environ(b"A=1\0B=x=y\0junk\0\0") == {"A": "1", "B": "x=y"}
    env, removed = parse_show_environment("FOO=bar\n-DISPLAY\nEMPTY=\n")
    assert env == {"FOO": "bar", "EMPTY": ""}
    assert removed == {"DISPLAY"}


@pytest.mark.parametrize(
    ("argv", "ok"),
    [
        (["npm", "run", "dev"], True),
        (["node", "/usr/lib/node_modules/npm/bin/npm-cli.js", "run", "dev"], False),
        (["node", "/usr/bin/npm", "run", "dev"], True),  # interpreter stripped
        (["/usr/bin/python3.11", "-m", "http.server", "8000"], True),
        (["python3", "-m", "http.server", "--bind", "127.0.0.1", "9"], True),
        (["python3", "-c", "import os; os.system('rm -rf ~')"], False),
        (["vite", "--port", "3000"], True),
        (["jest", "--watchAll"], True),
        (["cargo", "watch", "-x", "test"], True),
        (["cargo", "build"], False),
        (["rm", "-rf", "/"], False),
        (["bash", "-c", "npm run dev; rm -rf /"], False),
        ([], False),
    ],
)
def test_allowlist_matching(argv: list[str], ok: bool) -> None:
    assert matches_allowlist(argv, DEFAULT_ALLOWLIST) is ok


def test_config_from_wire_ignores_untrusted_allowlist() -> None:
    cfg, warnings = TmuxConfig.from_wire({"allowlist": ["rm -rf *"], "scrollbackLines": 500})
    assert cfg.allowlist == list(DEFAULT_ALLOWLIST)
    assert cfg.scrollback_lines == 500
    assert any("allowlist" in w for w in warnings)
    cfg, warnings = TmuxConfig.from_wire({"allowlist": ["make dev"]}, trusted=True)
    assert cfg.allowlist == ["make dev"] and not warnings


def test_config_from_wire_bad_values_fall_back() -> None:
    cfg, warnings = TmuxConfig.from_wire(
        {
            "enabled": "yes",
            "scrollbackLines": -5,
            "historyLines": True,
            "windows": [{"name": "agent"}, {"command": "x"}],
            "envSecretPatterns": ["("],
            "socketPath": None,
        }
    )
    assert cfg == TmuxConfig()
    assert len(warnings) == 5
    cfg, warnings = TmuxConfig.from_wire({"windows": [{"name": "a", "command": "npm run dev", "cwd": "web"}]})
    assert cfg.windows[0].command == "npm run dev" and not warnings
    assert cfg.windows[0].run is False  # from editor/workspace settings: typed, never run
    cfg, _ = TmuxConfig.from_wire({"windows": [{"name": "a", "command": "npm run dev"}]}, trusted=True)
    assert cfg.windows[0].run is True
    assert TmuxConfig.from_wire([1])[1]


def test_tmux_argument_escaping_and_packing() -> None:
    assert chain_arg("ls;") == "ls\\;"
    assert chain_arg("a\\;") == "a\\\\;"
    assert chain_arg("plain") == "plain"
    cmds = [["send-keys", "-l", "x" * 100] for _ in range(400)]
    chains = pack(cmds, budget=2000)
    assert len(chains) > 1
    assert all(sum(len(a) + 1 for a in c) < 2100 for c in chains)
    # every command survives, separated by ";" inside each chain
    assert sum(c.count("send-keys") for c in chains) == 400
    assert all(c[0] == "send-keys" and c[-1] != ";" for c in chains)


def test_layout_checksum_matches_tmux() -> None:
    # taken from a real tmux 3.3a session
    assert layout_checksum("200x50,0,0[200x25,0,0,0,200x24,0,26{100x24,0,26,1,99x24,101,26,2}]") == "81f0"
    assert layout_checksum("200x50,0,0,1") == "ac9e"


def test_snapshot_from_bytes_rejects_garbage_with_clear_errors() -> None:
    with pytest.raises(SnapshotFormatError, match="not valid JSON"):
        TmuxSnapshot.from_bytes(b"\xff\xfe")
    with pytest.raises(SnapshotFormatError, match="schema"):
        TmuxSnapshot.from_bytes(b'{"schema": 0}')
    with pytest.raises(SnapshotFormatError, match="must be an object"):
        TmuxSnapshot.from_bytes(b"null")


def test_split_sections_handles_empty_and_last_sections() -> None:
    from tether.tmux.panes import split_sections

    out = (
        "@@tether-n1-p0@@\nline a\n\nline b\n@@tether-n1-p1@@\n@@tether-n1-genv@@\nA=1\n@@tether-n1-senv@@\n"
    )
    got = split_sections(out, "n1")
    assert got == {"p0": ["line a", "", "line b"], "p1": [], "genv": ["A=1"], "senv": []}
    # a pane whose text looks like a marker of another run is just text
    assert split_sections("@@tether-n1-p0@@\n@@tether-zz-p1@@\n", "n1") == {"p0": ["@@tether-zz-p1@@"]}


def test_allowlist_never_matches_a_program_the_repository_ships(workspace: Path, tmp_path: Path) -> None:
    # The repository ships tools/vite and node_modules/.bin/vite; the user has a real vite
    # installed outside it. Only the real one may be re-run without Enter (issue 20).
    script = "#!/bin/sh\nexec sleep 600\n"
    for rel in ("tools/vite", "node_modules/.bin/vite"):
        p = workspace / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(script)
        p.chmod(0o755)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vite").write_text(script)
    (bindir / "vite").chmod(0o755)
    (bindir / "ln-vite").symlink_to(workspace / "tools" / "vite")  # a link into the workspace
    cwd = str(workspace)
    outside_path = str(bindir)
    repo_path = f"{workspace / 'node_modules' / '.bin'}:{bindir}"

    def ok(argv: list[str], patterns: Sequence[str] = DEFAULT_ALLOWLIST, path: str = outside_path) -> bool:
        return matches_allowlist(argv, patterns, root=workspace, cwd=cwd, search_path=path)

    assert ok(["vite", "--port", "3000"])  # found on PATH outside the workspace
    assert not ok(["./tools/vite"])
    assert not ok(["/bin/sh", "./tools/vite"])  # a shebang script: the kernel's argv
    assert not ok(["sh", "tools/vite", "--port", "1"])
    assert not ok([str(workspace / "tools" / "vite")])
    assert not ok(["vite"], path=repo_path)  # PATH leads into the workspace first
    assert not ok(["ln-vite"], ["ln-vite"])  # resolved through the symlink: inside
    assert not ok(["nonexistent-tool"], ["nonexistent-tool"])  # cannot be checked: typed
    assert ok(["sleep", "601"], ["sleep 6*"], path="/usr/bin:/bin")
    # An explicit path in the user's own config names that file, wherever it is.
    assert ok(["./tools/vite", "--watch"], [f"{workspace}/tools/vite --watch"])
    assert not ok(["./tools/vite", "--watch"], [f"{bindir}/vite --watch"])
