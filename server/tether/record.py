"""Record classes: the part of :mod:`dataclasses` Tether's service code uses, without its imports.

Agents run the CLI after every tool call. ``import dataclasses`` imports ``inspect`` (and with it
ast, dis, tokenize…): measured here (python 3.11) at about 11 ms per process on top of what the
CLI loads anyway (re, enum, pathlib), as much as the whole ``python -c pass`` the CLI is compared
with; ``typing`` costs about 3.5 ms more. This module generates the same
``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` (frozen), ``__setattr__``/``__delattr__``
(frozen), ``__match_args__`` and ``__slots__`` (``slots=True``) as :func:`dataclasses.dataclass`
with one ``exec`` per class, so constructing an instance costs what a dataclass's does. That
``exec`` runs at the class's first use (its first instance, comparison, hash or repr), not
when the class is made: a CLI process makes dozens of record classes and uses few.

Supported: ``@dataclass``, ``@dataclass(frozen=True, slots=True, eq=..., repr=...)``,
``field(default=..., default_factory=..., compare=..., repr=...)``, :func:`replace`,
:func:`asdict`, :func:`fields` (names), and ``NamedTuple`` (typing's would import typing).
Annotations are read as written (strings under ``from __future__ import annotations``), never
evaluated; ``ClassVar`` ones are not fields.
The language server's typed config (lsp/config.py) keeps the stdlib: it needs field metadata.
"""

from __future__ import annotations

# typing is not imported at run time either: TYPE_CHECKING is this constant.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NamedTuple, TypeVar, dataclass_transform

    _T = TypeVar("_T")
else:

    def dataclass_transform(**_: object) -> Callable[[Any], Any]:
        return lambda f: f


__all__ = ["FrozenInstanceError", "NamedTuple", "asdict", "dataclass", "field", "fields", "replace"]

_FIELDS = "__record_fields__"


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) a field of a frozen record."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Field:
    __slots__ = ("compare", "default", "default_factory", "name", "repr")

    def __init__(self, default: Any, default_factory: Any, compare: bool, repr: bool) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr

    def __repr__(self) -> str:
        return (
            f"Field(name={self.name!r}, default={self.default!r}, default_factory={self.default_factory!r})"
        )


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    compare: bool = True,
    repr: bool = True,
) -> Any:
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, compare, repr)


def _annotations(cls: type) -> dict[str, Any]:
    own = cls.__dict__.get("__annotations__")  # noqa: RUF063  (inspect is what this module avoids)
    if own is None:  # lazily made annotations (3.14): not those a base class would lend
        own = getattr(cls, "__annotations__", None) or {}
        if any(own is getattr(base, "__annotations__", None) for base in cls.__mro__[1:]):
            own = {}
    return dict(own)


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "_name", None) or ""
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _collect(cls: type) -> dict[str, Field]:
    found: dict[str, Field] = {}
    for base in cls.__mro__[-1:0:-1]:
        found.update(getattr(base, _FIELDS, None) or {})
    for name, annotation in _annotations(cls).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else Field(value, MISSING, True, True)
        if f.default is not MISSING and type(f.default).__hash__ is None:
            raise ValueError(
                f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory"
            )
        f.name = name
        found[name] = f
    return found


def _process(cls: type, frozen: bool, slots: bool, eq: bool, repr: bool) -> type:
    found = _collect(cls)
    names = tuple(found)
    own = [n for n in _annotations(cls) if n in found]
    # Class attributes stay the defaults (as with dataclasses); a factory leaves none.
    for name in own:
        f = found[name]
        if f.default is MISSING:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, f.default)
    if slots and "__slots__" not in cls.__dict__:
        cls = _with_slots(cls, own)

    body = cls.__dict__
    self_name = "__record_self__" if "self" in found else "self"
    ns: dict[str, Any] = {"MISSING": MISSING, "__setattr": object.__setattr__}
    params: list[str] = []
    lines: list[str] = []
    seen_default = False
    for name in names:
        f = found[name]
        if f.default is not MISSING:
            ns[f"__dflt_{name}"] = f.default
            params.append(f"{name}=__dflt_{name}")
            value = name
        elif f.default_factory is not MISSING:
            ns[f"__fact_{name}"] = f.default_factory
            params.append(f"{name}=MISSING")
            value = f"__fact_{name}() if {name} is MISSING else {name}"
        else:
            if seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
            params.append(name)
            value = name
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        if frozen:
            lines.append(f"  __setattr({self_name}, {name!r}, {value})")
        else:
            lines.append(f"  {self_name}.{name} = {value}")
    if hasattr(cls, "__post_init__"):
        lines.append(f"  {self_name}.__post_init__()")
    src = [f"def __init__({', '.join([self_name, *params])}):", *(lines or ["  pass"])]

    compared = [n for n in names if found[n].compare]
    mine = "(" + "".join(f"self.{n}," for n in compared) + ")"
    theirs = "(" + "".join(f"other.{n}," for n in compared) + ")"
    if eq:
        src += [
            "def __eq__(self, other):",
            "  if other.__class__ is self.__class__:",
            f"    return {mine} == {theirs}",
            "  return NotImplemented",
        ]
    if repr:
        shown = ", ".join(f"{n}={{self.{n}!r}}" for n in names if found[n].repr)
        src += ["def __repr__(self):", f'  return f"{{self.__class__.__qualname__}}({shown})"']
    if frozen:
        src += ["def __hash__(self):", f"  return hash({mine})"]
    # The methods are compiled when the class is first used, not when it is made: compiling
    # costs ~0.2 ms a class, and a CLI process makes dozens of classes it never instantiates.
    wanted = ["__init__", *(["__repr__"] if repr else []), *(["__eq__"] if eq else [])]
    wanted = [name for name in wanted if name not in body]
    # dataclasses' rule: a class's own __hash__ wins, else eq without frozen is unhashable.
    explicit_hash = "__hash__" in body and not (body["__hash__"] is None and "__eq__" in body)
    if not explicit_hash:
        if frozen and eq:
            wanted.append("__hash__")
        elif eq:
            cls.__hash__ = None  # type: ignore[assignment]
    _install_lazily(cls, "\n".join(src), ns, wanted)
    if frozen:
        _freeze(cls, frozenset(names))
    setattr(cls, _FIELDS, found)
    if "__match_args__" not in body:
        cls.__match_args__ = names  # type: ignore[attr-defined,misc]
    return cls


def _install_lazily(cls: type, source: str, ns: dict[str, Any], wanted: list[str]) -> None:
    """Put a stand-in for each method in ``wanted`` on ``cls``: the first call of any of them
    compiles ``source`` (which defines them all) and puts the real methods in their place."""
    done: list[bool] = []

    def real(name: str) -> Any:
        if not done:
            exec(source, ns)
            for method in wanted:
                value = ns[method]
                value.__qualname__ = f"{cls.__qualname__}.{method}"
                setattr(cls, method, value)
            done.append(True)
        return ns[name]

    def stand_in(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return real(name)(self, *args, **kwargs)

        method.__name__ = name
        method.__qualname__ = f"{cls.__qualname__}.{name}"
        return method

    for name in wanted:
        setattr(cls, name, stand_in(name))


def _with_slots(cls: type, own: list[str]) -> type:
    body = dict(cls.__dict__)
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    for name in own:
        body.pop(name, None)
    inherited = {s for base in cls.__mro__[1:] for s in base.__dict__.get("__slots__", ())}
    body["__slots__"] = tuple(n for n in own if n not in inherited)
    new = type(cls)(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__
    # Methods that call super() hold the original class in their __class__ cell.
    for value in body.values():
        function = getattr(value, "__func__", value)
        for cell in getattr(function, "__closure__", None) or ():
            if cell.cell_contents is cls:
                cell.cell_contents = new
    return new


def _freeze(cls: type, names: frozenset[str]) -> None:
    if "__setattr__" in cls.__dict__ or "__delattr__" in cls.__dict__:
        raise TypeError(f"cannot overwrite __setattr__ or __delattr__ in frozen {cls.__name__}")

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)  # type: ignore[arg-type]

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)  # type: ignore[arg-type]

    for method in (__setattr__, __delattr__):
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
    if "__slots__" in cls.__dict__ and "__getstate__" not in cls.__dict__:
        # copy and pickle restore slots with setattr, which a frozen record refuses.
        def __getstate__(self: Any) -> list[Any]:
            return [getattr(self, n) for n in names_in_order]

        def __setstate__(self: Any, state: list[Any]) -> None:
            for n, v in zip(names_in_order, state, strict=True):
                object.__setattr__(self, n, v)

        names_in_order = tuple(_collect_names(cls))
        cls.__getstate__ = __getstate__  # type: ignore[method-assign,assignment]
        cls.__setstate__ = __setstate__  # type: ignore[attr-defined]


def _collect_names(cls: type) -> list[str]:
    names: list[str] = []
    for base in cls.__mro__[::-1]:
        names.extend(s for s in base.__dict__.get("__slots__", ()) if s not in names)
    return names


@dataclass_transform(field_specifiers=(field,))
def dataclass(
    cls: type[_T] | None = None,
    /,
    *,
    frozen: bool = False,
    slots: bool = False,
    eq: bool = True,
    repr: bool = True,
) -> Any:
    """Make ``cls`` a record, as :func:`dataclasses.dataclass` with the same arguments would."""

    def wrap(c: type[_T]) -> type[_T]:
        return _process(c, frozen, slots, eq, repr)

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> tuple[str, ...]:
    """The field names of a record class or instance, in order."""
    found = getattr(obj, _FIELDS, None)
    if found is None:
        raise TypeError(f"not a record: {obj!r}")
    return tuple(found)


def replace(obj: _T, /, **changes: Any) -> _T:
    """A new record with ``changes`` applied, as :func:`dataclasses.replace`."""
    found = getattr(type(obj), _FIELDS, None)
    if found is None:
        raise TypeError("replace() should be called on record instances")
    for name in found:
        if name not in changes:
            changes[name] = getattr(obj, name)
    return type(obj)(**changes)


def asdict(obj: Any) -> dict[str, Any]:
    """The record as a dict, recursing into records, lists, tuples and dicts (copied), as
    :func:`dataclasses.asdict` does."""
    if getattr(type(obj), _FIELDS, None) is None:
        raise TypeError("asdict() should be called on record instances")
    import copy

    def inner(value: Any) -> Any:
        if getattr(type(value), _FIELDS, None) is not None:
            return {n: inner(getattr(value, n)) for n in getattr(type(value), _FIELDS)}
        if isinstance(value, tuple) and hasattr(value, "_fields"):
            return type(value)(*[inner(v) for v in value])
        if isinstance(value, list | tuple):
            return type(value)(inner(v) for v in value)
        if isinstance(value, dict):
            return type(value)((inner(k), inner(v)) for k, v in value.items())
        return copy.deepcopy(value)

    return inner(obj)  # type: ignore[no-any-return]


class _NamedTupleMeta(type):
    # As typing.NamedTupleMeta: the class statement makes a collections.namedtuple from the
    # annotations (trailing ones with a value are its defaults) and keeps the class's methods.
    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any]) -> Any:
        if not bases:
            return super().__new__(mcs, name, bases, ns)
        import collections

        names = list(ns.get("__annotations__", {}))
        defaults = [ns[n] for n in names if n in ns]
        if any(n not in ns for n in names[len(names) - len(defaults) :]):
            raise TypeError(f"non-default namedtuple field follows default field in {name}")
        made = collections.namedtuple(name, names, defaults=defaults, module=ns["__module__"])  # type: ignore[misc]
        made.__annotations__ = dict(ns.get("__annotations__", {}))
        for key, value in ns.items():
            if key in ("__module__", "__annotations__", "__slots__") or key in names:
                continue
            if key in ("_make", "_asdict", "_replace", "_fields", "__new__", "__init__", "__getnewargs__"):
                raise AttributeError(f"cannot overwrite NamedTuple attribute {key}")
            setattr(made, key, value)
        return made


if not TYPE_CHECKING:
    # mypy sees typing.NamedTuple (imported above); at run time, the class statement's base.
    class NamedTuple(metaclass=_NamedTupleMeta):
        pass
