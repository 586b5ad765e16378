"""The ``blemore`` command line: a thin layer over the library.

Each area of the pipeline owns one module here and registers its commands on the main group
through ``register(group)``; add the module's name to ``_AREAS`` to add commands.

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

import click

from blemore import __version__
from blemore.cli._errors import BlemoreGroup, UserError, format_error

__all__ = ["cli", "main", "BlemoreGroup", "UserError", "format_error"]

_AREAS = ("foundation", "extract", "engine", "synth", "view")


@click.group(cls=BlemoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blemore")
@click.option("--debug", is_flag=True, envvar="BLEMORE_DEBUG",
              help="Show the traceback of every error, user mistakes included.")
def cli(debug: bool) -> None:
    """blemore: blended emotion recognition with relative salience (BLEMORE benchmark)."""


for _area in _AREAS:
    importlib.import_module(f"blemore.cli.{_area}").register(cli)


def main() -> None:  # console-script entry point
    cli()
