# Tether shell hook (zsh): per-pane history file, appended as each command is accepted.
ZDOTDIR="${TETHER_ORIG_ZDOTDIR:-$HOME}"
if [ "${TETHER_SHELL_RC:-1}" = 1 ] && [ -r "$ZDOTDIR/.zshrc" ]; then . "$ZDOTDIR/.zshrc"; fi
if [ -n "$TETHER_PANE_ID" ] && [ -n "$TETHER_HIST_DIR" ]; then
  TETHER_HISTFILE="$TETHER_HIST_DIR/$TETHER_PANE_ID.hist"
  HISTFILE="$TETHER_HISTFILE"
  HISTSIZE="${HISTSIZE:-5000}"
  # Tether's own appender writes the file; zsh must not rewrite it from memory (in clear) on exit.
  SAVEHIST=0
  fc -R "$HISTFILE" 2>/dev/null
  __tether_addhistory() { print -r -- "${1%%$'\n'}" >> "$TETHER_HISTFILE"; return 0; }
  autoload -Uz add-zsh-hook 2>/dev/null && add-zsh-hook zshaddhistory __tether_addhistory
  # After a `cd`, the session is snapshotted (tether.tmux.watch) in the background.
  __tether_chpwd() {
    local w="${TETHER_HIST_DIR%/hist}/watch.sh"
    [ -f "$w" ] && ( sh "$w" cd >/dev/null 2>&1 & )
    return 0
  }
  add-zsh-hook chpwd __tether_chpwd 2>/dev/null
  unsetopt SHARE_HISTORY INC_APPEND_HISTORY 2>/dev/null
fi
