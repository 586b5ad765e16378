"""The one error base of blemore.

Every error that describes a *user's* mistake or an unusable input (a bad clip id, a
malformed metadata file, missing weights, a corrupt media file, an unknown head name...)
derives from :class:`BlemoreError`. Each concrete class keeps the builtin parent that callers
may already rely on (``ValueError``, ``RuntimeError``, ``KeyError``...) through multiple
inheritance, e.g. ``class DatasetError(BlemoreError, ValueError)``.

Contract for raisers: the message names the input (file, clip id, option) and, where several
things are wrong, lists every problem at once. The command line turns any ``BlemoreError``
into a one-paragraph message and exit code 2 (see :mod:`blemore.cli`); anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["BlemoreError", "RegistryError", "format_problems"]


class BlemoreError(Exception):
    """Base of every error blemore raises for bad input or an unusable environment."""


def format_problems(source: str, problems: Sequence[str], limit: int = 50) -> str:
    """``"<source>: N problem(s):"`` then one indented line per problem (the first ``limit``,
    then how many more): the message of an error that lists every problem at once."""
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    n = len(problems)
    return f"{source}: {n} problem{'s' if n != 1 else ''}:\n" + "\n".join(lines)


class RegistryError(BlemoreError, KeyError):
    """An unknown or duplicate name in one of blemore's registries."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
