"""One generic registry type for everything blemore looks up by name.

Extractors, heads, fusions, feature transforms (and later corpus recipes and execution
engines) each own one :class:`Registry`. A registry

- loads its own built-ins: it is created with the names of the modules that define them and
  imports those on the first lookup, so importing any one public module is enough to use every
  name it documents (no registration by import side effect elsewhere);
- refuses a second, different class under a name already taken;
- answers an unknown name with an error that lists every registered name.

Example::

    HEADS = Registry("head", builtins=("blemore.heads.mlp",), error=HeadError)

    @HEADS.register("mlp-512")
    class MLP512(Head): ...

    HEADS.create("mlp-512", hidden=512)
"""
from __future__ import annotations

import importlib
import threading
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

from blemore.errors import RegistryError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class (or factory) for one kind of plugin.

    Parameters
    ----------
    kind:
        What the entries are, used in messages (``"extractor"``, ``"head"``...).
    builtins:
        Dotted module names imported on first lookup; each registers its entries.
    error:
        Exception class raised for unknown and duplicate names; must accept one message
        argument. Defaults to :class:`~blemore.errors.RegistryError`.
    set_name:
        When true, ``register(name)`` also sets ``cls.name = name``.
    """

    def __init__(
        self,
        kind: str,
        builtins: Iterable[str] = (),
        error: type[Exception] = RegistryError,
        set_name: bool = True,
    ):
        self.kind = kind
        self._builtins = tuple(builtins)
        self._error = error
        self._set_name = set_name
        self._entries: dict[str, T] = {}
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ registration
    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator: register the decorated class under ``name`` (default: its ``name``
        attribute). Registering the same object twice is a no-op; a different one under a
        taken name is refused."""

        def deco(obj: T) -> T:
            key = name if name is not None else getattr(obj, "name", None)
            if not isinstance(key, str) or not key:
                raise self._error(f"a {self.kind} needs a non-empty name to be registered ({obj!r})")
            self.add(key, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (see :meth:`register`)."""
        with self._lock:
            old = self._entries.get(name)
            if old is not None and old is not obj:
                if _same_definition(old, obj):  # a module imported twice under another name
                    pass
                else:
                    raise self._error(
                        f"a {self.kind} named {name!r} is already registered "
                        f"({_describe(old)}); refusing {_describe(obj)}"
                    )
            if self._set_name and isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]
            self._entries[name] = obj

    # ------------------------------------------------------------------ lookup
    def _load_builtins(self) -> None:
        if self._loaded or self._loading:
            return
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                for module in self._builtins:
                    importlib.import_module(module)
                self._loaded = True
            finally:
                self._loading = False

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load_builtins()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; unknown names raise the registry's error, listing
        every registered name."""
        self._load_builtins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._entries)) or "(none)"
            raise self._error(f"unknown {self.kind} {name!r}; registered: {known}") from None

    def create(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        """``get(name)(*args, **kwargs)``."""
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def items(self) -> list[tuple[str, T]]:
        self._load_builtins()
        return sorted(self._entries.items())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _describe(obj: object) -> str:
    mod = getattr(obj, "__module__", "?")
    qual = getattr(obj, "__qualname__", repr(obj))
    return f"{mod}.{qual}"


def _same_definition(a: object, b: object) -> bool:
    return _describe(a) == _describe(b)
