#!/usr/bin/env bash
# Install Tether and walk through a real agent session: start it in tmux, work, checkpoint,
# lose the tmux server (as a reboot would), and resume. Everything lives in a throwaway folder
# with its own store and tmux socket, so your own tmux and state are untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
bash scripts/bootstrap.sh >/dev/null
export PATH="$REPO/.venv/bin:$PATH"

DEMO=$(mktemp -d /tmp/tether-demo-XXXXXX)
export TETHER_STATE_DIR="$DEMO/state" TETHER_TMUX_SOCKET="$DEMO/tmux.sock"
export SHELL=/bin/bash
WS="$DEMO/project"
mkdir -p "$WS" && cd "$WS"
git init -q .
cat > app.py <<'PY'
def greet(name):
    return "hello " + name
PY
cat > test_app.py <<'PY'
import unittest
from app import greet

class T(unittest.TestCase):
    def test_greet(self):
        self.assertEqual(greet("ada"), "hello ada")

unittest.main()
PY
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmx() { tmux -S "$TETHER_TMUX_SOCKET" "$@"; }
wait_for() {  # bounded wait: up to 10 s for a command to succeed
  for _ in $(seq 100); do if "$@" >/dev/null 2>&1; then return 0; fi; sleep 0.1; done; return 1
}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "tether start: a tmux session for this workspace"
tether start
SESSION=$(tether --json start | python3 -c 'import json,sys; print(json.load(sys.stdin)["session"])')
tmx new-window -t "$SESSION" -n server
tmx send-keys -t "$SESSION:server" "python3 -m http.server $PORT --bind 127.0.0.1" Enter
wait_for curl -fsS "http://127.0.0.1:$PORT/app.py"
echo "dev server answering on 127.0.0.1:$PORT"

say "the agent works: edits a file from the shell, runs the tests, records a step"
cat >> app.py <<'PY'

def shout(name):
    return greet(name).upper()
PY
tether run -- python3 test_app.py
tether step --task "add a shout() helper" --done "wrote shout()" \
  --next "test shout()" "update the README" --file app.py
tether log

say "disaster: the tmux server dies (a reboot, or kill -9)"
tmx kill-server
wait_for sh -c "! curl -fsS http://127.0.0.1:$PORT/ >/dev/null"
echo "dev server gone"

say "tether resume: recreate the session, re-run allowlisted commands, print the hand-off"
tether resume
wait_for curl -fsS "http://127.0.0.1:$PORT/app.py"
echo "dev server is back on 127.0.0.1:$PORT (python -m http.server is on the default allowlist)"

say "what an agent reads when it starts again"
tether resume --print

say "done"
cat <<MSG
Workspace: $WS
Look around:   cd $WS && TETHER_STATE_DIR=$TETHER_STATE_DIR TETHER_TMUX_SOCKET=$TETHER_TMUX_SOCKET $REPO/.venv/bin/tether attach
Clean up:      tmux -S $TETHER_TMUX_SOCKET kill-server; rm -rf $DEMO
MSG
