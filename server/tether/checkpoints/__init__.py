"""Checkpoints made and undone: the :class:`~tether.checkpoints.checkpointer.Checkpointer` (scan →
one store transaction), restore (plan + apply), and diffs between checkpoints and the disk."""
