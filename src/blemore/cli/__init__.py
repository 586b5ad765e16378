"""The ``blemore`` command line: a thin layer over the library.

Commands live in modules named by what they do: :mod:`~blemore.cli.challenge` (score, decode,
calibrate, submit), :mod:`~blemore.cli.features` (extract, extractors, features,
import-features), :mod:`~blemore.cli.models` (benchmark, train, predict, report) and
:mod:`~blemore.cli.synth` (the ``synth`` group, demo). **To add commands**, add a module
``blemore/cli/<name>.py`` (no leading underscore) with a function ``register(group)`` that calls
``group.add_command(...)``: every such module of this package is found and registered, in name
order; nothing else needs editing. A command name registered twice is an error (at import).

Errors (one adapter for every command, :class:`BlemoreGroup`):

- any :class:`blemore.errors.BlemoreError` (a user's mistake or an unusable input) becomes one
  paragraph on stderr, ``error: <message>``, and exit status 2;
- ``FileNotFoundError``, ``PermissionError``, ``IsADirectoryError``, ``NotADirectoryError`` and
  ``FileExistsError`` (a path the user gave that cannot be used) likewise, naming the path;
- click's own usage errors keep click's behaviour (``Error: ...``, exit status 2);
- anything else is a bug and keeps its traceback. ``blemore --debug`` (or ``BLEMORE_DEBUG=1``)
  shows the traceback of the errors above too.
"""
from __future__ import annotations

import importlib
import pkgutil

import click

from blemore import __version__
from blemore.cli._errors import BlemoreGroup, UserError, format_error

__all__ = ["cli", "main", "command_modules", "BlemoreGroup", "UserError", "format_error"]


@click.group(cls=BlemoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blemore")
@click.option("--debug", is_flag=True, envvar="BLEMORE_DEBUG",
              help="Show the traceback of every error, user mistakes included.")
def cli(debug: bool) -> None:
    """blemore: blended emotion recognition with relative salience (BLEMORE benchmark)."""


def command_modules() -> list[str]:
    """The modules of this package that register commands: every public module, in name order."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


for _name in command_modules():
    importlib.import_module(f"{__name__}.{_name}").register(cli)


def main() -> None:  # console-script entry point
    cli()
