"""The workspace's tmux session: configuration and trust, snapshot, recreate, and the watch that
snapshots it on every change. Every call blocks (tmux, /proc): run it off the event loop."""
