"""A marked block of lines Tether owns inside a user's text file (CLAUDE.md, AGENTS.md, a git
hook): added at the end, replaced in place, removed with the blank line that set it apart."""

from __future__ import annotations

BEGIN = "tether:begin"
END = "tether:end"


class BlockError(ValueError):
    pass


def markers(comment: str) -> tuple[str, str]:
    """The begin/end lines for a comment style: ``"<!-- %s -->"`` or ``"# %s"``."""
    return (
        comment % f"{BEGIN} (written by `tether setup`; `tether setup --remove` takes it out)",
        comment % END,
    )


def _find(text: str, begin: str, end: str) -> tuple[int, int] | None:
    b = text.find(begin)
    if b < 0:
        return None
    b = text.rfind("\n", 0, b) + 1
    e = text.find(end, b)
    if e < 0:
        raise BlockError(f"found {BEGIN!r} without its {END!r} line")
    nl = text.find("\n", e)
    return b, (len(text) if nl < 0 else nl + 1)


def set_block(text: str, body: str | None, comment: str) -> str:
    """``text`` with Tether's block holding ``body`` (None: the block removed)."""
    begin, end = markers(comment)
    begin_key, end_key = comment % BEGIN, comment % END
    begin_key = begin_key[: begin_key.index(BEGIN) + len(BEGIN)]
    span = _find(text, begin_key, end_key)
    block = "" if body is None else f"{begin}\n{body.rstrip(chr(10))}\n{end}\n"
    if span is not None:
        start, stop = span
        if body is None:
            head, tail = text[:start], text[stop:]
            if head.endswith("\n\n") and (not tail or tail.startswith("\n")):
                head = head[:-1]
            return head + tail
        return text[:start] + block + text[stop:]
    if body is None:
        return text
    if not text:
        return block
    sep = "\n" if text.endswith("\n") else "\n\n"
    return text + sep + block
