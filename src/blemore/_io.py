"""The one place blemore writes files atomically.

Contract:

- A reader never sees a half-written file or folder: everything is written under a hidden
  temporary name in the destination's own folder (same file system) and renamed into place
  (``os.replace``) only once complete. On any error the temporary is removed and the
  destination is left as it was.
- Permissions are those of a plain ``open``: files ``0666 & ~umask``, folders
  ``0777 & ~umask``. The umask is read at each call (``/proc/self/status`` on Linux; elsewhere
  by creating a throw-away file and reading its mode), so a umask set after import is honoured,
  and the process umask is never changed (not at import, not while writing).
- Temporary names start with ``.tmp-`` (the feature store sweeps ``.tmp-*`` left by a killed
  run; folder scanners skip hidden names).
- Missing parent folders are created.

The family:

- :func:`atomic_write_bytes` / :func:`atomic_write_text`: data already in memory;
- :func:`atomic_path`: a context manager yielding a temporary *path* for writers that want one
  (``np.save``, ``np.savez_compressed``, ``DataFrame.to_csv``, ``fig.savefig``, ``torch.save``,
  PyAV); the temporary name keeps the destination's suffix so such writers pick the same format;
- :func:`atomic_folder`: a context manager yielding a temporary *folder* to fill; on success it
  replaces the destination folder as a whole (an existing one is moved aside, then deleted).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["current_umask", "file_mode", "folder_mode", "atomic_write_bytes", "atomic_write_text",
           "atomic_path", "atomic_folder"]

TMP_PREFIX = ".tmp-"


def current_umask() -> int:
    """The process umask now, read without changing it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # elsewhere: the mode a fresh file gets from open(..., 0o777) is 0o777 & ~umask
    fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX)
    os.close(fd)
    os.unlink(probe)
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o777)
    try:
        return 0o777 & ~os.fstat(fd).st_mode
    finally:
        os.close(fd)
        os.unlink(probe)


def file_mode() -> int:
    """``0o666 & ~umask``: the mode a plain ``open(path, "w")`` gives a new file."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """``0o777 & ~umask``: the mode a plain ``mkdir`` gives a new folder."""
    return 0o777 & ~current_umask()


def _unlink_quiet(p: str | os.PathLike) -> None:
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (an empty file with the same suffix, for the
    caller's writer to overwrite); on a clean exit give it the umask's mode and rename it onto
    ``path``; on an error remove it.

    >>> with atomic_path("out/x.npy") as tmp:   # doctest: +SKIP
    ...     np.save(tmp, array)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        _unlink_quiet(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see the module contract). Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (newlines written as given). Returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on a clean exit it replaces ``path``
    as a whole (an existing folder is moved aside first and deleted after), with the umask's
    folder mode; on an error it is deleted and ``path`` is untouched. Files written inside with
    a plain ``open`` already get the umask's mode."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        os.chmod(tmp, folder_mode())  # mkdtemp makes it 0700
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old)  # onto an empty folder: allowed on POSIX
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
