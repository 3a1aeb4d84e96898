"""Hand a session to another machine through the repository's git remote.

- :mod:`tether.remote.gitrepo`: the private side repository and the git plumbing calls.
- :mod:`tether.remote.export`: this machine's checkpoints → commits (``tether push``).
- :mod:`tether.remote.importer`: fetched commits → validated imported checkpoints (``tether pull``).
- :mod:`tether.remote.handoff`: push / pull / resume-from as whole operations.
"""
