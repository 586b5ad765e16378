"""The command line's one error adapter (see :mod:`blemore.cli` for the contract).

:class:`BlemoreGroup` turns a command's :class:`~blemore.errors.BlemoreError` or path error
(:data:`PATH_ERRORS`) into :class:`UserError`: one ``error: ...`` paragraph on stderr and exit
status 2. Commands raise :class:`UserError` themselves for mistakes they find in their options.
Everything else propagates with its traceback (a bug).
"""
from __future__ import annotations

import errno
import shutil
import textwrap
from pathlib import Path
from typing import IO, Any

import click

from blemore.errors import BlemoreError

__all__ = ["PATH_ERRORS", "BlemoreGroup", "UserError", "format_error"]

#: OS errors that mean "this path (given by the user) cannot be used", not a bug.
PATH_ERRORS: tuple[type[OSError], ...] = (FileNotFoundError, PermissionError, IsADirectoryError,
                                          NotADirectoryError, FileExistsError)


def format_error(message: str, width: int | None = None) -> str:
    """``error: <message>`` as one paragraph; wrapped at ``width`` columns when given.

    The first line of the message is wrapped; further lines (lists of problems, already
    indented by the raiser) are kept as they are.
    """
    first, *rest = message.strip().splitlines() or [""]
    if not width:
        return "\n".join([f"error: {first}", *rest])
    head = textwrap.fill(first, width=width, initial_indent="error: ", subsequent_indent="  ",
                         break_long_words=False, break_on_hyphens=False)
    return "\n".join([head, *rest])


#: errno values that also mean "this path cannot be used" (read-only file system, disk full, ...).
PATH_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES,
                         errno.EPERM, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOENT})


def _blocking_file(path: str) -> str | None:
    """The first ancestor of ``path`` that exists and is not a folder (why ENOTDIR happened)."""
    p = Path(path)
    for a in [p, *p.parents]:
        if a.exists() or a.is_symlink():
            return str(a) if not a.is_dir() else None
    return None


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        msg = f"{err.filename}: {err.strerror or err.__class__.__name__}"
        if err.errno == errno.ENOTDIR:
            blocker = _blocking_file(str(err.filename))
            if blocker:
                msg += f" ({blocker} is a file, not a folder: choose another output path)"
        elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            msg += " (choose an output folder you can write to)"
        return msg
    if isinstance(err, KeyError) and err.args:  # KeyError's str() would quote the message
        return str(err.args[0])
    return str(err) or err.__class__.__name__


class UserError(click.ClickException):
    """A user's mistake, shown as one ``error: ...`` paragraph on stderr; exit status 2."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        """Wrapped to the terminal (at most 100 columns) on a terminal; one line per line of
        the message otherwise, so that logs and ``grep`` see whole sentences."""
        stream = file if file is not None else click.get_text_stream("stderr")
        tty = bool(getattr(stream, "isatty", lambda: False)())
        width = max(40, min(shutil.get_terminal_size((100, 24)).columns, 100)) if tty else None
        click.echo(format_error(self.format_message(), width), file=stream)


class BlemoreGroup(click.Group):
    """A click group whose commands' :class:`BlemoreError` and path errors become :class:`UserError`
    and which refuses to register a command name twice."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        """Register ``cmd``; a name that is already taken is refused (two modules, one name)."""
        name = name or cmd.name
        if name in self.commands:
            raise RuntimeError(f"the command {name!r} is registered twice ({self.commands[name].callback} and "
                               f"{cmd.callback})")
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (BlemoreError, *PATH_ERRORS) as err:
            if ctx.find_root().params.get("debug"):
                raise
            raise UserError(_message(err)) from err
        except OSError as err:  # read-only file system, disk full...: the path's fault, not a bug
            if err.errno not in PATH_ERRNOS or err.filename is None or ctx.find_root().params.get("debug"):
                raise
            raise UserError(_message(err)) from err
