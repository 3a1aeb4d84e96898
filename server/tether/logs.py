"""Module loggers that import :mod:`logging` only when something is logged.

``log = get_logger(__name__)`` stands for ``logging.getLogger(__name__)``: agents run the CLI
after every tool call and most of those runs log nothing, while logging (with traceback,
threading, string and weakref under it) is about 4 ms of each. :func:`configure` is the CLI's
``logging.basicConfig``, applied when logging is first used (at once if it already is).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import logging

_pending: list[int] = []  # the CLI's verbosity, until logging is imported for a logger


def configure(verbose: int = 0) -> None:
    """Log to stderr, warnings and up (``verbose`` 1: info, 2: debug)."""
    _pending[:] = [verbose]
    if "logging" in sys.modules:
        _apply()


def _apply() -> None:
    if not _pending:
        return
    verbose = _pending.pop()
    import logging

    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )


# Levels of the calls that may be dropped without logging: while it is not imported, no handler
# or level can have been set but the CLI's (pending) one, or none: the root's WARNING.
_LEVELS = {"debug": 10, "info": 20}


def _drop(*_args: object, **_kwargs: object) -> None:
    return None


class _Logger:
    """Stands for the named logger; its methods are the real logger's, looked up once each."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> object:
        level = _LEVELS.get(attr)
        if level is not None and "logging" not in sys.modules:
            threshold = 30 - 10 * min(_pending[0], 2) if _pending else 30
            if level < threshold:
                return _drop  # not kept: logging may be set up later
        import logging

        _apply()
        value = getattr(logging.getLogger(self._name), attr)
        self.__dict__[attr] = value
        return value


def get_logger(name: str) -> logging.Logger:
    return _Logger(name)  # type: ignore[return-value]
