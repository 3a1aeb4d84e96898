"""The walk's directory listings, kept between walks and between processes (the store's
``scan_dirs``): per directory its entries as last listed, valid while the directory's own
(mtime, ctime, inode) is unchanged, and the ``.gitignore`` files they were filtered with (one
changed: every listing is dropped). A new process checks the stored listings' directory and file
stats in one pass (scan/statcheck.py; split with a helper process when the tree is large,
scan/helper.py) and takes the unchanged directories whole."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Collection, Sequence
from pathlib import Path

from tether.model import Skipped
from tether.record import dataclass
from tether.scan.helper import verify_split
from tether.scan.result import GITIGNORE
from tether.store.scan_dirs import STAT, DirRow, DirsExport

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Listing:
    """A directory's entries as the last walk saw them, valid while the directory's own
    (mtime, ctime, inode) is unchanged: no entry was added, removed or renamed since."""

    key: tuple[int, int, int]
    files: list[str]  # names of the entries to stat: not ignored, not a directory
    subdirs: list[str]
    skips: list[Skipped]
    has_gitignore: bool


class ListingCache:
    """The listings of one workspace and what the store's copy lacks. Thread-safe."""

    def __init__(self, root: Path, fingerprint: list[object]) -> None:
        self.root = root
        self.fingerprint = fingerprint
        self._listings: dict[str, Listing] = {}
        self._gitignores: dict[str, tuple[int, int, int]] = {}
        self._cache_lock = threading.Lock()
        # What the store's copy lacks: listings made or dropped since the last export; and
        # whether that copy is ours at all (else the next export replaces it whole).
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._in_sync = False
        # Whether these listings may replace the store's whole copy: they come from the store, or
        # from a walk of the whole tree. A process that only looked at told paths (a hook beside
        # a file watcher) knows a few directories at most: replacing would drop all the others.
        self._whole = False
        # Stored stats of the imported listings, until the first walk has checked them.
        self._imported_stats: dict[str, bytes] = {}

    def get(self, rel_dir: str) -> Listing | None:
        return self._listings.get(rel_dir)

    def note_external(self, external: dict[str, tuple[int, int, int]]) -> None:
        """The pattern files outside the tree a walk read: listings are kept only while they
        are unchanged (the store's copy must learn of a change)."""
        with self._cache_lock:
            for path, key in external.items():
                if self._gitignores.get(path) != key:
                    self._gitignores[path] = key
                    self._in_sync = False

    def _meta(self) -> bytes:
        """The rules the listings were filtered with: scanner config and .gitignore stats."""
        doc = {"fp": self.fingerprint, "gi": self._gitignores}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @property
    def listings_dirty(self) -> bool:
        return bool(self._dirty or self._removed or not self._in_sync)

    def export_dirs(self, everything: bool = False) -> DirsExport | None:
        """Listings changed since the last export (all of them when ``everything`` or when the
        store's copy is not ours), for the next process's first walk; None when nothing changed."""
        with self._cache_lock:
            everything = (everything or not self._in_sync) and self._whole
            if not everything and not self._dirty and not self._removed:
                return None
            names = list(self._listings) if everything else sorted(self._dirty)
            rows = [
                DirRow(
                    rel,
                    lst.key,
                    lst.has_gitignore,
                    lst.files,
                    [d.rpartition("/")[2] for d in lst.subdirs],
                    [(k.path, k.reason, k.size) for k in lst.skips],
                )
                for rel in names
                if (lst := self._listings.get(rel)) is not None
            ]
            export = DirsExport(self._meta(), rows, [] if everything else sorted(self._removed), everything)
            self._dirty.clear()
            self._removed.clear()
            self._in_sync = True
        return export

    def export_failed(self, export: DirsExport) -> None:
        """The store did not take ``export``: offer it again next time."""
        with self._cache_lock:
            if export.everything:
                self._in_sync = False
            else:
                self._dirty.update(r.dir for r in export.rows)
                self._removed.update(export.removed)

    def import_dirs(self, meta: bytes | None, rows: Sequence[DirRow]) -> bool:
        """Adopt stored listings; False (and nothing adopted) when unusable. Each listing is
        still checked against its directory's stat before use, so stale ones are harmless."""
        if meta is None and not rows:  # none stored yet (a new store, or damaged ones refused)
            with self._cache_lock:
                self._in_sync = False
            return False
        try:
            if meta is None:
                raise ValueError("no record of the rules they were filtered with")
            doc = json.loads(meta)
            if doc["fp"] != json.loads(json.dumps(self.fingerprint)):
                raise ValueError("made with other settings")
            gitignores = {str(k): (int(v[0]), int(v[1]), int(v[2])) for k, v in doc["gi"].items()}
            listings: dict[str, Listing] = {}
            stats: dict[str, bytes] = {}
            for r in rows:
                if len(r.stats) != STAT.size * len(r.files):
                    raise ValueError(f"stats of {r.dir or '.'} do not match its names")
                prefix = r.dir + "/" if r.dir else ""
                listings[r.dir] = Listing(
                    r.key,
                    r.files,  # taken as decoded: no object per file (the walk joins the paths)
                    [prefix + d for d in r.subdirs],
                    [Skipped(p, why, z) for p, why, z in r.skips],
                    r.gitignore,
                )
                stats[r.dir] = r.stats
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("ignoring stored directory listings: %s", exc)
            with self._cache_lock:
                self._in_sync = False
            return False
        with self._cache_lock:
            self._listings = listings
            self._gitignores = gitignores
            self._imported_stats = stats
            self._dirty.clear()
            self._removed.clear()
            self._in_sync = True
            self._whole = True
        return True

    def verify_imported(self) -> set[str]:
        """Directories whose listing and every file's stat are as the store recorded them: a
        walk takes them as they are, without asking head about their files. Only right after
        :meth:`import_dirs` (the stored stats describe head as of that read)."""
        self.check_gitignores()
        with self._cache_lock:
            stats, self._imported_stats = self._imported_stats, {}
            items = [
                (rel, lst.key, lst.files, packed)
                for rel, packed in stats.items()
                if (lst := self._listings.get(rel)) is not None
            ]
        return {items[i][0] for i in verify_split(str(self.root), items, STAT.format)}

    def listed_paths(self, exclude: Collection[str] = ()) -> list[str]:
        """Paths of the listed files, except in the directories ``exclude``."""
        with self._cache_lock:
            return [
                (rel + "/" if rel else "") + name
                for rel, lst in self._listings.items()
                if rel not in exclude
                for name in lst.files
            ]

    def listed_count(self) -> int:
        with self._cache_lock:
            return sum(len(lst.files) for lst in self._listings.values())

    @property
    def has_listings(self) -> bool:
        return bool(self._listings)

    def check_gitignores(self) -> bool:
        """Drop every listing when a pattern file they were filtered with changed; True if so.
        (.gitignore files by relative path, never followed; the sources outside the tree by
        absolute path, followed as they are read: a dotfile manager's symlink is usual.)"""
        with self._cache_lock:
            for rel, key in self._gitignores.items():
                try:
                    st = os.stat(rel) if os.path.isabs(rel) else os.lstat(os.path.join(self.root, rel))
                    now = (st.st_mtime_ns, st.st_size, st.st_ino)
                except OSError:
                    now = (0, 0, 0)
                if now != key:
                    self._listings.clear()
                    self._gitignores.clear()
                    self._imported_stats.clear()
                    self._dirty.clear()
                    self._removed.clear()
                    self._in_sync = False  # the stored ones go too, at the next export
                    self._whole = True
                    return True
        return False

    def prune(self, visited: set[str]) -> None:
        """Forget listings of directories a whole walk did not reach (removed, now ignored)."""
        with self._cache_lock:
            self._whole = True
            gone = [d for d in self._listings if d not in visited]
            for d in gone:
                del self._listings[d]
                self._dirty.discard(d)
            self._removed.update(gone)

    def remember(self, rel_dir: str, fd: int, listing: Listing) -> None:
        with self._cache_lock:
            old = self._listings.get(rel_dir)
            if old is not None and old.has_gitignore != listing.has_gitignore:
                # A .gitignore appeared or went: listings below were filtered with other rules.
                below = rel_dir + "/" if rel_dir else ""
                for k in [k for k in self._listings if k.startswith(below)]:
                    del self._listings[k]
                    self._dirty.discard(k)
                    self._removed.add(k)
            gi = f"{rel_dir}/{GITIGNORE}" if rel_dir else GITIGNORE
            if listing.has_gitignore:
                try:
                    st = os.stat(GITIGNORE, dir_fd=fd, follow_symlinks=False)
                    self._gitignores[gi] = (st.st_mtime_ns, st.st_size, st.st_ino)
                except OSError:
                    return  # not cached: listed again next time
            else:
                self._gitignores.pop(gi, None)
            self._listings[rel_dir] = listing
            self._dirty.add(rel_dir)
            self._removed.discard(rel_dir)
