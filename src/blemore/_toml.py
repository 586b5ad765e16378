"""TOML reading on every supported Python: the standard library's :mod:`tomllib` (3.11+), else
the ``tomli`` package it came from (a dependency on 3.10 only). ``from blemore._toml import tomllib``.
"""
from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by tests/test_toml.py with a stand-in module
    import tomli as tomllib

__all__ = ["tomllib"]
