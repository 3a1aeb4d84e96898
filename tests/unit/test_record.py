"""tether.record behaves as the stdlib's dataclasses (and typing.NamedTuple) for what Tether uses:
each check runs the same class body under both and compares."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import typing
from collections.abc import Callable
from typing import Any

import pytest

from tether import record
from tether.model import FileChange, StatEntry
from tether.scan.ignore import Pattern

Maker = Callable[..., Any]
BOTH = pytest.mark.parametrize("lib", [dataclasses, record], ids=["dataclasses", "record"])


def plain(lib: Any) -> type:
    @lib.dataclass
    class Plain:
        name: str
        count: int = 0
        tags: list[str] = lib.field(default_factory=list)
        hidden: str = lib.field(default="h", repr=False, compare=False)
        limit: typing.ClassVar[int] = 5  # not a field

    return Plain


def frozen(lib: Any, slots: bool = False) -> type:
    @lib.dataclass(frozen=True, slots=slots)
    class Frozen:
        path: str
        size: int = 1
        parts: tuple[str, ...] = ()

        def double(self) -> int:
            return self.size * 2

    return Frozen


ATTRS = ("name", "count", "tags", "hidden", "path", "size", "parts")


def shown(value: Any) -> Any:
    return type(value).__name__ if type(value).__name__ == "member_descriptor" else value


def observe(lib: Any, cls: type, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """What a caller can see of an instance, in a form both libraries can be compared with."""
    obj = cls(*args, **kwargs)
    name = cls.__qualname__
    return {
        "repr": repr(obj).replace(name, "X"),
        "eq_same": obj == cls(*args, **kwargs),
        "eq_tuple": obj == tuple(vars(obj).values()) if hasattr(obj, "__dict__") else None,
        "hashable": cls.__hash__ is not None,
        "match_args": cls.__match_args__,  # type: ignore[attr-defined]
        "fields": tuple(f.name for f in dataclasses.fields(cls))
        if lib is dataclasses
        else record.fields(cls),
        "class_attrs": {
            k: shown(cls.__dict__.get(k, "-")) for k in ("name", "count", "tags", "path", "size")
        },
    }


def test_plain_records_look_like_dataclasses() -> None:
    for args in (("a",), ("a", 3), ("a", 3, ["x"])):
        assert observe(dataclasses, plain(dataclasses), *args) == observe(record, plain(record), *args)
    assert observe(dataclasses, plain(dataclasses), "a", hidden="z") == observe(
        record, plain(record), "a", hidden="z"
    )


@pytest.mark.parametrize("slots", [False, True])
def test_frozen_records_look_like_dataclasses(slots: bool) -> None:
    for args in (("p",), ("p", 2), ("p", 2, ("a", "b"))):
        ours = observe(record, frozen(record, slots), *args)
        assert observe(dataclasses, frozen(dataclasses, slots), *args) == ours


@BOTH
def test_a_default_factory_gives_each_instance_its_own(lib: Any) -> None:
    cls = plain(lib)
    a, b = cls("a"), cls("b")
    a.tags.append("x")
    assert b.tags == []
    assert cls("c", tags=a.tags).tags is a.tags  # a given value is kept, not copied


@BOTH
def test_equality_is_same_class_and_compared_fields(lib: Any) -> None:
    cls = plain(lib)
    assert cls("a", hidden="1") == cls("a", hidden="2")  # compare=False
    assert cls("a") != cls("a", 1)
    other = plain(lib)  # same body, another class
    assert cls("a") != other("a")
    assert (cls("a") == "a") is False
    with pytest.raises(TypeError):
        hash(cls("a"))  # eq without frozen: unhashable


@BOTH
@pytest.mark.parametrize("slots", [False, True])
def test_frozen_assignment_and_deletion_fail_as_attribute_errors(lib: Any, slots: bool) -> None:
    obj = frozen(lib, slots)("p")
    with pytest.raises(AttributeError, match="cannot assign to field 'size'"):
        obj.size = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del obj.path
    with pytest.raises(lib.FrozenInstanceError):
        obj.size = 4  # type: ignore[misc]
    assert obj.size == 1


@BOTH
def test_frozen_hash_follows_the_fields(lib: Any) -> None:
    cls = frozen(lib)
    assert hash(cls("p", 2)) == hash(cls("p", 2)) == hash(("p", 2, ()))
    assert len({cls("p"), cls("p"), cls("q")}) == 2


@BOTH
def test_slots_leave_no_instance_dict(lib: Any) -> None:
    cls = frozen(lib, slots=True)
    obj = cls("p")
    assert cls.__slots__ == ("path", "size", "parts")  # type: ignore[attr-defined]
    assert not hasattr(obj, "__dict__")
    assert obj.double() == 2


def test_slots_and_frozen_survive_copy_and_pickle() -> None:
    obj = FileChange("a.txt", b"x", 0o600)  # pickled by name: module-level records
    assert copy.copy(obj) == obj and copy.deepcopy(obj) == obj
    assert pickle.loads(pickle.dumps(obj)) == obj
    pattern = Pattern(1, "*.o", False, False, True, r".*\.o")
    assert pickle.loads(pickle.dumps(pattern)) == pattern


@BOTH
def test_replace_makes_a_new_instance_with_changes(lib: Any) -> None:
    cls = frozen(lib)
    a = cls("p", 2, ("x",))
    b = lib.replace(a, size=5)
    assert (b.path, b.size, b.parts) == ("p", 5, ("x",)) and a.size == 2
    with pytest.raises(TypeError):
        lib.replace(a, nope=1)
    with pytest.raises(TypeError):
        lib.replace(object())


def test_asdict_recurses_as_the_stdlib_does() -> None:
    def build(lib: Any) -> Any:
        inner = frozen(lib)
        outer = plain(lib)
        obj = outer("o", tags=[inner("p")])  # a record inside a list
        return obj, lib.asdict(obj)

    (ours, got), (_, expected) = build(record), build(dataclasses)
    assert (
        got
        == expected
        == {"name": "o", "count": 0, "tags": [{"path": "p", "size": 1, "parts": ()}], "hidden": "h"}
    )
    assert got["tags"] is not ours.tags  # copied


@BOTH
def test_bad_class_bodies_are_refused(lib: Any) -> None:
    with pytest.raises(ValueError):

        @lib.dataclass
        class Shared:
            items: list[str] = []

    with pytest.raises(TypeError):

        @lib.dataclass
        class Order:
            a: int = 1
            b: int  # type: ignore[misc]


def test_a_class_body_method_wins_and_post_init_runs() -> None:
    @record.dataclass
    class Own:
        a: int
        seen: list[int] = record.field(default_factory=list)

        def __repr__(self) -> str:
            return "own"

        def __post_init__(self) -> None:
            self.seen.append(self.a)

    assert repr(Own(1)) == "own" and Own(2).seen == [2]


def test_named_tuples_look_like_typings() -> None:
    class Theirs(typing.NamedTuple):
        """Doc."""

        a: str
        b: int = 0

        def twice(self) -> int:
            return self.b * 2

    class Ours(record.NamedTuple):
        """Doc."""

        a: str
        b: int = 0

        def twice(self) -> int:
            return self.b * 2

    for cls in (Theirs, Ours):
        x = cls("s", 3)
        assert x == ("s", 3) and x.twice() == 6 and cls("s").b == 0
        assert x._replace(b=1) == ("s", 1) and x._asdict() == {"a": "s", "b": 3}
        assert cls.__doc__ == "Doc." and cls._fields == ("a", "b")
        assert cls.__qualname__.endswith(f"<locals>.{cls.__name__}")
    entry = StatEntry("p", "h", 0o644, 1, 2, 3)
    assert pickle.loads(pickle.dumps(entry)) == entry and entry.mtime_ns == 2


# --- methods compiled at first use ---------------------------------------------------------


def test_methods_are_compiled_at_first_use_once_per_class() -> None:
    cls = frozen(record)
    stand_in = cls.__dict__["__init__"]
    assert cls.__dict__["__hash__"] is not None  # a stand-in until then
    a = cls("a", 2)
    compiled = cls.__dict__["__init__"]
    assert compiled is not stand_in and compiled.__qualname__ == stand_in.__qualname__
    b = cls("a", 2)
    assert cls.__dict__["__init__"] is compiled  # not compiled again
    assert a == b and hash(a) == hash(b) and repr(a) == "frozen.<locals>.Frozen(path='a', size=2, parts=())"


def test_any_method_may_be_the_first_used() -> None:
    """An instance made without __init__ (copy, pickle, __new__) reaches the others first."""
    for first in ("repr", "eq", "hash"):
        cls = frozen(record, slots=True)
        obj = cls.__new__(cls)
        for name, value in (("path", "p"), ("size", 3), ("parts", ())):
            object.__setattr__(obj, name, value)
        if first == "repr":
            assert repr(obj).endswith("Frozen(path='p', size=3, parts=())")
        elif first == "eq":
            assert obj == cls("p", 3)
        else:
            assert hash(obj) == hash(cls("p", 3))


def test_a_subclass_and_threads_use_the_compiled_methods() -> None:
    import threading

    base = plain(record)

    @record.dataclass
    class Child(base):  # type: ignore[valid-type,misc]
        extra: int = 7

    kid = Child("k")  # the base's methods are compiled by the child's first use
    assert (kid.name, kid.count, kid.extra) == ("k", 0, 7)
    fresh = plain(record)
    made: list[Any] = []
    gate = threading.Barrier(8)

    def make(i: int) -> None:
        gate.wait(5)
        made.append(fresh(f"n{i}", i))

    threads = [threading.Thread(target=make, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted((m.name, m.count) for m in made) == [(f"n{i}", i) for i in range(8)]
