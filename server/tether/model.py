"""Value types shared by every layer: checkpoints, tracked files, changes, skips.

They carry no behaviour beyond their wire form; the store (``tether.store``) persists them,
the scan (``tether.scan``) produces them, everything above reads them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from tether.record import NamedTuple, dataclass, field
from tether.sha import sha256_hex

# typing is not imported at run time (CLI start-up): TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class CheckpointInfo:
    id: int
    time: float
    trigger: str
    message: str | None
    parent: int | None
    files: tuple[str, ...] = ()
    # None: made here. Else the machine it was imported from (`tether pull`); imported
    # checkpoints form their own delta chain per origin and never change head.
    origin: str | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": iso_time(self.time),
            "trigger": self.trigger,
            "message": self.message,
            "files": list(self.files),
            "parent": self.parent,
            "origin": self.origin,
        }


@dataclass(frozen=True)
class FileEntry:
    """A tracked file as of some checkpoint."""

    path: str
    hash: str
    mode: int
    size: int


# Told how far a long operation got: (stage, done, total or None when not known yet). Stages:
# "scan" (files looked at) and "write" (bytes stored). It may raise CancelledError (errors.py)
# to stop the operation, which then leaves nothing half-written.
Progress = Callable[[str, int, "int | None"], None]


# A head row as the scan reads it: (path, hash, mode, size, mtime_ns, ino). StatEntry has the same
# layout; the whole-tree scan takes plain tuples, which load without one object per tracked file.
HeadRow = tuple[str, str, int, int, int, int]


class StatEntry(NamedTuple):
    """Head row: the tracked file's content hash and the stat that vouches for it.

    A NamedTuple, not a dataclass: a large workspace loads tens of thousands at once.
    """

    path: str
    hash: str
    mode: int
    size: int
    mtime_ns: int
    ino: int


@dataclass(frozen=True, slots=True)
class FileChange:
    """A path to record in a checkpoint; ``content is None`` records a deletion, unless
    ``deferred``: then the bytes were not kept (a big checkpoint is streamed), and the store
    reads them when it writes the checkpoint, checked against this stat (``stat_size`` bytes)."""

    path: str
    content: bytes | None
    mode: int = 0o644
    mtime_ns: int = 0
    ino: int = 0
    deferred: bool = False
    stat_size: int = 0

    @property
    def size(self) -> int:
        return len(self.content) if self.content is not None else self.stat_size

    @property
    def deleted(self) -> bool:
        return self.content is None and not self.deferred


@dataclass(frozen=True)
class ImportedCheckpoint:
    """A checkpoint made on another machine: ``changes`` are (path, bytes or None, mode)."""

    created: float
    trigger: str
    message: str | None
    changes: Sequence[tuple[str, bytes | None, int]]
    attachments: Mapping[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str
    size: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "size": self.size}


@dataclass
class GcReport:
    removed_checkpoints: list[int] = field(default_factory=list)
    removed_blobs: int = 0
    bytes_before: int = 0
    bytes_after: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "removedCheckpoints": self.removed_checkpoints,
            "removedBlobs": self.removed_blobs,
            "bytesBefore": self.bytes_before,
            "bytesAfter": self.bytes_after,
        }


def iso_time(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def blob_hash(data: bytes) -> str:
    return sha256_hex(data)
