"""snnlab's errors, and how the command line reports them.

Every error snnlab raises on purpose says what was wrong, what was expected and how to fix it.
Most are plain ``ValueError`` / ``TypeError`` from the boundary checks (:mod:`snnlab.checks`);
the ones below add a class a caller can catch and an exit code for the command line:

=========================  ====  ==========================================================
error                      exit  when
=========================  ====  ==========================================================
:class:`CorruptFileError`  2     a file exists but is not what snnlab expected (truncated,
                                 garbage, foreign, a directory)
:class:`OutputDirError`    2     ``--out-dir`` cannot hold a run (a file, under a file, not
                                 writable, full)
:class:`RunExistsError`    2     training would overwrite a run, or ``--resume`` finds none
:class:`ResumeMismatch`    2     ``--resume`` with settings that change the numbers
:class:`FolderBusyError`   2     another snnlab process is using the folder
:class:`NonFiniteLossError`  1   the loss became NaN or infinite: the run stopped
=========================  ====  ==========================================================

The command line (:func:`report_error`) turns each of these, and every ``ValueError``,
``TypeError``, ``OSError`` and ``ImportError``, into one line on stderr and an exit code
(2: bad input; 1: the run failed; 70: an unexpected error, i.e. a bug; 130: interrupted). With
``--debug`` (or ``SNNLAB_DEBUG=1``) it prints the traceback as well.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from contextlib import contextmanager

__all__ = [
    "SnnlabError",
    "CorruptFileError",
    "OutputDirError",
    "RunExistsError",
    "ResumeMismatch",
    "FolderBusyError",
    "NonFiniteLossError",
    "SnnlabWarning",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "report_error",
    "debug_requested",
    "warnings_as_lines",
]

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE
EXIT_INTERRUPTED = 130


class SnnlabError(Exception):
    """Base class of snnlab's own errors; ``exit_code`` is what the command line returns."""

    exit_code = EXIT_FAILED


class CorruptFileError(SnnlabError, ValueError):
    """A file is there but cannot be what snnlab expected. The message names the file, what was
    expected and how to fix it (build it with :meth:`describe`). A ``ValueError``, so code that
    catches bad input keeps working."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)

    @classmethod
    def describe(cls, path, expected: str, fix: str, detail: str | BaseException | None = None):
        """``"<path>: <detail>; expected <expected>. <fix>"`` as an error naming ``path`` (an
        exception as ``detail`` reads "cannot be read (<its message>)")."""
        if isinstance(detail, BaseException):
            detail = f"cannot be read ({_short(detail)})"
        what = f"{path}: " + (f"{detail}; " if detail else "")
        return cls(f"{what}expected {expected}. {fix}", path)


class OutputDirError(SnnlabError):
    """The output folder cannot hold a run (checked before any training)."""

    exit_code = EXIT_BAD_INPUT


class RunExistsError(SnnlabError):
    """Training would overwrite a run, or ``--resume`` found nothing to resume."""

    exit_code = EXIT_BAD_INPUT


class ResumeMismatch(SnnlabError, ValueError):
    """``--resume`` with settings that would change the numbers of the checkpointed run."""

    exit_code = EXIT_BAD_INPUT


class FolderBusyError(SnnlabError):
    """Another snnlab process holds the folder's lock."""

    exit_code = EXIT_BAD_INPUT


class NonFiniteLossError(SnnlabError, FloatingPointError):
    """The training loss became NaN or infinite; the run stopped without saving the bad state."""

    exit_code = EXIT_FAILED


class SnnlabWarning(UserWarning):
    """Something worth knowing that does not stop the work (e.g. a resume on another thread count)."""


def _short(error: BaseException) -> str:
    """One line for an exception: its message (the last line of a DataLoader worker's re-raise)."""
    text = str(error).strip()
    if "Original Traceback" in text:  # torch's DataLoader re-raises a worker's error with its traceback
        last = text.splitlines()[-1]
        head, sep, rest = last.partition(": ")
        text = rest if sep and "." in head or head.endswith("Error") else last
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.strerror}: {error.filename}"
        if error.filename2 is not None:
            text += f" -> {error.filename2}"
    if not text:
        text = type(error).__name__
    return " ".join(text.split())  # one line


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` anywhere on the command line, or ``SNNLAB_DEBUG`` set to a true value."""
    if argv is not None and "--debug" in argv:
        return True
    return os.environ.get("SNNLAB_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


_EXPECTED = (ValueError, TypeError, OSError, ImportError)


def report_error(error: BaseException, command: str | None, *, debug: bool = False, stream=None) -> int:
    """Print ``error`` for the command line and return its exit code.

    snnlab's errors, bad input (``ValueError``, ``TypeError``), I/O errors and missing packages
    take one line; anything else is unexpected (a bug): one line saying so and how to see the
    traceback. ``debug`` prints the traceback of every error first.
    """
    stream = stream or sys.stderr
    prefix = f"snnlab {command}" if command else "snnlab"
    if debug:
        traceback.print_exception(error, file=stream)
    if isinstance(error, KeyboardInterrupt):
        print(f"{prefix}: interrupted.", file=stream)
        return EXIT_INTERRUPTED
    if isinstance(error, SnnlabError):
        print(f"{prefix}: error: {_short(error)}", file=stream)
        return error.exit_code
    if isinstance(error, _EXPECTED):
        print(f"{prefix}: error: {_short(error)}", file=stream)
        if isinstance(error, OSError) and not isinstance(error, FileNotFoundError):
            return EXIT_FAILED
        return EXIT_BAD_INPUT
    print(f"{prefix}: internal error ({type(error).__name__}): {_short(error)}", file=stream)
    if not debug:
        print(f"{prefix}: this is a bug or an unexpected condition; run again with --debug for the "
              f"traceback and report it.", file=stream)
    return EXIT_INTERNAL


@contextmanager
def warnings_as_lines(command: str | None):
    """While inside, print :class:`SnnlabWarning` as ``snnlab <command>: warning: ...`` (the CLI's style)."""
    default = warnings.showwarning
    prefix = f"snnlab {command}" if command else "snnlab"

    def show(message, category, filename, lineno, file=None, line=None):
        if isinstance(category, type) and issubclass(category, SnnlabWarning):
            print(f"{prefix}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = default
