# Tether shell hook (bash): per-pane history file, appended at every prompt.
# (bash itself has already read the system bashrc, e.g. /etc/bash.bashrc on Debian.)
if [ -n "$TETHER_ECHO_OFF" ]; then stty echo 2>/dev/null; unset TETHER_ECHO_OFF; fi
if [ "${TETHER_SHELL_RC:-1}" = 1 ] && [ -r "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
if [ -n "$TETHER_PANE_ID" ] && [ -n "$TETHER_HIST_DIR" ]; then
  TETHER_HISTFILE="$TETHER_HIST_DIR/$TETHER_PANE_ID.hist"
  HISTFILE="$TETHER_HISTFILE"
  HISTSIZE="${HISTSIZE:-5000}"
  HISTFILESIZE="${HISTFILESIZE:-10000}"
  # Append on exit instead of rewriting the file from memory: Tether redacts the file in place.
  shopt -s histappend
  __tether_history() { builtin history -a; }
  case ";${PROMPT_COMMAND[*]:-};" in
    *";__tether_history;"*) ;;
    *) PROMPT_COMMAND="__tether_history${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
  esac
fi
