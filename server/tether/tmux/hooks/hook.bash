# shellcheck shell=bash
# The user's own startup files are read by design (their paths are known only at run time).
# shellcheck disable=SC1090,SC1091
# Tether shell hook (bash), read instead of ~/.bashrc: the user's startup files, then a per-pane
# history file appended at every prompt.
# (bash itself has already read the system bashrc, e.g. /etc/bash.bashrc on Debian.)
if [ -n "$TETHER_ECHO_OFF" ]; then stty echo 2>/dev/null; unset TETHER_ECHO_OFF; fi
if [ "${TETHER_SHELL_RC:-1}" = 1 ] && [ "${TETHER_SHELL_LOGIN:-0}" = 1 ]; then
  # What a login shell reads: /etc/profile, then the first of ~/.bash_profile, ~/.bash_login,
  # ~/.profile (which, by convention, reads ~/.bashrc). The variables a recreated pane carries
  # are set again after them: /etc/profile may reset PATH.
  __tether_keep=()
  for __tether_n in ${TETHER_KEEP_ENV-} ${TETHER_KEEP_PANE_ENV-}; do
    [ -n "${!__tether_n+x}" ] && __tether_keep+=("$__tether_n=${!__tether_n}")
  done
  unset TETHER_KEEP_ENV TETHER_KEEP_PANE_ENV
  if [ -r /etc/profile ]; then . /etc/profile; fi
  __tether_f=
  for __tether_n in "$HOME/.bash_profile" "$HOME/.bash_login" "$HOME/.profile"; do
    if [ -r "$__tether_n" ]; then __tether_f=$__tether_n; break; fi
  done
  # No login file at all: ~/.bashrc, as a terminal's non-login shell would read.
  if [ -n "$__tether_f" ]; then . "$__tether_f"; elif [ -r "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
  # Each entry is NAME=value: exported as such.
  # shellcheck disable=SC2163
  for __tether_f in "${__tether_keep[@]}"; do export "$__tether_f"; done
  unset __tether_keep __tether_n __tether_f
elif [ "${TETHER_SHELL_RC:-1}" = 1 ] && [ -r "$HOME/.bashrc" ]; then
  . "$HOME/.bashrc"
fi
if [ -n "$TETHER_PANE_ID" ] && [ -n "$TETHER_HIST_DIR" ]; then
  TETHER_HISTFILE="$TETHER_HIST_DIR/$TETHER_PANE_ID.hist"
  HISTFILE="$TETHER_HISTFILE"
  HISTSIZE="${HISTSIZE:-5000}"
  HISTFILESIZE="${HISTFILESIZE:-10000}"
  # Append on exit instead of rewriting the file from memory: Tether redacts the file in place.
  shopt -s histappend
  # After a `cd`, the session is snapshotted (tether.tmux.watch) in a background subshell:
  # the prompt never waits for it.
  __tether_pwd=$PWD
  __tether_history() {
    builtin history -a
    if [ "$PWD" != "$__tether_pwd" ]; then
      __tether_pwd=$PWD
      __tether_w="${TETHER_HIST_DIR%/hist}/watch.sh"
      [ -f "$__tether_w" ] && ( sh "$__tether_w" cd >/dev/null 2>&1 & )
    fi
    return 0
  }
  case ";${PROMPT_COMMAND[*]:-};" in
    *";__tether_history;"*) ;;
    *) PROMPT_COMMAND="__tether_history${PROMPT_COMMAND:+;$PROMPT_COMMAND}" ;;
  esac
fi
