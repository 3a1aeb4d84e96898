#!/usr/bin/env bash
# Installs the agents' real CLIs, pinned, for the tests that drive them offline (never logged in,
# never prompted): Claude Code, Codex CLI, Gemini CLI, opencode, GitHub Copilot CLI.
# Into $TETHER_TOOLS_DIR/agents (default <repo>/.tools/agents, gitignored); idempotent: skipped
# when the version marker matches. npm state (cache, tmp, HOME) stays inside the tools dir.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${TETHER_TOOLS_DIR:-$ROOT/.tools}
DIR="$TOOLS/agents"
PACKAGES=(
  "@anthropic-ai/claude-code@2.1.328"
  "@openai/codex@0.169.0"
  "@google/gemini-cli@0.61.0"
  "opencode-ai@1.18.33"
  "@github/copilot@1.0.102"
)
marker="$DIR/.installed-$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"

log() { printf '[install-agents] %s\n' "$*" >&2; }
if [ -f "$marker" ] && [ -x "$DIR/node_modules/.bin/claude" ]; then
  log "agents present (${PACKAGES[*]})"
  exit 0
fi
command -v npm >/dev/null || { log "npm not found: the agent CLI tests will be skipped"; exit 0; }

export npm_config_cache="$TOOLS/npm-cache" npm_config_audit=false npm_config_fund=false \
  npm_config_update_notifier=false
sandbox="$TOOLS/tmp"
mkdir -p "$sandbox/home" "$DIR"
rm -f "$DIR"/.installed-*
[ -f "$DIR/package.json" ] || echo '{"private":true}' > "$DIR/package.json"
log "installing ${PACKAGES[*]}"
# The CLIs fetch their platform binaries as optional dependencies; their install scripts
# (claude's, opencode's) pick the binary for this platform, so they are allowed here.
(
  cd "$DIR"
  HOME="$sandbox/home" TMPDIR="$sandbox" npm install --no-save --dangerously-allow-all-scripts \
    "${PACKAGES[@]}" > "$DIR/install.log" 2>&1 \
    || { tail -40 "$DIR/install.log" >&2; exit 1; }
)
for bin in claude codex gemini opencode copilot; do
  "$DIR/node_modules/.bin/$bin" --version >/dev/null 2>&1 || log "warning: $bin --version failed"
done
touch "$marker"
log "ok: $DIR/node_modules/.bin"
