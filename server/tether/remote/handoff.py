"""push / pull / resume-from, each as one operation that leaves local state alone on failure.

Refs: this machine pushes ``refs/tether/<workspace-id>/<who>`` only; another machine's ref is
never written by us, so two machines pushing at once each keep their own. A pull fetches
``refs/tether/<workspace-id>/*`` into the side repository's ``refs/tether-incoming/``, checks
everything (importer.py), imports it into the store in one transaction per machine, and only then
moves the side repository's record of what was imported.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.errors import HandoffError
from tether.model import CheckpointInfo
from tether.record import dataclass, field
from tether.remote import export as export_mod
from tether.remote.gitrepo import (
    INCOMING_PREFIX,
    REF_PREFIX,
    SideRepo,
    default_who,
    ref_part,
    resolve_remote,
    user_objects,
    workspace_id,
)
from tether.scan.result import DEFAULT_MAX_FILE_BYTES
from tether.store.db import Store

if TYPE_CHECKING:
    from tether.remote.importer import Incoming

log = logging.getLogger(__name__)

IDS_FILE = "tether-ids.json"
PUSH_REMOTE = "tether-push"


@dataclass
class PushResult:
    remote: str
    ref: str
    commit: str | None
    checkpoints: list[int]
    left_out: list[str]
    up_to_date: bool

    def to_wire(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "ref": self.ref,
            "commit": self.commit,
            "checkpoints": self.checkpoints,
            "leftOut": self.left_out,
            "upToDate": self.up_to_date,
        }


@dataclass
class PullResult:
    remote: str
    imported: dict[str, list[CheckpointInfo]] = field(default_factory=dict)
    roots: dict[str, str | None] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "imported": [
                {"origin": who, "root": self.roots.get(who), "checkpoints": [c.id for c in infos]}
                for who, infos in self.imported.items()
            ],
        }


class Handoff:
    def __init__(self, store: Store, who: str | None = None, ws_id: str | None = None) -> None:
        self.store = store
        self.root: Path = store.root
        self.side = SideRepo.open(store.db_path.parent)
        cached = self._ids()
        ids = dict(cached)
        # This clone's name in the ref: user and host, plus a token drawn once per clone, so two
        # clones on one machine, or containers that are all root@localhost, never share a ref.
        if "who" not in ids:
            import secrets

            ids["who"] = f"{default_who()}-{secrets.token_hex(2)}"
        self.who = ref_part(who) if who else ids["who"]
        self.ws_id = ref_part(ws_id) if ws_id else cached.get("workspaceId") or workspace_id(self.root)
        if not ws_id and "workspaceId" not in cached and self.ws_id.startswith("ws-"):
            # A first commit never changes, nor where the repository keeps its objects: asked once.
            ids["workspaceId"] = self.ws_id
            if (objects := user_objects(self.root)) is not None:
                ids["objects"] = str(objects)
        self._objects = ids.get("objects")
        if ids != cached:
            self._save_ids(ids)

    def _ids(self) -> dict[str, str]:
        try:
            doc = json.loads((self.side.path / IDS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in doc.items() if isinstance(v, str)} if isinstance(doc, dict) else {}

    def _save_ids(self, doc: dict[str, str]) -> None:
        from tether.paths import write_private_file

        write_private_file(self.side.path / IDS_FILE, json.dumps(doc).encode())

    @property
    def ref(self) -> str:
        return f"{REF_PREFIX}/{self.ws_id}/{self.who}"

    def push(
        self, remote: str = "origin", *, include_buffers: bool = False, include_terminal: bool = False
    ) -> PushResult:
        url = resolve_remote(self.root, remote)
        staging = f"refs/tether-staging/{self.ws_id}/{self.who}"

        def buffers() -> bytes | None:
            from tether.editor.resume import STATE_PENDING

            return self.store.get_state(STATE_PENDING)

        result = export_mod.export(
            self.store,
            self.side,
            self.ref,
            staging,
            self.who,
            include_buffers=include_buffers,
            include_terminal=include_terminal,
            buffers=buffers,
        )
        if result.commit is None:
            raise HandoffError("nothing to push: this workspace has no checkpoint yet")
        env: dict[str, str] = {}
        objects = self._objects or (str(o) if (o := user_objects(self.root)) is not None else None)
        if objects is not None and Path(objects).is_dir():
            # Read-only, for this one process: lets git see what the remote already has through
            # the user's branches, so those blobs are not sent again.
            env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = objects
        # Pushed to a remote named for this one command (config given on the command line,
        # nothing written), whose fetch refspec maps our ref onto itself: a successful push then
        # moves the side repository's copy of the ref too (git's remote-tracking update), the
        # base of the next export, without an update-ref process.
        res = self.side.git(
            [
                "-c",
                f"remote.{PUSH_REMOTE}.url={url}",
                "-c",
                f"remote.{PUSH_REMOTE}.fetch=+{self.ref}:{self.ref}",
                "push",
                "--porcelain",
                "--no-verify",
                PUSH_REMOTE,
                f"{result.commit}:{self.ref}",
            ],
            env=env,
            check=False,
            what="git push",
        )
        if res.returncode != 0:
            out = (res.stdout + res.stderr).decode("utf-8", "replace")
            if "non-fast-forward" in out or "fetch first" in out or "stale info" in out:
                raise HandoffError(
                    f"the remote's {self.ref} was rewritten by someone else (the push would not be a "
                    "fast-forward); nothing was pushed. Another machine using the same name? Push "
                    "with --as NAME."
                )
            detail = " ".join(line for line in out.strip().splitlines()[-4:])
            raise HandoffError(f"the remote {remote} refused the push: {detail}")
        return PushResult(
            remote, self.ref, result.commit, result.checkpoints, result.left_out, not result.checkpoints
        )

    def pull(self, remote: str = "origin", only: str | None = None) -> PullResult:
        from tether.remote.importer import read_incoming  # pull only: push never reads objects back

        url = resolve_remote(self.root, remote)
        incoming_prefix = f"{INCOMING_PREFIX}/{self.ws_id}/"
        self.side.git(
            [
                "-c",
                "fetch.fsckObjects=true",
                "fetch",
                "--no-write-fetch-head",
                "--no-tags",
                "--prune",
                url,
                f"+{REF_PREFIX}/{self.ws_id}/*:{incoming_prefix}*",
            ],
            what=f"git fetch from {remote}",
        )
        batches: list[Incoming] = []
        for name, sha in sorted(self.side.refs(incoming_prefix).items()):
            who = name[len(incoming_prefix) :]
            if who == self.who or (only is not None and who != ref_part(only)):
                continue
            old = self.side.rev(f"{REF_PREFIX}/{self.ws_id}/{who}")
            if old == sha:
                continue
            batches.append(
                read_incoming(self.side, who, old, sha, root=self.root, max_file_bytes=DEFAULT_MAX_FILE_BYTES)
            )
        if only is not None and not batches and self.store.latest(origin=ref_part(only)) is None:
            raise HandoffError(f"no hand-off from {only!r} on {remote} for this workspace")
        result = PullResult(remote)
        # Everything was read and checked above: only now is anything written.
        for batch in batches:
            infos = self.store.import_checkpoints(batch.who, batch.items)
            self.side.git(["update-ref", f"{REF_PREFIX}/{self.ws_id}/{batch.who}", batch.commit])
            result.imported[batch.who] = infos
            result.roots[batch.who] = batch.other_root
        return result

    def newest_origin(self) -> str | None:
        best: tuple[float, str] | None = None
        for info in self.store.list_checkpoints(limit=None):
            if info.origin and info.origin != self.who and (best is None or info.time > best[0]):
                best = (info.time, info.origin)
        return best[1] if best else None
