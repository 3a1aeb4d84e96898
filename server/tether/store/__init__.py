"""The checkpoint store: one SQLite database (WAL) per workspace.

- :mod:`~tether.store.db`: :class:`~tether.store.db.Store` (open, checkpoints, head, live state, gc);
- :mod:`~tether.store.scan_dirs`: the walk's directory listings as stored, with head's packed stats;
- :mod:`~tether.store.integrity`: whether the store may be written (schema, checks, the verdict file);
- :mod:`~tether.store.walcheck`: damage in the write-ahead log, checked when the store opens.

Empty on purpose: importing a submodule costs only what it needs.
"""
