"""The agent's side: task state, steps and next steps (``.agent-session.json`` and the store),
recorded runs, provenance of shipped state, the hand-off text and ``tether status``."""
