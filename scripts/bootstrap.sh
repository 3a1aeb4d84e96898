#!/usr/bin/env bash
# Install what Tether needs on a fresh Debian/Ubuntu machine: tmux (apt), and a venv in .venv
# with Tether and its dev tools. Idempotent; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_install() {
  # Only touch apt when something is missing; `apt-get update` once.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# zsh: the tests check panes started with zsh (login files, hook); fish: `tether completion fish`;
# shellcheck: the shell hooks Tether installs in its panes are checked with it; procps: `ps`, which
# process facts use where /proc is off (tests/tmux/test_no_procfs.py).
apt_install tmux git zsh fish shellcheck procps
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
extras=${TETHER_EXTRAS:-dev}
echo "bootstrap: pip install -e .[$extras]"
.venv/bin/python -m pip install -q -e ".[$extras]"
echo "bootstrap: ok ($(.venv/bin/tether --version), $(tmux -V))"
