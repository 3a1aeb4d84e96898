# Tether shell hook (zsh): load the user's .zshenv from the real ZDOTDIR.
if [ -n "$TETHER_ECHO_OFF" ]; then stty echo 2>/dev/null; unset TETHER_ECHO_OFF; fi
if [[ -o login ]]; then
  # The variables a recreated pane carries, set again after the login files (.zprofile).
  typeset -gA __tether_keep
  for __tether_n in ${=TETHER_KEEP_ENV-} ${=TETHER_KEEP_PANE_ENV-}; do
    (( ${+parameters[$__tether_n]} )) && __tether_keep[$__tether_n]="${(P)__tether_n}"
  done
  unset __tether_n TETHER_KEEP_ENV TETHER_KEEP_PANE_ENV
fi
[ -r "${TETHER_ORIG_ZDOTDIR:-$HOME}/.zshenv" ] && . "${TETHER_ORIG_ZDOTDIR:-$HOME}/.zshenv"
