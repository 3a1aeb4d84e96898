"""Multi-root windows on the server side: each folder has its own `tether lsp` (the clients
start one per folder, each initialized with that folder alone), and that server asks for what is
its own. File watching is registered with a RelativePattern on its folder when the client
supports them (else a glob, whose events outside the folder are dropped), and
workspace/configuration carries the folder as ``scopeUri`` so per-folder settings apply.
pytest-lsp's client answers configuration by scope (longest prefix)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities

from tests.e2e.lsp_harness import start_session
from tests.support.retry import aretry_until


@pytest.fixture
def two_folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "alpha", tmp_path / "beta"
    for d in (a, b):
        d.mkdir()
        (d / "x.py").write_text("x = 1\n")
    return a.resolve(), b.resolve()


def _caps(relative: bool) -> types.ClientCapabilities:
    caps = copy.deepcopy(client_capabilities("visual-studio-code"))
    assert caps.workspace is not None
    caps.workspace.did_change_watched_files = types.DidChangeWatchedFilesClientCapabilities(
        dynamic_registration=True, relative_pattern_support=relative
    )
    return caps


@pytest.mark.parametrize("relative", [True, False], ids=["relative-pattern", "glob"])
async def test_file_watching_is_registered_on_the_servers_folder(
    two_folders: tuple[Path, Path], state_dir: Path, relative: bool
) -> None:
    a, b = two_folders
    # The second folder's server (a client locked to one folder names only it, as
    # vscode-languageclient's `workspaceFolder` option and Neovim's root_dir do).
    s = await start_session(b, state_dir, _caps(relative))
    try:
        regs = await aretry_until(lambda: s.registrations, timeout=10, what="registerCapability")
        assert [r.method for r in regs] == [types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
        opts = regs[0].register_options
        watchers = opts["watchers"] if isinstance(opts, dict) else opts.watchers  # type: ignore[union-attr]
        assert len(watchers) == 1
        glob = watchers[0]["globPattern"] if isinstance(watchers[0], dict) else watchers[0].glob_pattern
        if relative:
            base = glob["baseUri"] if isinstance(glob, dict) else glob.base_uri
            pattern = glob["pattern"] if isinstance(glob, dict) else glob.pattern
            assert base == b.as_uri() and pattern == "**/*"
        else:
            assert glob == "**/*"
        # A glob reaches every folder of the window: events outside this server's are dropped.
        await s.wait_status(lambda st: st["state"] == "idle" and st["lastCheckpoint"] is not None, "baseline")
        before = len(await s.timeline())
        (a / "x.py").write_text("x = 2\n")
        (b / "x.py").write_text("x = 3\n")
        s.client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[
                    types.FileEvent(uri=(a / "x.py").as_uri(), type=types.FileChangeType.Changed),
                    types.FileEvent(uri=(b / "x.py").as_uri(), type=types.FileChangeType.Changed),
                ]
            )
        )
        timeline = await aretry_until(
            lambda: _longer(s, before), timeout=15, what="the checkpoint of the watched change"
        )
        assert timeline[0]["files"] == ["x.py"]  # beta's: alpha's event was dropped
    finally:
        await s.stop()


async def _longer(s: object, before: int) -> list[dict[str, object]] | None:
    tl = await s.timeline()  # type: ignore[attr-defined]
    return tl if len(tl) > before else None


async def test_configuration_is_asked_for_the_servers_folder(
    two_folders: tuple[Path, Path], state_dir: Path
) -> None:
    """Each scope holds a bad value of a different setting: the warning names whose was read."""
    a, b = two_folders
    s = await start_session(
        b,
        state_dir,
        "visual-studio-code",
        configuration={"tether": {"saveDebounceMs": "window"}},
        scoped_configuration={
            b.as_uri(): {"tether": {"resumeMaxFiles": "beta"}},
            a.as_uri(): {"tether": {"statusMinIntervalMs": "alpha"}},
        },
    )

    def said(key: str) -> list[str]:
        return [m.message for m in s.client.messages if key in m.message]

    try:
        await s.wait_status(lambda st: st["state"] == "idle", "ready")
        await aretry_until(lambda: said("resumeMaxFiles"), timeout=10, what="beta's setting read")
        assert not said("saveDebounceMs") and not said("statusMinIntervalMs"), s.client.messages

        # "Settings changed" with no settings in it: the server asks again, for its folder.
        s.client.set_configuration({"tether": {"maxFileBytes": "beta-changed"}}, scope_uri=b.as_uri())
        s.client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await aretry_until(lambda: said("maxFileBytes"), timeout=10, what="beta's changed setting read")
        assert not said("saveDebounceMs") and not said("statusMinIntervalMs"), s.client.messages
    finally:
        await s.stop()
