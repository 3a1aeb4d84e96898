# Tether shell hook (zsh login shells): the user's .zprofile from the real ZDOTDIR, then the
# recreated pane's own variables again. zsh then reads Tether's .zshrc from this directory.
if [ "${TETHER_SHELL_RC:-1}" = 1 ]; then
  ZDOTDIR="${TETHER_ORIG_ZDOTDIR:-$HOME}"
  [ -r "$ZDOTDIR/.zprofile" ] && . "$ZDOTDIR/.zprofile"
  ZDOTDIR="$TETHER_HOOKS/zsh"
fi
for __tether_k __tether_v in "${(@kv)__tether_keep}"; do export "$__tether_k=$__tether_v"; done
unset __tether_keep __tether_k __tether_v
