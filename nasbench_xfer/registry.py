"""One registry type for every pluggable kind: optimizers, predictors, spaces, protocols,
importers and surrogate models.

A :class:`Registry` maps names to objects (classes, factories or values).  Entries come
from three places, looked up in this order:

1. built-ins, registered with :meth:`Registry.register` (also as a decorator) or, for
   those whose import is heavy (torch), with :meth:`Registry.lazy` as a ``"module:attr"``
   path that is imported on first use;
2. installed plugins: the entry-point group ``nasbench_xfer.<kind>`` (for example
   ``[project.entry-points."nasbench_xfer.optimizers"] my-opt = "my_pkg.opt:MyOpt"``);
3. for kinds that allow it, a ``"module:attr"`` path given directly as the name.

``list(pattern)`` filters names with a shell-style glob, ``describe()`` gives each
entry's one-line documentation (the first line of its docstring), and an unknown name
raises the kind's own error class with the message ``unknown <kind> 'x'; known: ...``.
``nasbench-xfer list <kind>`` prints them.  A registry is a read-only mapping, so
``dict(PROTOCOLS)`` or ``for name, value in SURROGATE_MODELS.items()`` work as they did
when these were plain dicts.
"""
from __future__ import annotations

import builtins
import fnmatch
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: entry-point groups are "nasbench_xfer." + the registry's group name
ENTRY_POINT_PREFIX = "nasbench_xfer."


class RegistryError(ValueError):
    """A name is unknown, registered twice, or its plugin cannot be loaded."""


@dataclass(frozen=True)
class Entry:
    """One registered name: where it comes from and what it is."""

    name: str
    #: "builtin", "plugin (<distribution>)" or "path"
    origin: str
    #: first line of the object's docstring (or the doc given at registration)
    doc: str


def first_line(obj: Any) -> str:
    """First non-empty line of ``obj``'s docstring (its own, else its class's), or ""."""
    doc = getattr(obj, "__doc__", None) or ""
    if not doc and not isinstance(obj, type):
        doc = type(obj).__doc__ or ""
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def load_path(path: str, error: type[Exception] = RegistryError, what: str = "object") -> Any:
    """The attribute named by a ``"module:attr"`` path (``error`` naming the problem otherwise)."""
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise error(f"{path!r} is not a 'module:attr' path")
    try:
        obj: Any = _import_here_too(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise error(f"cannot load {what} {path!r}: {exc}") from None
    return obj


def _import_here_too(module: str) -> Any:
    """``importlib.import_module``, also finding modules of the current directory: an installed
    console script (``nasbench-xfer``) does not put it on ``sys.path`` as ``python -m`` does, and
    ``-O mine:MyOptimizer`` with ``mine.py`` beside the user is what the README shows."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        here = os.getcwd()
        top = module.split(".")[0]
        if exc.name != top or here in sys.path or "" in sys.path:
            raise
        sys.path.append(here)
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc2:
            sys.path.remove(here)
            if exc2.name == top:
                raise ModuleNotFoundError(f"no module named {top!r} (looked on sys.path and in "
                                          f"the current directory {here})", name=top) from None
            raise


class Registry(Mapping[str, T], Generic[T]):
    """Names -> objects of one kind (see the module docstring).

    ``kind`` names the kind in messages ("optimizer"); ``group`` is the plural used for
    the entry-point group and ``nasbench-xfer list`` ("optimizers"); ``error`` is the
    exception class raised for unknown or bad names (a subclass of the kind's own error
    keeps existing ``except`` clauses working); ``paths=True`` also accepts
    ``"module:attr"`` names; ``check(name, obj)`` validates an object when it is loaded
    (raise ``error`` to refuse it); ``describe_obj(obj)`` overrides the one-line doc.
    """

    def __init__(self, kind: str, group: str, *, error: type[Exception] = RegistryError,
                 paths: bool = False, check: Callable[[str, Any], None] | None = None,
                 describe_obj: Callable[[Any], str] | None = None) -> None:
        self.kind = kind
        self.group = group
        self.error = error
        self.paths = paths
        self._check = check
        self._describe_obj = describe_obj or first_line
        self._objects: dict[str, Any] = {}
        self._lazy: dict[str, str] = {}
        self._docs: dict[str, str] = {}
        self._order: list[str] = []  # registration order of built-ins (objects and lazy paths)

    # ------------------------------------------------------------ registration
    def register(self, obj: Any = None, *, name: str | None = None, doc: str | None = None) -> Any:
        """Register ``obj`` under ``name`` (default: its ``name`` attribute, else ``__name__``).

        Usable directly (``reg.register(obj, name="x")``) or as a decorator
        (``@reg.register`` or ``@reg.register(name="x")``); returns ``obj``.  Registering a
        name again with an equal object is a no-op; with a different one, an error.
        """
        if obj is None:
            return lambda o: self.register(o, name=name, doc=doc)
        key = name or getattr(obj, "name", None) or getattr(obj, "__name__", None)
        if not isinstance(key, str) or not key:
            raise self.error(f"cannot register {obj!r} as a {self.kind}: give it a name")
        if key in self._lazy or (key in self._objects and self._objects[key] != obj):
            raise self.error(f"{self.kind} {key!r} is already registered (as something else)")
        self._objects[key] = obj
        self._remember(key, doc)
        return obj

    def lazy(self, name: str, path: str, doc: str | None = None) -> None:
        """Register a built-in by ``"module:attr"`` path, imported when first used."""
        if name in self._objects or (name in self._lazy and self._lazy[name] != path):
            raise self.error(f"{self.kind} {name!r} is already registered (as something else)")
        self._lazy[name] = path
        self._remember(name, doc)

    def _remember(self, name: str, doc: str | None) -> None:
        """Keep ``name``'s place in the registration order and its one-line doc, if given."""
        if name not in self._order:
            self._order.append(name)
        if doc is not None:
            self._docs[name] = doc

    # ------------------------------------------------------------------ lookup
    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_PREFIX + self.group)}

    def get(self, name: str, default: Any = None) -> T:
        """The object registered as ``name`` (see the module docstring for the lookup order).

        Unlike ``dict.get``, an unknown name is an error (``default`` is accepted for the
        ``Mapping`` signature and ignored): a misspelt name must never pass silently."""
        if not isinstance(name, str):
            raise self.error(f"{self.kind} name must be a string, got {type(name).__name__}")
        if name in self._objects:
            obj = self._objects[name]
        elif name in self._lazy:
            obj = load_path(self._lazy[name], self.error, self.kind)
            self._objects[name] = obj
            del self._lazy[name]
        elif name in (eps := self._entry_points()):
            try:
                obj = eps[name].load()
            except Exception as exc:  # a broken plugin must not take the package down
                raise self.error(f"{self.kind} plugin {name!r} failed to load: {exc}") from None
        elif self.paths and ":" in name:
            obj = load_path(name, self.error, self.kind)
        else:
            hint = " (or give a 'module:attr' path)" if self.paths else ""
            raise self.error(f"unknown {self.kind} {name!r}; known: {', '.join(self.list()) or 'none'}{hint}")
        if self._check is not None:
            self._check(name, obj)
        return obj

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._objects or name in self._lazy
                                          or name in self._entry_points())

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def list(self, pattern: str = "*") -> builtins.list[str]:
        """Registered and installed names matching the glob ``pattern``, built-ins first in
        registration order, then plugins sorted."""
        own = list(self._order)
        plugins = sorted(set(self._entry_points()) - set(own))
        return [n for n in own + plugins if fnmatch.fnmatchcase(n, pattern)]

    def describe(self, pattern: str = "*") -> builtins.list[Entry]:
        """One :class:`Entry` per name of :meth:`list` (loads lazy built-ins and plugins;
        a plugin that fails to load is listed with its error as the doc)."""
        eps = self._entry_points()
        out = []
        for name in self.list(pattern):
            own = name in self._objects or name in self._lazy
            origin = "builtin" if own else f"plugin ({getattr(eps[name].dist, 'name', '?')})"
            if name in self._docs:
                doc = self._docs[name]
            else:
                try:
                    doc = self._describe_obj(self.get(name))
                except Exception as exc:
                    doc = f"(cannot load: {exc})"
            out.append(Entry(name, origin, doc))
        return out

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"
