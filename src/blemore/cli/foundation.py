"""CLI commands of the foundation area (see blemore.cli)."""
from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach this area's commands to the main group."""
