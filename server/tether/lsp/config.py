"""Typed configuration for the language server.

On the wire (``initializationOptions`` and the ``tether`` section of ``workspace/configuration``)
keys are camelCase; here they are snake_case dataclass fields. Parsing never fails: a bad value
produces a warning naming the key and the default that is used instead, so a typo in a user's
settings degrades to defaults rather than a server that does not start.

Editor settings can come from a file in the repository (``.vscode/settings.json``), so what
picks where Tether writes or what it attaches to (:data:`USER_ONLY`) is never taken from them:
those keys are dropped with a warning. ``state_dir`` is set from ``tether --state-dir`` only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast, get_type_hints

from tether.scan.result import DEFAULT_MAX_FILE_BYTES

T = TypeVar("T")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Wire keys that choose where Tether writes or which tmux server it attaches to, and where the
# user sets them instead. Dropped from editor settings with a warning.
USER_ONLY: dict[tuple[str, ...], str] = {
    ("stateDir",): "set $TETHER_STATE_DIR (or `tether --state-dir`) instead",
    ("tmux", "socketPath"): "set $TETHER_TMUX_SOCKET or tmux.socketPath in your own Tether config instead",
}


@dataclass(frozen=True)
class TmuxSettings:
    enabled: bool = True
    scrollback_lines: int = field(default=2000, metadata={"min": 0, "max": 1_000_000})
    # The whole wire object, for the tmux link's own options (windows, historyLines, ...).
    wire: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Config:
    checkpoint_interval_seconds: float = field(default=600.0, metadata={"min": 0, "max": 7 * 86400})
    save_debounce_ms: int = field(default=750, metadata={"min": 0, "max": 60_000})
    buffer_journal_debounce_ms: int = field(default=1000, metadata={"min": 0, "max": 60_000})
    # A stream of saves still gets a checkpoint at least this often.
    save_max_delay_ms: int = field(default=5000, metadata={"min": 0, "max": 600_000})
    max_file_bytes: int = field(default=DEFAULT_MAX_FILE_BYTES, metadata={"min": 1, "max": 1 << 34})
    status_min_interval_ms: int = field(default=250, metadata={"min": 0, "max": 60_000})
    watcher: bool = True
    watcher_debounce_ms: int = field(default=500, metadata={"min": 0, "max": 60_000})
    baseline_scan: bool = True
    resume_max_files: int = field(default=30, metadata={"min": 0, "max": 1000})
    tmux: TmuxSettings = field(default_factory=TmuxSettings)
    state_dir: str | None = None

    @classmethod
    def from_wire(cls, data: object) -> tuple[Config, list[str]]:
        """Parse camelCase options; unknown keys are ignored, bad values fall back with a warning."""
        return cls().merged(data)

    def merged(self, data: object, source: str = "initializationOptions") -> tuple[Config, list[str]]:
        """This config with the keys present in ``data`` replaced (e.g. workspace configuration)."""
        warnings: list[str] = []
        if data is None:
            return self, warnings
        mapping = _as_mapping(data)
        if mapping is None:
            warnings.append(f"Tether: {source} must be an object, got {_kind(data)}; using defaults")
            return self, warnings
        return _merge(self, _drop_user_only(mapping, source, warnings), source, warnings), warnings

    def to_wire(self) -> dict[str, Any]:
        return _to_wire(self)


def _drop_user_only(data: Mapping[str, Any], source: str, warnings: list[str]) -> Mapping[str, Any]:
    out = dict(data)
    for keys, instead in USER_ONLY.items():
        holder: Any = out
        for k in keys[:-1]:
            sub = holder.get(k) if isinstance(holder, Mapping) else None
            if not isinstance(sub, Mapping):
                holder = None
                break
            holder[k] = sub = dict(sub)
            holder = sub
        if isinstance(holder, dict) and keys[-1] in holder:
            value = holder.pop(keys[-1])
            if value is not None:
                name = ".".join(keys)
                warnings.append(
                    f"Tether: ignoring {name} from {source}: editor settings can come from a file in "
                    f"the repository and must not choose where Tether writes or what it attaches to; "
                    f"{instead}"
                )
    return out


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _plain(value: Any) -> Any:
    """pygls hands unknown JSON objects over as namedtuples (nested too): back to dicts/lists."""
    asdict = getattr(value, "_asdict", None)
    if callable(asdict):
        value = asdict()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _as_mapping(value: object) -> Mapping[str, Any] | None:
    out = _plain(value)
    return out if isinstance(out, Mapping) else None


def _merge(obj: T, data: Mapping[str, Any], prefix: str, warnings: list[str]) -> T:
    hints = get_type_hints(type(obj))
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        if f.name == "wire":
            continue
        key = camel(f.name)
        if key not in data:
            continue
        raw = data[key]
        path = f"{prefix}.{key}"
        current = getattr(obj, f.name)
        hint = hints[f.name]
        if dataclasses.is_dataclass(current):
            sub = _as_mapping(raw)
            if sub is None:
                warnings.append(f"Tether: {path} must be an object, got {_kind(raw)}; using defaults")
                continue
            merged: Any = _merge(current, sub, path, warnings)
            if isinstance(merged, TmuxSettings):
                merged = dataclasses.replace(merged, wire=dict(sub))
            changes[f.name] = merged
            continue
        ok, value, why = _coerce(raw, hint, f.metadata)
        if ok:
            changes[f.name] = value
        else:
            default = f.default if f.default is not dataclasses.MISSING else current
            warnings.append(f"Tether: {path} {why}; using {default!r}")
    return cast(T, dataclasses.replace(cast(Any, obj), **changes)) if changes else obj


def _coerce(raw: Any, hint: Any, meta: Mapping[str, Any]) -> tuple[bool, Any, str]:
    optional = hint in (str | None, int | None, float | None)
    if raw is None:
        return (True, None, "") if optional else (False, None, "must not be null")
    if hint is bool:
        if isinstance(raw, bool):
            return True, raw, ""
        return False, None, f"must be true or false, got {_kind(raw)}"
    if hint in (int, float, int | None, float | None):
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return False, None, f"must be a number, got {_kind(raw)}"
        if math.isnan(raw) or raw in (float("inf"), float("-inf")):
            return False, None, "must be a finite number"
        want_int = hint in (int, int | None)
        if want_int and float(raw) != int(raw):
            return False, None, f"must be a whole number, got {raw!r}"
        value: int | float = int(raw) if want_int else float(raw)
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and value < lo:
            return False, None, f"must be at least {lo}, got {raw!r}"
        if hi is not None and value > hi:
            return False, None, f"must be at most {hi}, got {raw!r}"
        return True, value, ""
    if hint in (str, str | None):
        if not isinstance(raw, str):
            return False, None, f"must be a string, got {_kind(raw)}"
        if "\x00" in raw:
            return False, None, "must not contain NUL bytes"
        return True, raw, ""
    return False, None, "has an unsupported type"


def _to_wire(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name == "wire":
            continue
        value = getattr(obj, f.name)
        out[camel(f.name)] = _to_wire(value) if dataclasses.is_dataclass(value) else value
    return out
