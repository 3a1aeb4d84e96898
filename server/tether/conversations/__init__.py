"""The coding agents' own conversations (Claude Code, Codex, Gemini CLI, opencode, aider, Copilot):

- :mod:`~tether.conversations.agents`: which agent an argv runs, id validation, resume argv;
- :mod:`~tether.conversations.probe`: the conversation an agent in a pane is on, from its records;
- :mod:`~tether.conversations.record`: the durable per-workspace record of told conversation ids.
"""
