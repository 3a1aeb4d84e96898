# shellcheck shell=sh
# Tether pane start: replay this pane's saved scrollback, type its command, become the shell.
# $1/$2 = byte offset/length of this pane's scrollback in $TETHER_REPLAY (one file per restore),
# $3/$4 = offset/length of the command to type, $5 = 1 to press Enter. Everything else comes from
# the session environment, which keeps each pane's part of the one chained tmux command short.
# tmux gives a new pane the PATH of the client that created it, over `-e PATH=…` and the session's:
# a recreated pane's own PATH comes through TETHER_PANE_PATH / TETHER_SESSION_PATH instead.
if [ -n "${TETHER_PANE_PATH-}" ]; then PATH="$TETHER_PANE_PATH"; export PATH
elif [ -n "${TETHER_SESSION_PATH-}" ]; then PATH="$TETHER_SESSION_PATH"; export PATH; fi
unset TETHER_PANE_PATH TETHER_SESSION_PATH
if [ "$2" -gt 0 ] 2>/dev/null && [ -f "$TETHER_REPLAY" ]; then
  tail -c "+$(($1 + 1))" "$TETHER_REPLAY" | head -c "$2"
fi
if [ "$4" -gt 0 ] 2>/dev/null && [ -f "$TETHER_REPLAY" ]; then
  # Typed-ahead keys would be echoed by the terminal before the shell's line editor shows them;
  # the hook of a bash/zsh pane turns echo back on first thing.
  case "$TETHER_SHELL_KIND" in
    bash|zsh) stty -echo 2>/dev/null && TETHER_ECHO_OFF=1 && export TETHER_ECHO_OFF ;;
  esac
  keys="$(tail -c "+$(($3 + 1))" "$TETHER_REPLAY" | head -c "$4")"
  "$TETHER_TMUX" send-keys -t "$TMUX_PANE" -l -- "$keys"
  if [ "$5" = 1 ]; then "$TETHER_TMUX" send-keys -t "$TMUX_PANE" Enter; fi
fi
# Login shells by default, as tmux's own panes are: PATH from the login files (Homebrew, pyenv,
# nvm) is there. bash reads Tether's hook as its rc file, which reads the login files itself;
# zsh is a real login shell whose ZDOTDIR points at Tether's files first.
case "$TETHER_SHELL_KIND" in
  bash) exec "$TETHER_SHELL" --noprofile --rcfile "$TETHER_HOOKS/hook.bash" -i ;;
  zsh)
    TETHER_ORIG_ZDOTDIR="${ZDOTDIR:-$HOME}"; ZDOTDIR="$TETHER_HOOKS/zsh"
    export TETHER_ORIG_ZDOTDIR ZDOTDIR
    if [ "$TETHER_SHELL_LOGIN" = 1 ]; then exec "$TETHER_SHELL" -l -i; fi
    exec "$TETHER_SHELL" -i ;;
  *)
    if [ "$TETHER_SHELL_LOGIN" = 1 ]; then exec "$TETHER_SHELL" -l; fi
    exec "${TETHER_SHELL:-/bin/sh}" ;;
esac
