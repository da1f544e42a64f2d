"""The output folder of a training run: checked before any work, never overwritten silently.

:func:`check_out_dir` runs before the data and the model are built. It refuses, with one line that
says what to do, a folder that is a file, lies under a file, cannot be written (permissions, a
read-only file system) or sits on a full disk (it writes and removes a small probe file,
:data:`PROBE_BYTES`). :func:`check_free_space` later compares the free space with the size of a
checkpoint of the built model and optimiser.

:func:`start_run` decides, under the folder's lock (one run per folder at a time), whether a run
starts fresh or resumes:

===========================  ======================  =========================================
the folder holds             no flag                 ``--resume``
===========================  ======================  =========================================
nothing of a run             start                   refused (a typo must not start a silent
                                                     retrain), unless ``--resume-if-exists``
a run (:data:`RUN_FILES`)    refused: ``--resume``   resume (settings that change the numbers
                             or ``--overwrite``      must match: :mod:`snnlab.training.options`)
===========================  ======================  =========================================

``--overwrite`` moves the old run's files into ``<out_dir>/previous/<time>/`` (deleting nothing)
and starts fresh. The temporary files an atomic write leaves when the process is killed are removed
at the next start.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from snnlab.errors import OutputDirError, RunExistsError
from snnlab.files import remove_orphaned_temporaries

__all__ = ["CHECKPOINT_NAME", "METRICS_JSON", "METRICS_CSV", "RUN_FILES", "CONFIG_NAME", "TB_DIR", "COMPANIONS",
           "LOCK_NAME", "PREVIOUS_DIR",
           "PROBE_BYTES", "check_out_dir", "check_free_space", "start_run", "RunStart", "move_run_aside"]

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
RUN_FILES: tuple[str, ...] = (CHECKPOINT_NAME, METRICS_JSON, METRICS_CSV)
"""What a run writes into its folder: ``--overwrite`` moves these aside (add new run files here)."""
CONFIG_NAME = "config.yaml"
TB_DIR = "tb"
COMPANIONS: tuple[str, ...] = (CONFIG_NAME, TB_DIR)
"""Written with a run but not a run by themselves (a run killed before its first checkpoint leaves
only these): they move aside with the run, yet do not make a folder count as holding one."""
LOCK_NAME = ".snnlab-train.lock"
PREVIOUS_DIR = "previous"
PROBE_BYTES = 64 * 1024
_PROBE_PREFIX = ".snnlab-write-probe-"

_FULL = (errno.ENOSPC, errno.EDQUOT)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)


def _first_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")  # pragma: no cover


def _write_probe(path: Path) -> None:
    """Write and remove a small file in ``path`` (a full disk or a read-only mount fails here)."""
    probe = path / f"{_PROBE_PREFIX}{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(b"\0" * PROBE_BYTES)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        if os.path.lexists(probe):
            os.unlink(probe)


def _os_problem(path: Path, error: OSError) -> OutputDirError:
    if error.errno in _FULL:
        return OutputDirError(
            f"--out-dir {path}: no space left on the device that holds it (writing a "
            f"{PROBE_BYTES // 1024} KiB probe file failed: {error.strerror}). Free some space or choose "
            f"an --out-dir on another disk.")
    if error.errno in _DENIED:
        why = "the file system is read-only" if error.errno == errno.EROFS else "permission denied"
        return OutputDirError(
            f"--out-dir {path} is not writable ({why}). Choose a folder you can write to, or change its "
            f"permissions (chmod u+w).")
    return OutputDirError(f"--out-dir {path} cannot be written: {error.strerror or error}. Choose another folder.")


def check_out_dir(out_dir: str | os.PathLike) -> Path:
    """Create ``out_dir`` if needed and make sure a run can write there; return it as a Path.

    Raises :class:`~snnlab.errors.OutputDirError` when it is a file, lies under a file, is not
    writable or is on a full disk (a :data:`PROBE_BYTES` probe file is written and removed).
    """
    path = Path(out_dir).expanduser()
    if os.path.lexists(path) and not path.is_dir():
        raise OutputDirError(f"--out-dir {path} is a file, not a folder. Choose a folder name (it is created "
                             f"if missing), or move the file away.")
    anchor = _first_existing(path)
    if not anchor.is_dir():
        raise OutputDirError(f"--out-dir {path} lies under {anchor}, which is a file, not a folder. Choose "
                             f"another --out-dir.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _os_problem(path, error) from None
    try:
        _write_probe(path)
    except OSError as error:
        raise _os_problem(path, error) from None
    return path


def check_free_space(out_dir: Path, needed_bytes: int) -> None:
    """Refuse to start when the disk holding ``out_dir`` lacks room for a checkpoint of
    ``needed_bytes`` (an atomic write needs the new copy while the old one is still there)."""
    free = shutil.disk_usage(out_dir).free
    if free < needed_bytes:
        raise OutputDirError(
            f"--out-dir {out_dir}: a checkpoint of this model and optimiser takes about "
            f"{needed_bytes / 2**20:.1f} MiB, but only {free / 2**20:.1f} MiB are free on its disk. Free "
            f"some space or choose an --out-dir on another disk.")


@dataclass
class RunStart:
    """What :func:`start_run` decided: ``resume`` from ``checkpoint``, or a fresh start."""

    out_dir: Path
    resume: bool
    checkpoint: Path
    moved_to: Path | None = None
    """Where ``--overwrite`` moved the old run."""
    removed_temporaries: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _existing_run_files(out_dir: Path, run_files: tuple[str, ...] = RUN_FILES) -> list[str]:
    return [name for name in run_files if os.path.lexists(out_dir / name)]


def move_run_aside(out_dir: Path, run_files: tuple[str, ...] = RUN_FILES,
                   companions: tuple[str, ...] = COMPANIONS) -> Path | None:
    """Move the run files of ``out_dir`` (and their ``companions``: config.yaml, tb/) into
    ``out_dir/previous/<time>/``; return that folder (None: there was nothing to move)."""
    names = _existing_run_files(out_dir, run_files + companions)
    if not names:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = out_dir / PREVIOUS_DIR / stamp
    n = 1
    while target.exists():
        target = out_dir / PREVIOUS_DIR / f"{stamp}-{n}"
        n += 1
    target.mkdir(parents=True)
    for name in names:
        os.replace(out_dir / name, target / name)
    return target


def start_run(out_dir: Path, *, resume: bool, resume_if_exists: bool = False, overwrite: bool = False,
              run_files: tuple[str, ...] = RUN_FILES, checkpoints: tuple[str, ...] = (CHECKPOINT_NAME,)) -> RunStart:
    """Decide between a fresh start and a resume in ``out_dir`` (see the module docstring).

    ``run_files``: what a run writes there; ``checkpoints``: those of them a resume continues from
    (``snnlab train``'s by default; ``snnlab convert`` passes its own, so both commands follow the
    same rules). Call it holding the folder's lock: it also removes the temporary files a killed
    run left there.
    """
    if overwrite and (resume or resume_if_exists):
        raise RunExistsError("--overwrite starts again and --resume continues: choose one.")
    start = RunStart(out_dir, False, out_dir / checkpoints[0])
    start.removed_temporaries = remove_orphaned_temporaries(out_dir, run_files + (CONFIG_NAME,))
    for probe in out_dir.glob(f"{_PROBE_PREFIX}*"):
        probe.unlink(missing_ok=True)
    existing = _existing_run_files(out_dir, run_files)
    saved = [name for name in checkpoints if os.path.lexists(out_dir / name)]
    wanted = " or ".join(checkpoints)
    if overwrite:
        start.moved_to = move_run_aside(out_dir, run_files)
        if start.moved_to is not None:
            start.notes.append(f"moved the previous run ({', '.join(existing)}) to {start.moved_to}")
        return start
    if resume or resume_if_exists:
        if saved:
            start.resume = True
            start.checkpoint = out_dir / saved[0]
            return start
        if resume_if_exists:
            start.notes.append(f"no checkpoint in {out_dir}; starting from scratch (--resume-if-exists).")
            if existing:  # metrics without a checkpoint: keep them, do not mix them into the new run
                start.moved_to = move_run_aside(out_dir, run_files)
                start.notes.append(f"moved {', '.join(existing)} to {start.moved_to}")
            return start
        holds = f" (it holds {', '.join(existing)} but no {wanted})" if existing else ""
        raise RunExistsError(
            f"--resume: no {wanted} in {out_dir}{holds}, so there is nothing to resume. Check the "
            f"--out-dir; to start a new run there, drop --resume (or use --resume-if-exists, which resumes "
            f"when there is a checkpoint and starts fresh when there is none).")
    if existing:
        raise RunExistsError(
            f"{out_dir} already holds a run ({', '.join(existing)}). Continue it with --resume, or start "
            f"again with --overwrite (moves the old run to {out_dir / PREVIOUS_DIR}/<time>/, deleting "
            f"nothing), or choose another --out-dir.")
    return start


def add_run_options(group, what: str = "run") -> None:
    """The flags that choose between starting and resuming a run in ``--out-dir`` (the table in the
    module docstring), on an argparse parser or group: ``--resume``, ``--resume-if-exists``,
    ``--overwrite``. ``snnlab train`` and ``snnlab convert`` both use it; ``what`` names the run."""
    group.add_argument("--resume", action="store_true",
                       help=f"continue the {what} in OUT_DIR (an error if it holds none)")
    group.add_argument("--resume-if-exists", action="store_true",
                       help=f"continue the {what} in OUT_DIR if there is one, else start fresh (a job that may be killed)")
    group.add_argument("--overwrite", action="store_true",
                       help=f"start again in an OUT_DIR that holds a {what}: its files move to OUT_DIR/previous/<time>/ "
                            f"(nothing is deleted)")
