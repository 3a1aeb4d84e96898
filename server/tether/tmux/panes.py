"""Live pane metadata from one ``list-panes -a -F`` call: the fields read, their parser, and the
markers that cut a chained capture's output into sections."""

from __future__ import annotations

import logging

from tether.record import dataclass

log = logging.getLogger(__name__)

PANE_OPTION = "@tether_pane"


# Format fields read for every pane, in one list-panes call. Untrusted free text (cwd, window name)
# comes last so a stray separator inside them is detected by the field count.
FIELDS = (
    "session_name",
    "window_index",
    "window_layout",
    "window_zoomed_flag",
    "window_active",
    "window_width",
    "window_height",
    "window_activity",
    "pane_id",
    "pane_index",
    "pane_active",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "pane_width",
    "pane_height",
    "history_size",
    "cursor_x",
    "cursor_y",
    PANE_OPTION,
    "pane_current_path",
    "window_name",
)


SEP = "\x1f"


LIST_FORMAT = SEP.join(f"#{{{f}}}" for f in FIELDS)


@dataclass
class PaneInfo:
    """One row of the ``list-panes -a -F`` call: live pane metadata."""

    session: str
    window_index: int
    layout: str
    zoomed: bool
    window_active: bool
    window_width: int
    window_height: int
    pane_id: str
    pane_index: int
    pane_active: bool
    pane_pid: int
    dead: bool
    dead_status: int | None
    width: int
    height: int
    history_size: int
    uid: str
    cwd: str
    window_name: str


def parse_rows(text: str) -> list[PaneInfo]:
    rows: list[PaneInfo] = []
    for line in text.splitlines():
        parts = line.split(SEP)
        if len(parts) != len(FIELDS):
            log.warning("tmux: skipping a pane line with %d fields (separator in a name?)", len(parts))
            continue
        f = dict(zip(FIELDS, parts, strict=True))
        try:
            rows.append(
                PaneInfo(
                    session=f["session_name"],
                    window_index=int(f["window_index"]),
                    layout=f["window_layout"],
                    zoomed=f["window_zoomed_flag"] == "1",
                    window_active=f["window_active"] == "1",
                    window_width=int(f["window_width"]),
                    window_height=int(f["window_height"]),
                    pane_id=f["pane_id"],
                    pane_index=int(f["pane_index"]),
                    pane_active=f["pane_active"] == "1",
                    pane_pid=int(f["pane_pid"] or 0),
                    dead=f["pane_dead"] == "1",
                    dead_status=int(f["pane_dead_status"]) if f["pane_dead_status"] else None,
                    width=int(f["pane_width"]),
                    height=int(f["pane_height"]),
                    history_size=int(f["history_size"] or 0),
                    uid=f[PANE_OPTION],
                    cwd=f["pane_current_path"],
                    window_name=f["window_name"],
                )
            )
        except ValueError:
            log.warning("tmux: skipping an unparsable pane line")
    return rows


def split_sections(out: str, nonce: str) -> dict[str, list[str]]:
    """Cut the chained output at the marker lines (plain string splits: 50k lines in a few ms)."""
    sections: dict[str, list[str]] = {}
    for part in ("\n" + out).split(f"\n@@tether-{nonce}-")[1:]:
        name, sep, body = part.partition("@@\n")
        if not sep:  # marker on the last line, nothing after it
            name, body = part.rstrip("\n").removesuffix("@@"), ""
        lines = body.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        sections[name] = lines
    return sections
