"""The generic registry: built-ins loaded by the registry, duplicates refused, helpful errors."""
import sys
import types

import pytest

from blemore.errors import BlemoreError, RegistryError
from blemore.registry import Registry


def _fake_module(name, registry):
    mod = types.ModuleType(name)

    @registry.register("builtin-a")
    class A:
        pass

    mod.A = A
    return mod


def test_builtins_loaded_on_first_lookup(monkeypatch):
    reg = Registry("widget", builtins=("blemore_test_fake_widgets",))
    calls = []

    def fake_import(name):
        calls.append(name)
        sys.modules[name] = _fake_module(name, reg)
        return sys.modules[name]

    monkeypatch.setattr("importlib.import_module", fake_import)
    assert calls == []
    assert reg.names() == ["builtin-a"]
    assert calls == ["blemore_test_fake_widgets"]
    reg.names()
    assert calls == ["blemore_test_fake_widgets"]  # once only
    sys.modules.pop("blemore_test_fake_widgets", None)


def test_duplicate_name_refused_and_same_object_allowed():
    reg = Registry("widget")

    @reg.register("x")
    class X:
        pass

    reg.register("x")(X)  # same object: fine
    with pytest.raises(RegistryError, match="already registered"):

        @reg.register("x")
        class Y:
            pass


def test_unknown_name_lists_registered_and_is_blemore_error():
    reg = Registry("widget")
    reg.register("one")(type("One", (), {}))
    reg.register("two")(type("Two", (), {}))
    with pytest.raises(BlemoreError) as info:
        reg.get("three")
    assert "unknown widget 'three'" in str(info.value)
    assert "one, two" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_custom_error_class_and_set_name():
    class MyError(BlemoreError, ValueError):
        pass

    reg = Registry("thing", error=MyError)

    @reg.register("named")
    class C:
        def __init__(self, k=1):
            self.k = k

    assert C.name == "named"
    assert reg.create("named", k=3).k == 3
    assert "named" in reg and len(reg) == 1
    with pytest.raises(MyError):
        reg.get("nope")
