#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs everything it needs, then runs every tier
# (unit, tmux, e2e incl. real Neovim and real VS Code via code-server + Chromium).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -f vscode-client/test-harness/install-tools.sh ] && [ "${TETHER_SKIP_VSCODE:-0}" != 1 ]; then
  bash vscode-client/test-harness/install-tools.sh
fi
# The agents' real CLIs (Claude Code, Codex, Gemini CLI, opencode, Copilot CLI) for the setup/hook tests.
if [ "${TETHER_SKIP_AGENTS:-0}" != 1 ]; then
  bash scripts/install-agents.sh
fi
.venv/bin/ruff check server tests bench
.venv/bin/mypy
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "pytest: no tests collected"; exit 1; fi
exit "$rc"
