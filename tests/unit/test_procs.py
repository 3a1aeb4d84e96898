"""The process-facts backend is chosen by capability (is /proc readable?), and the switch the
tests use to run the fallback on Linux works; the boot identity falls back when /proc has no boot
id. The facts themselves are checked against real processes in tests/tmux/test_no_procfs.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tether import procs
from tether.tmux.snapshot import TmuxSnapshot


def test_the_backend_follows_the_capability_and_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(procs.NO_PROCFS_ENV, raising=False)
    monkeypatch.setattr(procs, "_procfs_readable", None)
    assert procs.procfs() is Path("/proc/self/stat").exists()
    for off in ("1", "yes"):
        monkeypatch.setenv(procs.NO_PROCFS_ENV, off)
        assert not procs.procfs()
    monkeypatch.setenv(procs.NO_PROCFS_ENV, "0")
    assert procs.procfs() is Path("/proc/self/stat").exists()
    # No /proc at all (as on macOS): the probe's own answer, not the OS name.
    monkeypatch.setattr(procs, "_procfs_readable", None)
    monkeypatch.setattr(procs, "read_proc", lambda path: None)
    assert not procs.procfs()


def test_the_boot_identity_without_a_boot_id_file(monkeypatch: pytest.MonkeyPatch) -> None:
    real = procs.read_proc
    monkeypatch.setattr(procs, "read_proc", lambda p: None if p.endswith("boot_id") else real(p))
    boot = procs.boot_id()
    assert boot.startswith("boot-time:") and int(boot.partition(":")[2]) > 0
    assert procs.boot_id() == boot  # stable: it is half of the watchers' liveness token


def test_the_two_backends_tokens_never_compare_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(procs.NO_PROCFS_ENV, raising=False)
    proc_boot, proc_start = procs.boot_id(), procs.start_token(os.getpid())
    monkeypatch.setenv(procs.NO_PROCFS_ENV, "1")
    assert procs.boot_id() != proc_boot
    assert procs.start_token(os.getpid()) != proc_start


def test_with_proc_nothing_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(procs.NO_PROCFS_ENV, raising=False)
    assert procs.missing_facts() == []
    assert procs.report() == {"backend": "/proc", "missing": []}


def test_missing_notes_from_a_snapshot_are_bounded_and_plain() -> None:
    doc = {
        "schema": 1,
        "session": "s",
        "root": "/w",
        "env": [],
        "windows": [
            {
                "index": 0,
                "name": "w",
                "layout": "",
                "zoomed": False,
                "active": True,
                "width": 80,
                "height": 24,
                "panes": [],
            }
        ],
        "missing": ["the panes' running commands\x1b]52;c;evil\x07: why", 7, "x" * 1000, "\x1b", *["n"] * 20],
    }
    snap = TmuxSnapshot.salvage(json.dumps(doc))
    assert snap is not None
    assert snap.missing[0] == "the panes' running commands]52;c;evil: why"
    assert snap.missing[1] == "x" * 300 and len(snap.missing) <= 8
    assert all("\x1b" not in m and "\x07" not in m for m in snap.missing)
