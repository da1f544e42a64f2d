"""``snnlab data fetch``: opt-in download of the real data sets, checked against published checksums.

Nothing in snnlab downloads on its own: the loaders raise
:class:`~snnlab.data.paths.DataMissingError` when files are missing, and only this module (run by
``snnlab data fetch NAME``) opens a network connection. For every data set it knows the official
archive(s), their checksum and *where that checksum was published* (:data:`SOURCES`).

What :func:`fetch_dataset` does, per archive:

1. **Download** into ``<root>/downloads/<name>/<file>.part``. An interrupted download is resumed with an
   HTTP ``Range`` request, both within one run (a dropped connection is retried ``retries`` times)
   and across runs (the ``.part`` file stays). A server that ignores ``Range`` (status 200) is
   restarted from byte 0. Before writing, the free space is compared with the bytes still to come
   (``Content-Length``); a full disk while writing keeps what was downloaded, for a later resume.
2. **Verify** the whole file against the recorded MD5 / SHA-256. A mismatch deletes the file and
   extracts nothing.
3. **Extract** into a temporary folder next to the destination (same file system), check that
   the archive produced the folders the loaders expect, then move each into place with a rename.
   A failure at any point (bad layout, full disk, Ctrl-C) removes the temporary folder: the data
   root never holds a half-extracted data set. Tar members are extracted with Python's ``data``
   filter and zip members are checked, so an archive cannot write outside its folder.
4. The archive is deleted after a successful extraction (``keep_archives=True`` keeps it).

``mirror``: a base URL that replaces each archive's host and path (``<mirror>/<file name>``);
the recorded checksums still apply, so a mirror can only serve the official bytes.

The destinations are the layout ``snnlab data verify`` and the loaders read
(:mod:`snnlab.data.paths`)::

    cifar10     <root>/cifar10/cifar-10-batches-py/
    cifar100    <root>/cifar100/cifar-100-python/
    dvsgesture  <root>/DVSGesture/ibmGestureTrain/, <root>/DVSGesture/ibmGestureTest/
    cifar10dvs  <root>/CIFAR10DVS/<class>/*.aedat4   (the archive holds one zip per class)
    nmnist      <root>/NMNIST/Train/<digit>/*.bin, <root>/NMNIST/Test/...
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Callable

from snnlab.data.paths import data_root
from snnlab.errors import EXIT_FAILED, SnnlabError
from snnlab.files import file_checksum, folder_lock

__all__ = [
    "Archive",
    "FetchSpec",
    "SOURCES",
    "FETCHABLE",
    "FetchError",
    "ChecksumError",
    "DiskFullError",
    "fetch_dataset",
    "download",
    "file_checksum",
    "extract_archive",
    "archive_url",
    "sources_table",
]

DOWNLOADS = "downloads"
"""Folder under the data root where archives are downloaded (``<file>.part`` while incomplete)."""


@dataclass(frozen=True)
class Archive:
    """One archive to download: its file name, official URL, checksum and the top-level entries it
    must produce when extracted (``provides``; after the per-class zips for ``nested`` archives)."""

    filename: str
    url: str
    md5: str | None = None
    sha256: str | None = None
    provides: tuple[str, ...] = ()
    nested: bool = False
    """The archive holds further ``.zip`` files (one per class), each extracted in turn."""

    def __post_init__(self):
        if not (self.md5 or self.sha256):
            raise ValueError(f"archive {self.filename!r} needs a published md5 or sha256.")

    @property
    def checksum(self) -> tuple[str, str]:
        """``(algorithm, hex digest)``; SHA-256 when both are known."""
        return ("sha256", self.sha256.lower()) if self.sha256 else ("md5", self.md5.lower())


@dataclass(frozen=True)
class FetchSpec:
    """A data set that ``snnlab data fetch`` can download."""

    name: str
    into: str
    """Folder under the data root the archives are extracted into."""
    archives: tuple[Archive, ...]
    source: str
    """Where the URLs and checksums were published."""
    homepage: str
    note: str = ""


_CLASSES10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

SOURCES: dict[str, FetchSpec] = {
    "cifar10": FetchSpec(
        "cifar10", "cifar10",
        (Archive("cifar-10-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                 md5="c58f30108f718f92721af3b95e74349a", provides=("cifar-10-batches-py",)),),
        source="md5 published on the CIFAR page (https://www.cs.toronto.edu/~kriz/cifar.html, 'CIFAR-10 "
               "python version'); the same URL and md5 in torchvision 0.29.1, torchvision/datasets/cifar.py "
               "(CIFAR10.url, CIFAR10.tgz_md5)",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "cifar100": FetchSpec(
        "cifar100", "cifar100",
        (Archive("cifar-100-python.tar.gz", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                 md5="eb9058c3a382ffc7106e4002c42a8d85", provides=("cifar-100-python",)),),
        source="torchvision 0.29.1, torchvision/datasets/cifar.py (CIFAR100.url, CIFAR100.tgz_md5); the CIFAR "
               "page (https://www.cs.toronto.edu/~kriz/cifar.html) lists the md5 of the 'CIFAR-100 python version'",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html"),
    "dvsgesture": FetchSpec(
        "dvsgesture", "DVSGesture",
        (Archive("ibmGestureTrain.tar.gz", "https://figshare.com/ndownloader/files/38022171",
                 md5="3a8f0d4120a166bac7591f77409cb105", provides=("ibmGestureTrain",)),
         Archive("ibmGestureTest.tar.gz", "https://figshare.com/ndownloader/files/38020584",
                 md5="56070e45dadaa85fff82e0fbfbc06de5", provides=("ibmGestureTest",))),
        source="tonic 1.7.0, tonic/datasets/dvsgesture.py (DVSGesture.train_url/train_md5, test_url/test_md5)",
        homepage="https://research.ibm.com/interactive/dvsgesture/",
        note="tonic's preprocessed copy on figshare (recordings cut into one gesture each, timestamps in ms), "
             "the layout snnlab reads; IBM's original release (uncut .aedat recordings) is linked from the homepage"),
    "cifar10dvs": FetchSpec(
        "cifar10dvs", "CIFAR10DVS",
        (Archive("CIFAR10DVS.zip", "https://figshare.com/ndownloader/files/38023437",
                 md5="ce3a4a0682dc0943703bd8f749a7701c", provides=_CLASSES10, nested=True),),
        source="tonic 1.7.0, tonic/datasets/cifar10dvs.py (CIFAR10DVS.url, CIFAR10DVS.file_md5)",
        homepage="https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671",
        note="one zip of ten per-class zips of .aedat4 recordings; reading them needs `pip install aedat`"),
    "nmnist": FetchSpec(
        "nmnist", "NMNIST",
        (Archive("train.zip", "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
                              "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
                 md5="20959b8e626244a1b502305a9e6e2031", provides=("Train",)),
         Archive("test.zip", "https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"
                             "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded",
                 md5="69ca8762b2fe404d9b9bad1103e97832", provides=("Test",))),
        source="tonic 1.7.0, tonic/datasets/nmnist.py (NMNIST.train_url/train_md5, test_url/test_md5; the "
               "authors' Mendeley Data record 468j46mzdv; earlier tonic releases list the same md5 sums for "
               "the Dropbox copy)",
        homepage="https://www.garrickorchard.com/datasets/n-mnist"),
}
"""Data set name -> :class:`FetchSpec` (official URLs, checksums, where each was published)."""

FETCHABLE = tuple(SOURCES)


class FetchError(SnnlabError, RuntimeError):
    """A download or extraction failed; the message says what happened and what to do. An
    :class:`~snnlab.errors.SnnlabError`: the command line prints it as one line and exits 1 (the
    run failed; nothing half-extracted is left)."""

    exit_code = EXIT_FAILED


class ChecksumError(FetchError):
    """The downloaded file is not the official archive."""


class DiskFullError(FetchError):
    """Not enough free space for the download or the extraction."""


def archive_url(archive: Archive, mirror: str | None = None) -> str:
    """The URL to download ``archive`` from: the official one, or ``<mirror>/<file name>``."""
    if mirror is None:
        return archive.url
    if not isinstance(mirror, str) or "://" not in mirror:
        raise ValueError(f"mirror must be a base URL such as https://host/path, got {mirror!r}.")
    return mirror.rstrip("/") + "/" + archive.filename


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover


def _is_disk_full(error: OSError) -> bool:
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)


_RETRYABLE = (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError, socket.timeout)


def _open(url: str, start: int, timeout: float):
    headers = {"User-Agent": "snnlab-data-fetch"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _response_start(response, requested: int) -> int:
    """The byte offset the response body starts at (0 unless the server honoured our Range)."""
    if requested and getattr(response, "status", 200) == 206:
        content_range = response.headers.get("Content-Range", "")
        try:
            start = int(content_range.split()[1].split("-")[0])
        except (IndexError, ValueError):
            start = -1
        if start != requested:
            raise FetchError(f"the server answered a resume request for byte {requested} with "
                             f"Content-Range {content_range!r}; delete the .part file and retry.")
        return requested
    return 0


def download(url: str, dest: str | os.PathLike, *, algorithm: str, expected: str, retries: int = 3,
             timeout: float = 60.0, progress: bool = True, chunk_size: int = 1 << 20,
             retry_wait: float = 1.0) -> Path:
    """Download ``url`` to ``dest`` through ``dest + '.part'``, resuming, and verify its checksum.

    A connection dropped mid-file is retried up to ``retries`` times, each time asking for the
    missing bytes only (HTTP Range). The finished file is compared with ``expected``
    (``algorithm``: ``md5`` / ``sha256``): on a mismatch it is deleted and :class:`ChecksumError` is
    raised. If ``dest`` already holds the right file nothing is downloaded. Returns ``dest``.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and file_checksum(dest, algorithm) == expected:
        return dest
    part = dest.with_name(dest.name + ".part")
    attempts = 0
    while True:
        have = part.stat().st_size if part.is_file() else 0
        try:
            response = _open(url, have, timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # nothing left to send: the .part is complete (or wrong)
                break
            raise FetchError(f"{url}: HTTP {error.code} {error.reason}.") from None
        except _RETRYABLE as error:
            attempts += 1
            if attempts > retries:
                raise FetchError(f"cannot reach {url} ({error}); check the connection or use --mirror.") from None
            time.sleep(retry_wait * attempts)
            continue
        with response:
            start = _response_start(response, have)
            length = response.headers.get("Content-Length")
            total = start + int(length) if length is not None else None
            free = shutil.disk_usage(part.parent).free
            if total is not None and total - start > free:
                raise DiskFullError(
                    f"not enough free space for {dest.name}: {_human(total - start)} still to download, "
                    f"{_human(free)} free in {part.parent}. Free some space (or choose another --root) "
                    f"and run the command again.")
            written = start
            bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                       desc=dest.name, disable=not progress, leave=False)
            try:
                with open(part, "ab" if start else "wb") as out:
                    while True:
                        block = response.read(chunk_size)
                        if not block:
                            break
                        out.write(block)
                        written += len(block)
                        bar.update(len(block))
            except OSError as error:
                if _is_disk_full(error):
                    raise DiskFullError(
                        f"the disk filled up while downloading {dest.name} ({_human(written)} of "
                        f"{_human(total) if total else '?'} written to {part}). Free some space and run the "
                        f"command again: the download resumes from there.") from None
                if not isinstance(error, _RETRYABLE):
                    raise
                complete = False  # the connection dropped: resume below
            except HTTPException:  # e.g. IncompleteRead
                complete = False
            else:
                complete = total is None or written >= total
            finally:
                bar.close()
        if complete:
            break
        attempts += 1
        if attempts > retries:
            raise FetchError(
                f"the download of {dest.name} was interrupted {attempts} time(s) ({_human(part.stat().st_size)} "
                f"of {_human(total) if total else '?'} kept in {part}); run the same command again to resume.")
        time.sleep(retry_wait * attempts)
    actual = file_checksum(part, algorithm)
    if actual != expected:
        size = part.stat().st_size
        part.unlink()
        raise ChecksumError(
            f"{dest.name} from {url} has {algorithm} {actual} ({_human(size)}), but the official archive has "
            f"{expected}: not the official file (a changed archive, an error page or a bad mirror). It was "
            f"deleted and nothing was extracted.")
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------- extraction


def _safe_zip_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = []
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            raise FetchError(f"refusing to extract {info.filename!r}: it points outside the archive's folder.")
        members.append(info)
    return members


def _extract_one(path: Path, into: Path) -> None:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            archive.extractall(into, members=_safe_zip_members(archive))
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as archive:
            archive.extractall(into, filter="data")
    else:
        raise FetchError(f"{path.name} is neither a zip nor a tar archive.")


def _extract_nested(folder: Path) -> None:
    """Extract every ``.zip`` at the top of ``folder`` (CIFAR10-DVS's per-class zips) and delete it.
    A zip whose entries are not inside a folder named like it is extracted into such a folder."""
    for inner in sorted(folder.glob("*.zip")):
        with zipfile.ZipFile(inner) as archive:
            members = _safe_zip_members(archive)
            tops = {PurePosixPath(m.filename).parts[0] for m in members if m.filename.strip("/")}
            target = folder if tops == {inner.stem} else folder / inner.stem
            archive.extractall(target, members=members)
        inner.unlink()


def extract_archive(path: str | os.PathLike, dest: str | os.PathLike, provides: tuple[str, ...], *,
                    nested: bool = False, replace: bool = False) -> list[Path]:
    """Extract ``path`` so that each entry in ``provides`` ends up in ``dest``, or nothing does.

    Extraction goes to a temporary folder inside ``dest``; the archive must produce every entry of
    ``provides`` at its top level (else :class:`FetchError`, naming what it held); each is then
    renamed into ``dest`` (with ``replace``, over an existing one). Anything else the archive
    holds is dropped. On any error (including a full disk, :class:`DiskFullError`) the temporary
    folder is removed. Returns the paths now in place.
    """
    path, dest = Path(path), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            _extract_one(path, tmp)
            if nested:
                _extract_nested(tmp)
        except OSError as error:
            if _is_disk_full(error):
                raise DiskFullError(f"the disk filled up while extracting {path.name} into {dest}; nothing was "
                                    f"kept. Free some space and run the command again.") from None
            raise
        except (tarfile.TarError, zipfile.BadZipFile) as error:
            raise FetchError(f"{path.name} is damaged ({error}); delete it and fetch again.") from None
        missing = [name for name in provides if not (tmp / name).exists()]
        if missing:
            found = sorted(p.name for p in tmp.iterdir())
            raise FetchError(f"{path.name} does not have the expected layout: no {', '.join(missing)} at its top "
                             f"level (it holds {', '.join(found[:12]) or 'nothing'}). Nothing was extracted.")
        placed = []
        for name in provides:
            target = dest / name
            if target.exists():
                if not replace:
                    raise FetchError(f"{target} already exists; use --force to replace it.")
                old = Path(tempfile.mkdtemp(prefix=".old-", dir=dest))
                os.replace(target, old / name)
            os.replace(tmp / name, target)
            placed.append(target)
        return placed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for old in dest.glob(".old-*"):
            shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- the command


def _spec(name: str) -> FetchSpec:
    if name not in SOURCES:
        raise ValueError(f"snnlab data fetch knows {', '.join(SOURCES)}; got {name!r} (the embedded data "
                         f"sets need no download: snnlab data prepare).")
    return SOURCES[name]


def fetch_dataset(name: str, root: str | os.PathLike | None = None, *, mirror: str | None = None,
                  force: bool = False, keep_archives: bool = False, retries: int = 3, timeout: float = 60.0,
                  progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Download, verify and extract data set ``name`` (see :data:`SOURCES`) under the data root.

    Already-extracted parts are skipped unless ``force``. Returns ``{"name", "root", "folder",
    "archives": [{"file", "url", "checksum", "status"}]}`` with status ``"present"`` (skipped) or
    ``"fetched"``. Errors are :class:`FetchError` subclasses with a one-line explanation.
    """
    spec = _spec(name)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an int >= 0, got {retries!r}.")
    root_path = data_root(root)
    dest = root_path / spec.into
    downloads = root_path / DOWNLOADS
    report = {"name": name, "root": str(root_path), "folder": str(dest), "archives": []}
    with folder_lock(downloads / f".{name}.lock", wait=False, what=f"the {name} download"):
        for archive in spec.archives:
            algorithm, expected = archive.checksum
            url = archive_url(archive, mirror)
            entry = {"file": archive.filename, "url": url, "checksum": f"{algorithm}:{expected}"}
            if not force and all((dest / p).exists() for p in archive.provides):
                log(f"{name}: {archive.filename} already extracted in {dest}; skipped (--force re-fetches).")
                report["archives"].append({**entry, "status": "present"})
                continue
            log(f"{name}: downloading {url}")
            path = download(url, downloads / name / archive.filename, algorithm=algorithm, expected=expected,
                            retries=retries, timeout=timeout, progress=progress)
            log(f"{name}: {algorithm} OK; extracting into {dest}")
            extract_archive(path, dest, archive.provides, nested=archive.nested, replace=force)
            if not keep_archives:
                path.unlink()
            report["archives"].append({**entry, "status": "fetched"})
    return report


def sources_table() -> list[dict]:
    """One row per archive: data set, file, URL, checksum and where it was published."""
    return [{"dataset": spec.name, "file": a.filename, "url": a.url, "checksum": ":".join(a.checksum),
             "source": spec.source, "homepage": spec.homepage, **({"note": spec.note} if spec.note else {})}
            for spec in SOURCES.values() for a in spec.archives]
