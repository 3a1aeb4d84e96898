"""Hand-off through a real git remote (bare repo over file:// and over `git daemon`), two
workspaces with separate state dirs standing for two machines; the CLI runs in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.gitremote import (
    clone,
    git,
    git_daemon,
    make_project,
    object_count,
    store_digest,
    tree_digest,
    user_git_state,
)
from tether.agent.runs import load_runs
from tether.cli import main
from tether.store.db import Store

FILES = {
    "README.md": "hello\n",
    "src/app.py": "print('v1')\n",
    **{f"pkg/m{i}.py": f"x = {i}\n" for i in range(60)},
}


class Machine:
    def __init__(self, root: Path, state: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.root, self.state, self.name, self.capsys = root, state, name, capsys

    def run(self, *argv: str, ok: bool = True) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["-C", str(self.root), "--state-dir", str(self.state), *argv])
        out, err = self.capsys.readouterr()
        if ok:
            assert code == 0, err
        return code, out, err

    def json(self, *argv: str) -> dict:
        _, out, _ = self.run("--json", *argv)
        return json.loads(out)  # type: ignore[no-any-return]


@pytest.fixture
def machines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Machine, Machine]:
    remote, a = make_project(tmp_path, FILES)
    b = clone(remote, tmp_path / "b")
    return (
        remote,
        Machine(a, tmp_path / "state-a", "alice", capsys),
        Machine(b, tmp_path / "state-b", "bob", capsys),
    )


def _work_on_a(a: Machine) -> None:
    (a.root / "src/app.py").write_text("print('v2')\n")
    (a.root / "notes.txt").write_text("in progress\n")
    a.run(
        "step", "--task", "ship the parser", "--done", "rewrote app", "--next", "add tests", "--next", "lint"
    )


@pytest.mark.parametrize("transport", ["file", "daemon"])
def test_round_trip_leaves_a_untouched_and_b_gets_everything(
    machines: tuple[Path, Machine, Machine], transport: str
) -> None:
    remote, a, b = machines
    (a.root / "README.md").write_text("stashed edit\n")
    git(a.root, "stash", "-q")  # a stash entry, which must survive untouched
    _work_on_a(a)
    before = user_git_state(a.root)  # after A's work, before any push
    a_files = {p: (a.root / p).read_bytes() for p in [*FILES, "notes.txt"]}

    def go(url: str) -> None:
        pushed = a.json("push", url, "--as", a.name)
        assert pushed["ref"].startswith("refs/tether/ws-") and pushed["ref"].endswith("/alice")
        assert pushed["checkpoints"]
        preview = b.json("handoff", url + "#alice", "--as", b.name)
        assert not preview["applied"] and sorted(preview["files"]) == ["notes.txt", "src/app.py"]
        assert (b.root / "src/app.py").read_text() == "print('v1')\n"  # the preview wrote nothing
        applied = b.json("handoff", url + "#alice", "--as", b.name, "--apply")
        assert applied["applied"] and applied["undoCheckpoint"]

    if transport == "file":
        go(f"file://{remote}")
    else:
        with git_daemon(remote.parent) as base:
            go(f"{base}/{remote.name}")

    # A's user-visible git state is byte-identical: refs, HEAD, index bytes, status, config,
    # stash, even the object count (Tether writes to its own side repository only).
    assert user_git_state(a.root) == before
    # B has A's files, task, next steps, and the import shows its origin.
    for rel, data in a_files.items():
        assert (b.root / rel).read_bytes() == data, rel
    agent = json.loads((b.root / ".agent-session.json").read_text())
    assert agent["current_task"] == "ship the parser"
    assert agent["next_steps"] == ["add tests", "lint"]
    log = b.run("log")[1]
    assert "[from alice]" in log and "rewrote app" in log
    status = b.json("status")
    assert "ship the parser" in json.dumps(status)
    # The remote holds the hand-off ref next to main, nothing else was pushed.
    refs = git(remote, "for-each-ref", "--format=%(refname)").decode().split()
    assert refs[0] == "refs/heads/main" and len(refs) == 2 and refs[1].startswith("refs/tether/")


def test_push_after_one_step_sends_only_new_objects(machines: tuple[Path, Machine, Machine]) -> None:
    remote, a, _ = machines
    _work_on_a(a)
    a.run("push", "--as", a.name)
    n0 = object_count(remote)
    (a.root / "pkg/m7.py").write_text("x = 'seven'\n")
    a.run("step", "--done", "one file")
    pushed = a.json("push", "--as", a.name)
    assert len(pushed["checkpoints"]) == 1
    added = object_count(remote) - n0
    # the new blob, pkg/, files/, tether/ (+ meta, agent), root tree, commit: a handful, not the tree
    assert 0 < added <= 10, added
    assert a.json("push", "--as", a.name)["upToDate"]


def test_an_incremental_push_starts_three_git_processes_and_moves_the_side_ref(
    machines: tuple[Path, Machine, Machine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a push after one step costs beyond `git push`: the remote's URL and one fast-import;
    # the last export is read from the side repository's loose ref and object, and the push
    # itself moves the side repository's ref (no log, rev-parse or update-ref process).
    import subprocess

    remote, a, _ = machines
    _work_on_a(a)
    first = a.json("push", "--as", a.name)
    started: list[list[str]] = []
    real_popen = subprocess.Popen.__init__

    def spy(self: subprocess.Popen[bytes], args: list[str], *rest: object, **kw: object) -> None:
        started.append([str(x) for x in args])
        real_popen(self, args, *rest, **kw)  # type: ignore[arg-type]

    for r in range(2):
        (a.root / "pkg/m7.py").write_text(f"x = 'seven {r}'\n")
        a.run("step", "--done", f"one file {r}")
        started.clear()
        with monkeypatch.context() as m:
            m.setattr(subprocess.Popen, "__init__", spy)
            pushed = a.json("push", "--as", a.name)
        commands = [
            next(
                w
                for w in argv[1:]
                if w in {"remote", "fast-import", "push", "log", "update-ref", "rev-parse"}
            )
            for argv in started
        ]
        assert commands == ["remote", "fast-import", "push"], started
        assert pushed["checkpoints"] == [first["checkpoints"][-1] + r + 1]  # step r's checkpoint only
        side = next(a.state.rglob("handoff.git"))
        on_remote = git(remote, "rev-parse", pushed["ref"]).decode().strip()
        assert git(side, "rev-parse", pushed["ref"]).decode().strip() == on_remote == pushed["commit"]
        # The new commit continues the pushed history: a fast-forward of the previous one.
        assert git(
            remote, "rev-list", "--count", f"{first['commit']}..{pushed['commit']}"
        ).decode().strip() == str(r + 1)


def test_a_push_after_the_side_repository_was_packed_still_continues_its_history(
    machines: tuple[Path, Machine, Machine],
) -> None:
    # A first push of a large tree leaves a pack (fast-import keeps 100 objects or more), and a
    # user may pack the side repository's refs: the last export is then asked of git.
    remote, a, _ = machines
    _work_on_a(a)
    first = a.json("push", "--as", a.name)
    side = next(a.state.rglob("handoff.git"))
    git(side, "pack-refs", "--all")
    git(side, "repack", "-adq")
    assert not (side / first["ref"]).exists()
    (a.root / "pkg/m8.py").write_text("x = 'eight'\n")
    a.run("step", "--done", "after packing")
    pushed = a.json("push", "--as", a.name)
    assert pushed["checkpoints"] == [first["checkpoints"][-1] + 1]
    assert (
        git(remote, "rev-list", "--count", f"{first['commit']}..{pushed['commit']}").decode().strip() == "1"
    )
    assert git(side, "rev-parse", pushed["ref"]).decode().strip() == pushed["commit"]


def test_two_machines_push_at_once_keep_both(tmp_path: Path, machines: tuple[Path, Machine, Machine]) -> None:
    remote, a, b = machines
    c = Machine(clone(remote, tmp_path / "c"), tmp_path / "state-c", "carol", a.capsys)
    _work_on_a(a)
    (c.root / "README.md").write_text("carol was here\n")
    c.run("step", "--done", "carol's step")
    a.run("push", "--as", a.name)
    c.run("push", "--as", c.name)
    refs = git(remote, "for-each-ref", "--format=%(refname)", "refs/tether").decode().split()
    assert [r.rsplit("/", 1)[1] for r in refs] == ["alice", "carol"]
    pulled = b.json("pull", "--as", b.name)
    assert sorted(x["origin"] for x in pulled["imported"]) == ["alice", "carol"]
    with Store.open(b.root, b.state) as store:
        assert store.latest(origin="alice") is not None and store.latest(origin="carol") is not None
        assert store.latest() is None  # nothing of B's own was made or changed


def _fingerprint(m: Machine) -> tuple[str, str]:
    return store_digest(m.state), tree_digest(m.root)


def test_rewritten_ref_refused_on_push_and_on_pull(machines: tuple[Path, Machine, Machine]) -> None:
    remote, a, b = machines
    _work_on_a(a)
    ref = a.json("push", "--as", a.name)["ref"]
    b.run("pull", "--as", b.name)
    # Someone force-pushes an unrelated commit over alice's ref.
    other = git(a.root, "commit-tree", "HEAD^{tree}", "-m", "rogue").decode().strip()
    git(a.root, "push", "-q", "--force", str(remote), f"{other}:{ref}")
    (a.root / "notes.txt").write_text("more\n")
    a.run("step", "--done", "after the rewrite")
    code, _, err = a.run("push", "--as", a.name, ok=False)
    assert code != 0 and "rewritten" in err
    before = _fingerprint(b)
    code, _, err = b.run("pull", "--as", b.name, ok=False)
    assert code != 0 and "rewritten" in err
    assert _fingerprint(b) == before


def test_remote_that_rejects_the_push(machines: tuple[Path, Machine, Machine]) -> None:
    remote, a, _ = machines
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no tether refs here' >&2\nexit 1\n")
    hook.chmod(0o755)
    _work_on_a(a)
    before = store_digest(a.state)
    code, _, err = a.run("push", "--as", a.name, ok=False)
    assert code != 0 and "refused the push" in err and "no tether refs here" in err
    assert store_digest(a.state) == before
    assert git(remote, "for-each-ref", "refs/tether") == b""


# --- hostile fetched objects ----------------------------------------------------------------------


def _tree(repo: Path, entries: list[tuple[str, str, str]]) -> str:
    """A raw tree object (no validation, like a hostile server could send): (mode, name, sha)."""
    raw = b"".join(
        mode.encode() + b" " + name.encode() + b"\0" + bytes.fromhex(sha)
        for mode, name, sha in sorted(entries, key=lambda e: e[1])
    )
    return git(repo, "hash-object", "-w", "-t", "tree", "--literally", "--stdin", input=raw).decode().strip()


def _blob(repo: Path, data: bytes) -> str:
    return git(repo, "hash-object", "-w", "--stdin", input=data).decode().strip()


def _meta(repo: Path, root: str = "/elsewhere") -> str:
    doc = {
        "format": 1,
        "checkpoint": 1,
        "created": 1.0,
        "trigger": "step",
        "message": "m",
        "root": root,
        "who": "x",
    }
    return _blob(repo, json.dumps(doc).encode())


def _hostile_commit(
    repo: Path, files_entries: list[tuple[str, str, str]], tether_extra: list | None = None
) -> str:
    files = _tree(repo, files_entries)
    side = _tree(repo, [("100644", "meta.json", _meta(repo)), *(tether_extra or [])])
    root = _tree(repo, [("40000", "files", files), ("40000", "tether", side)])
    return git(repo, "commit-tree", root, "-m", "hostile").decode().strip()


HOSTILE = ["dotdot", "dotgit", "symlink", "submodule", "slash", "huge", "badjson", "toplevel"]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_fetched_objects_are_refused_and_change_nothing(
    machines: tuple[Path, Machine, Machine], case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote, a, b = machines
    _work_on_a(a)
    ref = a.json("push", "--as", a.name)["ref"]
    ws_ref = ref.rsplit("/", 1)[0] + "/mallory"
    scratch = a.root.parent / "scratch"
    git(a.root.parent, "init", "-q", "--bare", str(scratch))
    ok_blob = _blob(scratch, b"fine\n")
    evil = _blob(scratch, b"owned\n")
    if case == "dotdot":
        commit = _hostile_commit(scratch, [("40000", "..", _tree(scratch, [("100644", "evil", evil)]))])
    elif case == "dotgit":
        commit = _hostile_commit(scratch, [("40000", ".git", _tree(scratch, [("100644", "config", evil)]))])
    elif case == "symlink":
        commit = _hostile_commit(scratch, [("120000", "link", _blob(scratch, b"/etc/passwd"))])
    elif case == "submodule":
        commit = _hostile_commit(scratch, [("160000", "sub", ok_blob)])
    elif case == "slash":
        commit = _hostile_commit(scratch, [("100644", "/etc/evil", evil)])
    elif case == "huge":
        monkeypatch.setattr("tether.remote.handoff.DEFAULT_MAX_FILE_BYTES", 1000)
        commit = _hostile_commit(scratch, [("100644", "big.bin", _blob(scratch, b"x" * 5000))])
    elif case == "badjson":
        commit = _hostile_commit(
            scratch, [("100644", "ok.txt", ok_blob)], [("100644", "tmux.json", _blob(scratch, b"{not json"))]
        )
    else:  # an entry beside files/ and tether/
        files = _tree(scratch, [("100644", "ok.txt", ok_blob)])
        side = _tree(scratch, [("100644", "meta.json", _meta(scratch))])
        root = _tree(
            scratch, [("40000", "files", files), ("40000", "tether", side), ("100644", "run.sh", evil)]
        )
        commit = git(scratch, "commit-tree", root, "-m", "hostile").decode().strip()
    git(scratch, "push", "-q", str(remote), f"{commit}:{ws_ref}")
    b.run("log")  # B's store exists (empty) before the pull
    before = _fingerprint(b)
    code, _, err = b.run("pull", "--as", b.name, ok=False)
    assert code != 0 and ("refusing" in err or "fetch" in err), err
    assert _fingerprint(b) == before
    assert not (a.root.parent / "evil").exists()
    with Store.open(b.root, b.state) as store:
        assert store.list_checkpoints() == []  # alice's good ref was not imported either


def test_secret_looking_files_and_terminal_text_stay_out(machines: tuple[Path, Machine, Machine]) -> None:
    remote, a, _ = machines
    (a.root / ".env").write_text("API_TOKEN=sk-very-secret-value\n")
    _work_on_a(a)
    with Store.open(a.root, a.state) as store:
        assert ".env" in store.manifest(store.latest().id)  # type: ignore[union-attr]
    pushed = a.json("push", "--as", a.name)
    assert pushed["leftOut"] == [".env"]
    listing = git(remote, "ls-tree", "-r", "--name-only", pushed["commit"]).decode().split()
    assert "files/.env" not in listing and "files/src/app.py" in listing
    everything = git(remote, "cat-file", "--batch-all-objects", "--batch").decode("utf-8", "replace")
    assert "sk-very-secret-value" not in everything


def test_resume_from_option_and_unknown_remote(machines: tuple[Path, Machine, Machine]) -> None:
    _remote, a, b = machines
    _work_on_a(a)
    a.run("push", "--as", a.name)
    out = b.run("resume", "--from", "origin/alice")[1]
    assert "would change 2 files" in out and "Task: ship the parser" in out
    code, _, err = b.run("pull", "nosuchremote", ok=False)
    assert code != 0 and "no git remote named" in err


def test_two_clones_on_one_machine_without_names(machines: tuple[Path, Machine, Machine]) -> None:
    """No --as anywhere: both clones run as the same user on the same host, yet each pushes to its
    own ref, and B finds A's session (a name of user and host alone made B skip A's ref as its own)."""
    _remote, a, b = machines
    _work_on_a(a)
    ref_a = a.json("push")["ref"]
    assert a.json("push")["ref"] == ref_a  # the clone's name is kept: the same ref every time
    preview = b.json("resume", "--from", "origin")
    assert sorted(preview["files"]) == ["notes.txt", "src/app.py"]
    b.run("step", "--done", "b's own step")
    ref_b = b.json("push")["ref"]
    assert ref_b != ref_a and ref_b.rsplit("/", 1)[0] == ref_a.rsplit("/", 1)[0]


def test_local_work_is_previewed_and_undoable_never_silently_overwritten(
    machines: tuple[Path, Machine, Machine],
) -> None:
    _remote, a, b = machines
    _work_on_a(a)
    a.run("push", "--as", a.name)
    (b.root / "src/app.py").write_text("print('bob local work')\n")
    preview = b.json("resume", "--from", "origin/alice")
    assert "src/app.py" in preview["files"] and not preview["applied"]
    assert (b.root / "src/app.py").read_text() == "print('bob local work')\n"
    applied = b.json("resume", "--from", "origin/alice", "--apply")
    assert (b.root / "src/app.py").read_text() == "print('v2')\n"
    # The undo checkpoint holds B's own work: restoring it brings that back.
    b.run("restore", str(applied["undoCheckpoint"]), "src/app.py")
    assert (b.root / "src/app.py").read_text() == "print('bob local work')\n"


def test_run_validity_crosses_with_the_checkpoints(machines: tuple[Path, Machine, Machine]) -> None:
    _remote, a, b = machines
    _work_on_a(a)
    a.run("run", "--", "true")
    (a.root / "notes.txt").write_text("after the run\n")
    a.run("step", "--done", "edited after the run")
    a.run("push", "--as", a.name)
    with Store.open(a.root, a.state) as store:
        [a_run] = load_runs(store)
    out = b.run("resume", "--from", "origin/alice", "--apply")[1]
    with Store.open(b.root, b.state) as store:
        [b_run] = load_runs(store)
        meta = json.loads(store.attachment(b_run.checkpoint, "handoff") or b"{}")  # type: ignore[arg-type]
        assert store.get_checkpoint(b_run.checkpoint).origin == "alice"
    assert meta["checkpoint"] == a_run.checkpoint  # the same checkpoint, under this machine's number
    [line] = [ln for ln in out.splitlines() if ln.startswith("`true` passed")]
    assert f"at checkpoint {b_run.checkpoint}" in line and "notes.txt" in line  # stale here too
    b.run("resume", "--from", "origin/alice", "--apply")  # again: the run is not recorded twice
    with Store.open(b.root, b.state) as store:
        assert len(load_runs(store)) == 1
