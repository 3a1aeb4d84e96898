"""Change discovery: which workspace files differ from the store's head.

- :mod:`~tether.scan.scanner`: the stat-cache walk and told-paths checks;
- :mod:`~tether.scan.ignore` (pure gitignore matching) and :mod:`~tether.scan.ignore_sources`
  (where patterns are read from);
- :mod:`~tether.scan.watcher`: the file watcher (watchdog) of long-lived processes;
- :mod:`~tether.scan.feed`: what may have changed since the last look, from that watcher.
"""
