"""The ``blemore`` command line: a thin layer over the library.

Each area of the pipeline owns one module here and registers its commands on the
main group through ``register(group)``; add a module to ``_AREAS`` to add commands.
"""
from __future__ import annotations

import importlib

import click

from blemore import __version__

_AREAS = ("foundation", "extract", "engine", "synth")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blemore")
def cli() -> None:
    """blemore: blended emotion recognition with relative salience (BLEMORE benchmark)."""


for _area in _AREAS:
    importlib.import_module(f"blemore.cli.{_area}").register(cli)


def main() -> None:  # console-script entry point
    cli()
