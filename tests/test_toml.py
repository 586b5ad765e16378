"""blemore reads TOML on Python 3.10 too: blemore._toml falls back to the tomli package."""
from __future__ import annotations

import importlib
import sys
import types

import blemore._toml


def test_tomllib_on_311_and_tomli_before(monkeypatch):
    if sys.version_info >= (3, 11):
        import tomllib

        assert blemore._toml.tomllib is tomllib
    stand_in = types.ModuleType("tomli")
    stand_in.loads = lambda text: {"from": "tomli"}
    stand_in.TOMLDecodeError = ValueError
    monkeypatch.setitem(sys.modules, "tomli", stand_in)
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    try:
        mod = importlib.reload(blemore._toml)
        assert mod.tomllib is stand_in and mod.tomllib.loads("x = 1") == {"from": "tomli"}
    finally:
        monkeypatch.undo()
        importlib.reload(blemore._toml)
    assert blemore._toml.tomllib.loads("x = 1") == {"x": 1}
