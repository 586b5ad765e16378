"""Every exception class blemore defines derives from blemore.errors.BlemoreError (and keeps its
builtin parent), so the command line reports all of them the same way. Private classes (a
leading underscore) are internal signals that never leave their module. Checked on the source
(no imports, so optional dependencies do not matter): a new error class must join the family."""
from __future__ import annotations

import ast
import builtins
from pathlib import Path

import blemore

SRC = Path(blemore.__file__).parent
# warnings (InputWarning(UserWarning)...) are not errors: they are never raised to the user
BUILTIN_ERRORS = {n for n, v in vars(builtins).items()
                  if isinstance(v, type) and issubclass(v, BaseException) and not issubclass(v, Warning)}


def _classes() -> dict[str, tuple[str, list[str]]]:
    """class name -> (where, names of its bases) for every class in the package."""
    out: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else ""
                         for b in node.bases]
                out.setdefault(node.name, (f"{path.relative_to(SRC.parent)}:{node.lineno}", bases))
    return out


def test_every_exception_class_is_a_blemore_error():
    classes = _classes()

    def is_exception(name: str, seen=frozenset()) -> bool:
        if name in BUILTIN_ERRORS:
            return True
        return name in classes and name not in seen and any(is_exception(b, seen | {name})
                                                            for b in classes[name][1])

    def is_blemore(name: str, seen=frozenset()) -> bool:
        if name == "BlemoreError":
            return True
        return name in classes and name not in seen and any(is_blemore(b, seen | {name}) for b in classes[name][1])

    # private classes (``_DuplicateKey``) are internal signals, caught inside the module
    errors = [n for n in classes if n != "BlemoreError" and not n.startswith("_") and is_exception(n)]
    assert len(errors) >= 20  # the scan sees the package's error classes
    outside = [f"{classes[n][0]} {n}({', '.join(classes[n][1])})" for n in errors if not is_blemore(n)]
    assert not outside, "exception classes that do not derive from BlemoreError:\n" + "\n".join(outside)


def test_builtin_parents_are_kept():
    from blemore.config import ConfigError
    from blemore.dataset import DatasetError
    from blemore.errors import BlemoreError, RegistryError
    from blemore.extractors.base import ExtractorUnavailableError
    from blemore.media import MediaError
    from blemore.store import ConfigMismatchError, StoreError

    assert issubclass(DatasetError, ValueError) and issubclass(ConfigError, ValueError)
    assert issubclass(ExtractorUnavailableError, RuntimeError) and issubclass(RegistryError, KeyError)
    for cls in (DatasetError, ConfigError, ExtractorUnavailableError, RegistryError, MediaError, StoreError,
                ConfigMismatchError):
        assert issubclass(cls, BlemoreError), cls
