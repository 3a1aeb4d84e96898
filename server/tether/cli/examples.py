"""Examples shown at the end of each command's ``--help`` (tests/unit/test_cli_conventions.py
checks every command has some, and that each example parses)."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "checkpoint": (
        ("tether checkpoint -m 'before the refactor'", "record the whole workspace now"),
        ("tether checkpoint src/app.py", "only look at one file (fast)"),
    ),
    "log": (
        ("tether log", "the 20 newest checkpoints"),
        ("tether log -n 5 --json", "the 5 newest, for a script"),
        ("tether log --all --no-pager", "every checkpoint, not through the pager"),
    ),
    "diff": (
        ("tether diff 3", "checkpoint 3 against the live workspace"),
        ("tether diff 3 5 -- src/", "checkpoint 3 against 5, only under src/"),
        ("tether diff --stat 3", "only the changed paths"),
    ),
    "restore": (
        ("tether restore 3 src/app.py", "one file back to checkpoint 3 (undoable)"),
        ("tether restore 3 --dry-run", "what restoring everything would change"),
    ),
    "status": (
        ("tether status", "last checkpoint, what changed since, skipped files"),
        ("tether status --json", "the same for a script"),
    ),
    "gc": (
        ("tether gc --keep 200", "keep the newest 200 checkpoints"),
        ("tether gc --max-age-days 30 --max-size 2G", "drop old ones until the store fits"),
    ),
    "list": (
        ("tether list", "every workspace Tether knows, newest activity first"),
        ("tether list --json", "the same for a script"),
    ),
    "start": (
        ("tether start", "create (or find) the session and print its name"),
        ("tether start --attach", "and attach to it"),
    ),
    "attach": (
        ("tether attach", "attach, recreating the session after a reboot"),
        ("tether attach --print", "print the tmux command instead (for an editor terminal)"),
        ("tether attach --no-run", "recreate, typing recorded commands without running them"),
    ),
    "doctor": (
        ("tether doctor", "tmux, state dir, store, Python and pygls"),
        ("tether doctor --json", "the same for a script"),
    ),
    "step": (
        ("tether step --done 'wrote tests' --next 'fix lint'", "record a step and checkpoint"),
        ("tether step -d 'split auth.py' -f auth.py -f session.py -n 'update imports' 'run tests'", ""),
        ("tether step --done 'all green' --no-next", "done: clear the next steps"),
    ),
    "next": (
        ("tether next", "the next steps, numbered"),
        ("tether next --json", "the same for an agent"),
    ),
    "steps": (
        ("tether steps -n 5", "the 5 latest steps"),
        ("tether steps -n 0 --json", "all of them, for a script"),
    ),
    "task": (
        ("tether task", "print the current task"),
        ("tether task 'refactor user authentication' -e staging", "set it (and the environment)"),
        ("tether task --clear", "clear it"),
    ),
    "run": (
        ("tether run -- pytest -q", "run the tests and record the result"),
        ("tether run --json -- make build", "the run record as JSON (CMD's output still shows)"),
    ),
    "resume": (
        ("tether resume", "bring back tmux and print the hand-off"),
        ("tether resume --print", "only the hand-off, for an agent's context"),
        ("tether resume --from origin/alice --apply", "take over another machine's session"),
    ),
    "hook": (
        ("tether hook claude-code < event.json", "what the agent's hook runs (`tether setup` writes it)"),
    ),
    "lsp": (
        ("tether lsp", "the language server on stdio (editors start it)"),
        ("tether lsp --log-file - --log-level DEBUG", "logs on stderr, for debugging"),
    ),
    "mcp": (
        ("tether mcp", "the MCP server on stdio (agents start it)"),
        ("tether mcp --workspace ~/src/app --log-file -", "serve one workspace, logs on stderr"),
    ),
    "setup": (
        ("tether setup claude", "Claude Code's hooks and instructions for this project"),
        ("tether setup codex --mcp --user", "Tether as MCP tools for every Codex project"),
        ("tether setup gemini --dry-run", "show the change, write nothing"),
    ),
    "push": (
        ("tether push", "send this workspace's checkpoints to origin"),
        ("tether push --as laptop --include-terminal", "under a chosen name, with scrollback"),
    ),
    "pull": (
        ("tether pull", "import what other machines pushed to origin"),
        ("tether pull upstream --json", "from another remote, for a script"),
    ),
    "handoff": (
        ("tether handoff origin", "preview the newest session pushed to origin"),
        ("tether handoff origin/alice --apply", "take over alice's session (undoable)"),
    ),
    "completion": (
        ("tether completion bash > ~/.local/share/bash-completion/completions/tether", ""),
        ("tether completion zsh > ~/.zfunc/_tether", "then `fpath+=~/.zfunc` before compinit"),
        ("tether completion fish > ~/.config/fish/completions/tether.fish", ""),
    ),
}


def epilog(command: str) -> str | None:
    rows = EXAMPLES.get(command)
    if not rows:
        return None
    lines = ["examples:"]
    for cmd, what in rows:
        lines.append(f"  {cmd}")
        if what:
            lines.append(f"      {what}")
    lines.append("\nglobal options (-C DIR, --state-dir DIR, --json, -v) go before or after the command.")
    return "\n".join(lines)
