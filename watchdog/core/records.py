"""A fast ``dataclasses.replace`` for the frozen, slotted records of the hot path (pure logic).

Every probe result copies a few frozen records with one or two fields changed (a node's
record has about thirty fields). :func:`dataclasses.replace` walks the class's fields in
Python for each call and then runs the generated ``__init__``, which sets each field through
``object.__setattr__``: most of the cost of folding a healthy result in. :func:`replace` does
the same copy with a function generated once per class, which reads the unchanged fields and
stores every field straight through the class's slot descriptors.

It is :func:`dataclasses.replace` in every way that matters here: a field name the class does
not have, or a positional argument, is a ``TypeError``; the result is a new instance equal to
what :func:`dataclasses.replace` returns. A class it cannot copy that way (not a slotted
dataclass, one with ``__post_init__``, an ``InitVar`` or a field left out of ``__init__``)
goes to :func:`dataclasses.replace` itself. To the type checker :func:`replace` *is*
:func:`dataclasses.replace`, so field names and types are still checked at each call site.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

_Copier = Callable[..., Any]
_copiers: dict[type, _Copier] = {}
_LOCALS = frozenset({"_obj_", "_new_", "_NEW_", "_CLS_", "_UNSET_", "_wrong_"})


def copier(cls: type) -> _Copier:
    """The copy function for ``cls``: ``f(obj, **changes)`` (built on first use)."""
    found = _copiers.get(cls)
    if found is None:
        found = _copiers[cls] = _build(cls)
    return found


def _build(cls: type) -> _Copier:
    """Generate ``cls``'s copy function, or fall back to :func:`dataclasses.replace`."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        return dataclasses.replace
    if hasattr(cls, "__post_init__"):
        return dataclasses.replace  # it must run on the copy: the generated __init__ does that
    every = getattr(cls, "__dataclass_fields__", {})
    fields = dataclasses.fields(cls)
    if len(fields) != len(every) or not all(f.init for f in fields):
        return dataclasses.replace  # an InitVar or a field left out of __init__
    names = [f.name for f in fields]
    if _LOCALS & set(names) or not all(n.isidentifier() for n in names):
        return dataclasses.replace
    setters: dict[str, object] = {}
    for name in names:
        slot = cls.__dict__.get(name)
        if slot is None or not hasattr(slot, "__set__"):
            return dataclasses.replace  # the field's slot is a base class's: keep it simple
        setters[f"_set_{name}"] = slot.__set__
    params = ", ".join(f"{n}=_UNSET_" for n in names)
    body = "".join(f"    _set_{n}(_new_, _obj_.{n} if {n} is _UNSET_ else {n})\n" for n in names)
    src = (
        f"def copy(_obj_, /, *, {params}):\n"
        f"    if type(_obj_) is not _CLS_:\n"
        f"        _wrong_(_obj_, _CLS_)\n"
        f"    _new_ = _NEW_(_CLS_)\n"
        f"{body}"
        f"    return _new_\n"
    )
    scope: dict[str, Any] = {
        "_NEW_": object.__new__,
        "_CLS_": cls,
        "_UNSET_": object(),
        "_wrong_": _wrong,
        **setters,
    }
    exec(compile(src, f"<copy of {cls.__qualname__}>", "exec"), scope)  # noqa: S102
    fn: _Copier = scope["copy"]
    fn.__qualname__ = f"copy_{cls.__qualname__}"
    return fn


def _wrong(obj: object, cls: type) -> None:
    raise TypeError(f"a copy of {type(obj).__qualname__}: not {cls.__qualname__}")


def _replace(obj: Any, /, **changes: Any) -> Any:
    """``dataclasses.replace(obj, **changes)``, through ``type(obj)``'s generated copier."""
    found = _copiers.get(type(obj))
    if found is None:
        found = copier(type(obj))
    return found(obj, **changes)


if TYPE_CHECKING:
    from dataclasses import replace as replace  # the checker sees field names and types
else:
    replace = _replace

__all__ = ["copier", "replace"]
