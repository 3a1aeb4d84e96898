# Tether shell hook (zsh): load the user's .zshenv from the real ZDOTDIR.
if [ -n "$TETHER_ECHO_OFF" ]; then stty echo 2>/dev/null; unset TETHER_ECHO_OFF; fi
[ -r "${TETHER_ORIG_ZDOTDIR:-$HOME}/.zshenv" ] && . "${TETHER_ORIG_ZDOTDIR:-$HOME}/.zshenv"
