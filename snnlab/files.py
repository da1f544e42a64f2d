"""Files snnlab writes and reads: atomic writes with the user's permissions, the temporary files a
killed writer leaves, folder locks, and torch files whose errors name the file.

* :func:`atomic_write`: a reader sees the old file or the new one, never a torn one; the new file
  gets the permissions any file the user creates gets (``0666 & ~umask``: 0644 under umask 022),
  not the 0600 of :func:`tempfile.mkstemp`.
* :func:`remove_orphaned_temporaries`: the ``.<name>.*.tmp`` files of :func:`atomic_write` that a
  ``kill -9`` left behind (call it while holding the folder's lock, so no live writer owns them).
* :func:`folder_lock`: an exclusive ``flock`` on a lock file; the kernel drops it when the process
  dies, so a killed process never leaves a stale lock.
* :func:`load_torch_file`: ``torch.load`` whose failures become one
  :class:`~snnlab.errors.CorruptFileError` naming the file, what was expected and the fix.
"""

from __future__ import annotations

import errno
import hashlib
import fcntl
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from snnlab.errors import CorruptFileError, FolderBusyError

__all__ = ["umask", "file_checksum", "atomic_write", "temporary_name_pattern", "remove_orphaned_temporaries", "folder_lock",
           "load_torch_file"]


def umask() -> int:
    """The process's umask (read from /proc where possible: setting it to read it races with threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def file_checksum(path: str | os.PathLike, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest of a file (``md5``, ``sha256`` ...), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as infile:
        for block in iter(lambda: infile.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def temporary_name_pattern(name: str) -> str:
    """The glob of the temporary files :func:`atomic_write` makes for a file called ``name``."""
    return f".{name}.*.tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], *, binary_handle: bool = True) -> Path:
    """Write ``path`` atomically: ``write`` fills a temporary file in the same folder, which is
    flushed, fsynced, given the user's permissions and renamed over ``path`` (``os.replace``).

    ``write`` receives an open binary file (``binary_handle=True``) or the temporary file's path
    (``False``, for writers that open the file themselves, e.g. ``zipfile``). An interrupted write
    removes its temporary file; a killed one leaves it for :func:`remove_orphaned_temporaries`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        if binary_handle:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            os.close(fd)
            write(Path(tmp))
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_orphaned_temporaries(folder: str | os.PathLike, names: tuple[str, ...] | None = None,
                                *, older_than_s: float = 0.0) -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``folder`` (for the file ``names``,
    or any), older than ``older_than_s`` seconds; return what was removed. Only call this while no
    other process writes there (hold the folder's :func:`folder_lock`)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    patterns = [temporary_name_pattern(n) for n in names] if names else [".*.tmp"]
    removed = []
    now = time.time()
    for pattern in patterns:
        for tmp in folder.glob(pattern):
            try:
                if tmp.is_file() and now - tmp.stat().st_mtime >= older_than_s:
                    tmp.unlink()
                    removed.append(tmp)
            except FileNotFoundError:  # pragma: no cover - removed meanwhile
                pass
    return removed


@contextmanager
def folder_lock(lock_path: str | os.PathLike, *, wait: bool, what: str = "this folder") -> Iterator[Path]:
    """Hold an exclusive lock on ``lock_path`` (created if missing) while inside.

    ``wait=True`` blocks until another holder is done; ``wait=False`` raises
    :class:`~snnlab.errors.FolderBusyError` naming the process that holds it. The lock is an
    ``flock``: it is released when the process ends, however it ends.
    """
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise FolderBusyError(
                f"{what} is in use by {holder} (lock {lock_path}). Wait for it to finish, or use "
                f"another folder.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"snnlab process {os.getpid()} on {os.uname().nodename}\n".encode(), 0)
        yield lock_path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def load_torch_file(path: str | os.PathLike, *, expected: str, fix: str, weights_only: bool = True,
                    map_location="cpu") -> Any:
    """``torch.load(path)``, with every way it can fail turned into one error naming the file.

    A missing file raises ``FileNotFoundError``; a directory, a truncated or garbage file, or one
    that needs what ``weights_only`` forbids raises :class:`~snnlab.errors.CorruptFileError` saying
    what was ``expected`` and how to ``fix`` it.
    """
    import pickle
    import zipfile

    import torch

    path = Path(path)
    if path.is_dir():
        raise CorruptFileError.describe(path, expected, fix, "it is a directory")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; expected {expected}.")
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, KeyError, AttributeError,
            ImportError, IndexError, TypeError, UnicodeDecodeError, zipfile.BadZipFile, OSError) as error:
        if isinstance(error, OSError) and not isinstance(error, (IsADirectoryError,)) \
                and error.errno in (errno.EACCES, errno.EPERM):
            raise
        size = path.stat().st_size if path.exists() else 0
        detail = ("an empty file" if size == 0 else
                  f"{size} bytes that torch.load cannot read ({_first_sentence(error)})")
        raise CorruptFileError.describe(path, expected, fix, detail) from error


def _first_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split())
    head = text.split(". ")[0].rstrip(".")
    return head[:200] if head else type(error).__name__
