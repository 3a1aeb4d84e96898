"""Exceptions shared by services. Each carries a message fit to show a user as is."""

from __future__ import annotations


class TetherError(Exception):
    """Base class; ``reason`` mirrors the protocol's error reasons."""

    reason = "error"
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadParamsError(TetherError):
    reason = "badParams"
    exit_code = 2


class OutsideWorkspaceError(TetherError):
    reason = "outsideWorkspace"
    exit_code = 3


class NoCheckpointError(TetherError):
    reason = "noCheckpoint"
    exit_code = 4


class StoreError(TetherError):
    reason = "storeError"
    exit_code = 5


class CorruptStoreError(StoreError):
    """The database file is unreadable; nothing further is written to it."""


class StoreFullError(StoreError):
    """ENOSPC or a full database: the checkpoint was not written, older ones are intact."""


class TmuxError(TetherError):
    reason = "tmuxError"
    exit_code = 6


class ClientTimeoutError(TetherError):
    """The editor did not answer one of the server's requests in time (``request``: its method)."""

    reason = "clientTimeout"

    def __init__(self, message: str, request: str) -> None:
        super().__init__(message)
        self.request = request


class BusyError(TetherError):
    """The same operation is already running and did not finish in time."""

    reason = "busy"


class HandoffError(TetherError):
    """A push or pull that could not be done; nothing local was changed."""

    reason = "handoff"


class CancelledError(TetherError):
    """The user cancelled a long operation (a big checkpoint); nothing of it was written."""

    reason = "cancelled"
    exit_code = 130
