"""`tether setup AGENT`: write, merge and remove Tether's entries in the agents' own config files.

Each agent's plan (:mod:`tether.setup.agents`) says which file gets which entry; the editors
change only those entries and keep every other byte of the user's file: :mod:`jsonedit` for JSON
(and JSONC), :mod:`tomledit` for Codex's config.toml, :mod:`blocks` for marked text blocks
(instructions, git hooks).
"""
