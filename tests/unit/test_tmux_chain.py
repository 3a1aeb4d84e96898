"""The recreate chain planned without tmux (tether.tmux.chain.plan_chain): what each command does,
in which order, and the replay bytes each pane is told to read."""

from __future__ import annotations

import pytest

from tether.tmux.chain import (
    CHAIN_BUDGET,
    PLACEHOLDER_INDEX,
    Chain,
    PanePlan,
    SessionPlan,
    WindowPlan,
    pack,
    plan_chain,
)
from tether.tmux.panes import PANE_OPTION

ROOT = "/work/proj"
S = "=tether-proj-abc123:"


def pane(uid: str, cwd: str = ROOT, **kw: object) -> PanePlan:
    return PanePlan(
        uid=uid, cwd=cwd, env=kw.pop("env", {}), scrollback=kw.pop("scrollback", []), history=None, **kw
    )  # type: ignore[arg-type]


def window(name: str, panes: list[PanePlan], **kw: object) -> WindowPlan:
    fields: dict[str, object] = {
        "index": None,
        "layout": None,
        "zoomed": False,
        "active": False,
        "active_pane": 0,
    }
    fields.update(kw)
    return WindowPlan(name=name, panes=panes, **fields)  # type: ignore[arg-type]


def plan(windows: list[WindowPlan], **kw: object) -> Chain:
    fields: dict[str, object] = {
        "session": "tether-proj-abc123",
        "root": ROOT,
        "width": 200,
        "height": 50,
        "history_limit": 5000,
        "start_cmd": ". start.sh",
    }
    fields.update(kw)
    return plan_chain(SessionPlan(windows=windows, **fields))  # type: ignore[arg-type]


def named(chain: Chain, verb: str) -> list[list[str]]:
    return [c for c in chain.commands if c[0] == verb]


def pane_slices(chain: Chain) -> dict[str, tuple[bytes, bytes, str]]:
    """Per pane uid: (its scrollback, its keys, enter flag) as its /bin/sh arguments cut them."""
    out: dict[str, tuple[bytes, bytes, str]] = {}
    uids = [c[-1] for c in chain.commands if c[:2] == ["set-option", "-p"]]
    starts = [c for c in chain.commands if c[0] in ("new-window", "split-window")]
    assert len(uids) == len(starts)
    for uid, cmd in zip(uids, starts, strict=True):
        argv = cmd[cmd.index("--") + 1 :]
        assert argv[:4] == ["/bin/sh", "-c", ". start.sh", "tether"]
        off, n, keys_at, keys_n, enter = argv[4:]
        out[uid] = (
            chain.replay[int(off) : int(off) + int(n)],
            chain.replay[int(keys_at) : int(keys_at) + int(keys_n)],
            enter,
        )
    return out


def test_one_window_session_in_order() -> None:
    chain = plan([window("shell", [pane("p1")], active=True)], env={"B": "2", "A": "1"}, plumbing={"T": "x"})
    verbs = [c[0] for c in chain.commands]
    assert verbs == [
        "new-session", "move-window", "set-option", "set-option",
        "set-environment", "set-environment", "set-environment",
        "new-window", "set-option", "set-option", "select-pane", "set-option",
        "kill-window", "select-window",
    ]  # fmt: skip
    new = chain.commands[0]
    assert new[:8] == ["new-session", "-d", "-s", "tether-proj-abc123", "-n", "tether-init", "-x", "200"]
    assert new[-3:] == ["--", "sleep", "86400"]
    # history-limit and the environment are set while only the placeholder exists.
    assert ["set-option", "-t", S, "history-limit", "5000"] in chain.commands
    envs = [c[3:] for c in named(chain, "set-environment")]
    assert envs == [["A", "1"], ["B", "2"], ["T", "x"]]  # the session's sorted, then Tether's own
    nw = named(chain, "new-window")[0]
    assert "-c" not in nw[: nw.index("--")]  # at the root: the client's cwd already
    assert nw[nw.index("-e") + 1] == "TETHER_PANE_ID=p1"
    assert ["set-option", "-p", "-t", f"{S}0.0", PANE_OPTION, "p1"] in chain.commands
    assert chain.commands[-2] == ["kill-window", "-t", f"{S}{PLACEHOLDER_INDEX}"]
    assert chain.commands[-1] == ["select-window", "-t", f"{S}0"]


def test_each_pane_reads_its_own_scrollback_and_keys() -> None:
    chain = plan(
        [
            window("agent", [pane("a", scrollback=["$ ls", "x"], keys="claude --resume 1", enter=True)]),
            window("srv", [pane("b"), pane("c", scrollback=["ü"], keys="npm run dev")]),
        ]
    )
    assert pane_slices(chain) == {
        "a": (b"$ ls\nx\n", b"claude --resume 1", "1"),
        "b": (b"", b"", "0"),
        "c": ("ü\n".encode(), b"npm run dev", "0"),
    }


def test_windows_panes_cwd_layout_zoom_and_active() -> None:
    panes = [pane(f"p{i}", cwd=ROOT if i == 0 else f"/elsewhere/{i}") for i in range(5)]
    chain = plan(
        [
            window("one", [pane("w1")], index=3),
            window(
                "many",
                panes,
                layout="abcd,200x50,0,0{100x50,0,0,1,99x50,101,0,2}",
                zoomed=True,
                active=True,
                active_pane=2,
            ),
            window("next", [pane("w3")]),
        ]
    )
    targets = [c[c.index("-t") + 1] for c in named(chain, "new-window")]
    assert targets == [f"{S}3", f"{S}4", f"{S}5"]  # unnumbered windows after the highest so far
    splits = named(chain, "split-window")
    assert len(splits) == 4 and all(c[2] == f"{S}4" for c in splits)
    assert [c[c.index("-c") + 1] for c in splits] == [f"/elsewhere/{i}" for i in range(1, 5)]
    # A rebalance after every 4th split keeps room for dozens of panes.
    assert named(chain, "select-layout")[0] == ["select-layout", "-t", f"{S}4", "tiled"]
    assert ["select-layout", "-t", f"{S}4", "abcd,200x50,0,0{100x50,0,0,1,99x50,101,0,2}"] in chain.commands
    assert ["select-pane", "-t", f"{S}4.2"] in chain.commands
    assert named(chain, "resize-pane") == [["resize-pane", "-Z", "-t", f"{S}4.2"]]
    assert chain.commands[-1] == ["select-window", "-t", f"{S}4"]


def test_zoom_needs_two_panes_and_the_first_window_is_active_by_default() -> None:
    chain = plan([window("a", [pane("x")], zoomed=True), window("b", [pane("y")])])
    assert named(chain, "resize-pane") == []
    assert chain.commands[-1] == ["select-window", "-t", f"{S}0"]


def test_pane_environment_and_path() -> None:
    chain = plan([window("w", [pane("p", env={"PATH": "/opt/bin:/bin", "FOO": "1"})])])
    nw = named(chain, "new-window")[0]
    given = [nw[i + 1] for i, a in enumerate(nw) if a == "-e"]
    assert given == [
        "PATH=/opt/bin:/bin",
        "FOO=1",
        "TETHER_PANE_ID=p",
        "TETHER_KEEP_PANE_ENV=FOO PATH",
        "TETHER_PANE_PATH=/opt/bin:/bin",
    ]


def test_format_characters_in_names_and_paths_are_escaped() -> None:
    chain = plan([window("#(rm -rf ~)", [pane("p", cwd="/a#b")])], root="/r#(x)")
    new = chain.commands[0]
    assert new[new.index("-c") + 1] == "/r##(x)"
    nw = named(chain, "new-window")[0]
    assert nw[nw.index("-n") + 1] == "##(rm -rf ~)"
    assert nw[nw.index("-c") + 1] == "/a##b"


@pytest.mark.parametrize("panes", [1, 60])
def test_packed_chains_fit_and_keep_every_command_in_order(panes: int) -> None:
    chain = plan([window(f"w{i}", [pane(f"p{i}", cwd=f"/d/{'x' * 80}/{i};")]) for i in range(panes)])
    packed = pack(chain.commands)
    assert all(sum(len(a.encode()) + 1 for a in argv) <= CHAIN_BUDGET for argv in packed)
    assert (len(packed) > 1) == (panes > 1)
    rejoined: list[list[str]] = []
    for argv in packed:
        cmd: list[str] = []
        for a in argv:
            if a == ";":
                rejoined.append(cmd)
                cmd = []
            else:
                cmd.append(a)
        rejoined.append(cmd)
    # A trailing ';' is escaped so that tmux does not end the command there.
    unescape = [[a[:-2] + ";" if a.endswith("\\;") else a for a in c] for c in rejoined]
    assert unescape == chain.commands
