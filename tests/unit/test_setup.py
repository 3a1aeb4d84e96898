"""`tether setup AGENT`: merge, idempotence, remove, dry-run, malformed files, byte preservation."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from tether.cli import main
from tether.setup import agents, blocks, jsonedit, tomledit
from tether.setup.agents import Options, SetupError, plan


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    (d / ".git").mkdir()  # a workspace root marker for find_workspace (aider's tests init a repo)
    home = tmp_path / "home"
    home.mkdir()
    for var in ("HOME",):
        monkeypatch.setenv(var, str(home))
    for var in ("CLAUDE_CONFIG_DIR", "CODEX_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(d)
    return d


def setup(*args: str) -> int:
    return main(["setup", *args, "--command", "tether"])


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.parts
    }


USER_SETTINGS = """{
    // the user's own comment survives (Gemini and opencode read JSONC)
    "model":   "opus",
    "permissions": {"allow": ["Bash(ls:*)"]},
    "hooks": {
        "Stop": [ {"hooks": [{"type": "command", "command": "notify-send done"}]} ]
    }
}
"""


# --- the JSON editor ---------------------------------------------------------------------------


def test_json_patch_keeps_other_bytes_and_round_trips() -> None:
    value = jsonedit.loads(USER_SETTINGS, comments=True)
    merged = agents.merge_hooks(value, agents.claude_hooks("tether"))
    out = jsonedit.patch(USER_SETTINGS, merged, comments=True)
    assert jsonedit.loads(out, comments=True) == merged
    for line in (
        '    "model":   "opus",',
        '    "permissions": {"allow": ["Bash(ls:*)"]},',
        "    // the user",
    ):
        assert any(ln.startswith(line) for ln in out.splitlines()), line
    # The user's Stop hook is kept, ours follows it in the same event.
    assert [g["hooks"][0]["command"] for g in merged["hooks"]["Stop"]] == [
        "notify-send done",
        "tether hook claude-code",
    ]
    # Taking ours out gives back the original file, byte for byte.
    back = jsonedit.patch(out, agents.merge_hooks(merged, None), comments=True)
    assert back == USER_SETTINGS


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("{}", {"a": {"b": [1, "x"]}}),
        ('{"a": 1}', {"a": 1, "b": "s"}),
        ('{"a": "x", "b": 2}', {"b": 2}),
        ('{"a": "x", "b": 2}', {"a": "x"}),
        ("[1, 2, 3]", [0, 1, 2, 3]),
        ("[1, 2, 3]", [1, 3]),
        ('{\r\n  "a": [\r\n    1\r\n  ]\r\n}\r\n', {"a": [1, 2], "b": None}),
        ('{"dup": 1, "dup": 2}', {"dup": 3}),
        ('{"s": "with \\"quotes\\" and \\u00e9"}', {"s": 'with "quotes" and é', "t": True}),
    ],
)
def test_json_patch_reaches_the_target(text: str, target: object) -> None:
    out = jsonedit.patch(text, target)
    assert json.loads(out) == target
    if "\r\n" in text:
        assert "\n" not in out.replace("\r\n", "")  # the file's line endings are kept


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": 1,}', "line 1, column 9"),
        ('{\n  "a": tru\n}', "line 2"),
        ('{"a": "x', "line 1"),
        ("// c\n{}", "line 1"),
    ],
)
def test_json_syntax_errors_name_the_position(text: str, where: str) -> None:
    with pytest.raises(jsonedit.JsonSyntaxError, match=where):
        jsonedit.parse(text)


# --- setup per agent ---------------------------------------------------------------------------


def test_claude_setup_is_idempotent_and_removable(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (proj / ".claude").mkdir()
    strict = (
        '{\n  "model": "opus",\n  "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "x"}]}]}\n}\n'
    )
    (proj / ".claude" / "settings.json").write_text(strict)
    (proj / "CLAUDE.md").write_text("# My project\n\nRules.\n")
    before = tree(proj)
    assert setup("claude") == 0
    settings = json.loads((proj / ".claude" / "settings.json").read_text())
    assert settings["model"] == "opus"
    assert settings["hooks"]["PostToolUse"] == [
        {"matcher": "*", "hooks": [{"type": "command", "command": "tether hook claude-code"}]}
    ]
    assert "PostToolUseFailure" in settings["hooks"] and "MultiEdit" not in json.dumps(settings)
    assert (proj / "CLAUDE.md").read_text().startswith("# My project\n\nRules.\n\n<!-- tether:begin")
    after = tree(proj)
    capsys.readouterr()
    assert setup("claude") == 0
    assert "nothing to change" in capsys.readouterr().out
    assert tree(proj) == after
    assert setup("claude", "--remove") == 0
    assert tree(proj) == before


def test_remove_without_tether_entries_changes_nothing(proj: Path) -> None:
    (proj / ".claude").mkdir()
    (proj / ".claude" / "settings.json").write_text('{"hooks": {}, "enabledMcpjsonServers": []}\n')
    (proj / ".mcp.json").write_text('{"mcpServers": {}}')
    before = tree(proj)
    assert setup("claude", "--remove") == 0
    assert setup("claude", "--mcp", "--remove") == 0
    assert tree(proj) == before


def test_symlinked_config_is_written_through(proj: Path, tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles" / "settings.json"
    dotfiles.parent.mkdir()
    dotfiles.write_text('{"model": "opus"}\n')
    (proj / ".claude").mkdir()
    (proj / ".claude" / "settings.json").symlink_to(dotfiles)
    assert setup("claude") == 0
    assert (proj / ".claude" / "settings.json").is_symlink()
    assert "tether hook claude-code" in dotfiles.read_text()
    assert setup("claude", "--remove") == 0
    assert dotfiles.read_text() == '{"model": "opus"}\n'


def test_unwritable_config_dir_is_reported(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (proj / ".claude").write_text("a file where the directory should be\n")
    assert setup("claude") == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "settings.json" in err
    assert (proj / ".claude").read_text() == "a file where the directory should be\n"


def test_dry_run_prints_the_diff_and_writes_nothing(proj: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (proj / "opencode.json").write_text('{"theme": "dark"}\n')
    before = tree(proj)
    assert setup("opencode", "--mcp", "--dry-run") == 0
    out = capsys.readouterr().out
    assert (
        "--- " in out and "+++ " in out and '"tether": {"type": "local", "command": ["tether", "mcp"]' in out
    )
    assert "would update" in out
    assert tree(proj) == before


@pytest.mark.parametrize(
    ("agent", "path", "text"),
    [
        ("claude", ".claude/settings.json", '{"hooks": {"Stop": [}'),
        ("claude", ".claude/settings.json", '["not", "an object"]'),
        ("claude", ".claude/settings.json", '{"hooks": "a string"}'),
        ("gemini", ".gemini/settings.json", "{ /* unterminated"),
        ("codex", ".codex/hooks.json", "\xff not utf-8"),
        ("claude", "CLAUDE.md", "x\n<!-- tether:begin (old) -->\nno end marker\n"),
    ],
)
def test_malformed_config_is_reported_and_left_untouched(
    proj: Path, capsys: pytest.CaptureFixture[str], agent: str, path: str, text: str
) -> None:
    f = proj / path
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    before = tree(proj)
    assert setup(agent) == 1
    err = capsys.readouterr().err
    assert str(f) in err and "left untouched" in err
    assert tree(proj) == before  # nothing written, not even the agent's other files


def test_codex_toml_keeps_the_users_bytes(proj: Path) -> None:
    conf = proj / ".codex" / "config.toml"
    conf.parent.mkdir()
    original = (
        '# my codex config\nmodel = "o3"   # aligned comment\n\n[mcp_servers.other]\ncommand = "x"\n'
        'args = [ "a",\n  "b" ]\n\n[profiles.fast]\nmodel = "o4-mini"\n'
    )
    conf.write_text(original)
    assert setup("codex", "--mcp") == 0
    text = conf.read_text()
    assert text.startswith(original)
    doc = tomllib.loads(text)
    assert doc["mcp_servers"]["tether"] == {"command": "tether", "args": ["mcp"]}
    assert doc["mcp_servers"]["other"] == {"command": "x", "args": ["a", "b"]}
    assert setup("codex", "--mcp") == 0 and conf.read_text() == text
    assert setup("codex", "--mcp", "--remove") == 0
    assert conf.read_text() == original


def test_codex_toml_replaces_an_old_tether_table_in_place() -> None:
    text = '[mcp_servers.tether]\ncommand = "old"\n\n[mcp_servers.tether.env]\nA = "1"\n\n[x]\ny = 1\n'
    out = tomledit.set_table(text, ("mcp_servers", "tether"), {"command": "tether", "args": ["mcp"]})
    assert out == '[mcp_servers.tether]\ncommand = "tether"\nargs = ["mcp"]\n\n[x]\ny = 1\n'


@pytest.mark.parametrize(
    "text",
    ['mcp_servers = { tether = { command = "x" } }\n', '[mcp_servers]\ntether.command = "x"\n', "a = = 1\n"],
)
def test_codex_toml_forms_it_cannot_edit_are_refused(
    proj: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    conf = proj / ".codex" / "config.toml"
    conf.parent.mkdir()
    conf.write_text(text)
    assert setup("codex", "--mcp") == 1
    assert "left untouched" in capsys.readouterr().err
    assert conf.read_text() == text


def test_every_agent_sets_up_and_removes_cleanly(proj: Path) -> None:
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    before = tree(proj)
    for agent in agents.AGENTS:
        assert setup(agent) == 0, agent
        if agent != "aider":
            assert setup(agent, "--mcp") == 0, agent
    gemini = json.loads((proj / ".gemini" / "settings.json").read_text())
    assert gemini["mcpServers"]["tether"] == {"command": "tether", "args": ["mcp"]}
    assert gemini["hooks"]["AfterTool"][0]["matcher"] == "*"
    assert gemini["hooks"]["SessionStart"][0]["hooks"][0]["timeout"] == 10000
    codex = json.loads((proj / ".codex" / "hooks.json").read_text())
    assert set(codex["hooks"]) == {"SessionStart", "PostToolUse", "Stop"}
    assert json.loads((proj / ".mcp.json").read_text())["mcpServers"]["tether"]["type"] == "stdio"
    assert json.loads((proj / "opencode.json").read_text())["mcp"]["tether"]["command"] == ["tether", "mcp"]
    assert 'hook", "opencode"' in (proj / ".opencode" / "plugin" / "tether.js").read_text()
    hook = proj / ".git" / "hooks" / "post-commit"
    assert hook.read_text().startswith("#!/bin/sh\n") and os.access(hook, os.X_OK)
    assert (proj / "AGENTS.md").read_text().count("tether:begin") == 1  # codex, opencode, aider share it
    for agent in agents.AGENTS:
        assert setup(agent, "--remove") == 0
        if agent != "aider":
            assert setup(agent, "--mcp", "--remove") == 0
    assert tree(proj) == before
    assert not hook.exists()


def test_user_scope_paths_follow_the_agents_env(proj: Path, tmp_path: Path) -> None:
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "cc"), "CODEX_HOME": str(tmp_path / "cx")}
    opts = Options(root=proj, user=True, env=env, home=tmp_path / "home")
    assert {c.path for c in plan("claude", opts)} == {
        tmp_path / "cc" / "settings.json",
        tmp_path / "cc" / "CLAUDE.md",
    }
    mcp = Options(root=proj, user=True, mcp=True, env=env, home=tmp_path / "home")
    assert [c.path for c in plan("claude", mcp)] == [tmp_path / "cc" / ".claude.json"]
    assert [c.path for c in plan("codex", mcp)] == [tmp_path / "cx" / "config.toml"]
    assert [c.path for c in plan("gemini", mcp)] == [tmp_path / "home" / ".gemini" / "settings.json"]
    plain = Options(root=proj, user=True, mcp=True, env={}, home=tmp_path / "home")
    assert [c.path for c in plan("claude", plain)] == [tmp_path / "home" / ".claude.json"]
    with pytest.raises(SetupError, match="each project"):
        plan("aider", Options(root=proj, user=True, env={}))


def test_opencode_plugin_not_written_by_tether_is_refused(
    proj: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = proj / ".opencode" / "plugin" / "tether.js"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("// my own plugin\n")
    assert setup("opencode") == 1
    assert "not written by Tether" in capsys.readouterr().err
    assert plugin.read_text() == "// my own plugin\n"


def test_aider_keeps_the_users_hook_and_read_key(proj: Path) -> None:
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    hook = proj / ".git" / "hooks" / "post-commit"
    hook.write_text("#!/bin/bash\nmake docs\n")
    hook.chmod(0o750)
    (proj / ".aider.conf.yml").write_text("read: CONVENTIONS.md\nmodel: sonnet\n")
    assert setup("aider") == 0
    assert hook.read_text().startswith("#!/bin/bash\nmake docs\n\n# tether:begin")
    assert hook.stat().st_mode & 0o777 == 0o751  # the user's mode kept, made executable
    assert (
        proj / ".aider.conf.yml"
    ).read_text() == "read: CONVENTIONS.md\nmodel: sonnet\n"  # their read: wins
    assert setup("aider", "--remove") == 0
    assert hook.read_text() == "#!/bin/bash\nmake docs\n"


def test_text_block_round_trip() -> None:
    text = "# Notes\n\nmine\n"
    added = blocks.set_block(text, "## Tether\n- a", "<!-- %s -->")
    assert blocks.set_block(added, "## Tether\n- a", "<!-- %s -->") == added
    assert blocks.set_block(added, None, "<!-- %s -->") == text
    changed = blocks.set_block(added, "## Tether\n- b", "<!-- %s -->")
    assert changed.startswith(text) and "- b" in changed and "- a" not in changed


def test_docs_show_what_setup_writes() -> None:
    """docs/agents.md's settings blocks are exactly what `tether setup` writes."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "agents.md").read_text()

    def snippet(name: str) -> str:
        m = re.search(rf"<!-- snippet: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", doc, re.DOTALL)
        assert m, name
        return m.group(1)

    assert json.loads(snippet("claude-code-settings")) == {"hooks": agents.claude_hooks("tether")}
    assert json.loads(snippet("codex-hooks")) == {"hooks": agents.codex_hooks("tether")}
    assert json.loads(snippet("gemini-settings")) == {"hooks": agents.gemini_hooks("tether")}
    assert snippet("agent-instructions") == agents.INSTRUCTIONS
    assert snippet("git-post-commit") == "#!/bin/sh\n" + agents.POST_COMMIT


def test_docs_show_the_mcp_configs_setup_writes(tmp_path: Path) -> None:
    """docs/agents.md's MCP blocks are, byte for byte, what `tether setup AGENT --mcp` writes in a
    new project."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "agents.md").read_text()

    def snippet(name: str) -> str:
        m = re.search(rf"<!-- snippet: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", doc, re.DOTALL)
        assert m, name
        return m.group(1)

    root = tmp_path / "project"
    root.mkdir()
    written: dict[str, str] = {}
    for agent in ("claude", "codex", "gemini", "opencode"):
        opts = agents.Options(root=root, mcp=True, command="tether", home=tmp_path / "home", env={})
        for change in agents.plan(agent, opts):
            assert change.new is not None
            written[str(change.path.relative_to(root))] = change.new
    assert written == {
        ".mcp.json": snippet("mcp-claude"),
        ".claude/settings.local.json": snippet("mcp-claude-approval"),
        ".codex/config.toml": snippet("mcp-codex"),
        ".gemini/settings.json": snippet("mcp-gemini"),
        "opencode.json": snippet("mcp-opencode"),
    }
