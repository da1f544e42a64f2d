"""``snnlab data fetch`` against an HTTP server on 127.0.0.1 that each test starts and stops.

The server holds small archives in the real formats (CIFAR's tar.gz of pickled batches, tonic's DVS
Gesture tar.gz of .npy recordings, CIFAR10-DVS's zip of per-class zips, N-MNIST's zips of .bin
files) and can drop the connection part-way through a file or ignore Range requests. The recorded
checksums are replaced by the test archives' own (the official ones cannot match made-up files);
``--mirror`` points the command at the server. A full disk is simulated: a free-space report below
the download size, a write that fails with ENOSPC, an extraction that fails with ENOSPC.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest
import torch

import snnlab.data.fetch as fetch
from snnlab.cli import main
from snnlab.data import DataMissingError, load_dataset
from snnlab.data.real import verify_dataset
from test_data_nmnist import write_nmnist
from test_data_real import CLASSES10, write_cifar10, write_cifar10dvs, write_dvsgesture


class ArchiveServer:
    """A threaded HTTP server on 127.0.0.1 serving ``files`` with Range support.

    ``drop_after[name] = n``: the next full request for ``name`` sends the headers of the whole file,
    then n bytes, then closes the connection. ``ignore_range``: answer every request with 200 and the
    whole file. ``requests`` records (path, Range header) of every request.
    """

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                start = 0
                if range_header and not server.ignore_range:
                    start = int(range_header.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.drop_after.pop(name, None) if not range_header else None
                if cut is not None:
                    self.wfile.write(body[start:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)  # the connection drops mid-file
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/mirror"

    def ranges(self, name: str) -> list[str | None]:
        return [r for p, r in self.requests if p.endswith("/" + name)]


@pytest.fixture
def server():
    srv = ArchiveServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(timeout=10)


def tar_gz(folder: Path, names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name in names:
            archive.add(folder / name, arcname=name)
    return buf.getvalue()


def zip_folder(folder: Path, names: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            for path in sorted((folder / name).rglob("*")):
                archive.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


def publish(server: ArchiveServer, monkeypatch, name: str, payloads: dict[str, bytes], md5=None) -> None:
    """Serve ``payloads`` (file name -> bytes) and record their md5 as the data set's checksums
    (or the wrong ``md5``)."""
    spec = fetch.SOURCES[name]
    archives = tuple(dataclasses.replace(a, md5=md5 or hashlib.md5(payloads[a.filename]).hexdigest(), sha256=None)
                     for a in spec.archives)
    monkeypatch.setitem(fetch.SOURCES, name, dataclasses.replace(spec, archives=archives))
    server.files.update(payloads)


def cifar10_archive(tmp_path) -> bytes:
    source = tmp_path / "source"
    write_cifar10(source)
    payload = tar_gz(source / "cifar10", ["cifar-10-batches-py"])
    assert len(payload) > 1000  # large enough to cut in the middle
    return payload


def leftovers(root: Path) -> list[Path]:
    """Temporary extraction folders or partial downloads left under the root."""
    return [p for p in root.rglob("*") if p.name.startswith((".extract-", ".old-")) or p.suffix == ".part"]


def run(*args) -> int:
    return main(["data", "fetch", *args, "--quiet"])


def test_good_archive_is_verified_extracted_and_readable(tmp_path, server, monkeypatch, capsys):
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": cifar10_archive(tmp_path)})
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    assert server.requests == [("/mirror/cifar-10-python.tar.gz", None)]
    data = load_dataset("cifar10", train=True, root=str(root), augment=False)
    assert len(data) == 20 and data[6][0].shape == (3, 32, 32)
    assert verify_dataset("cifar10", str(root), checksums=False)["ok"]  # the layout verify expects
    assert not (root / "downloads" / "cifar10" / "cifar-10-python.tar.gz").exists()  # removed once extracted
    assert leftovers(root) == []
    # already there: nothing is downloaded again
    assert run("cifar10", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    assert len(server.requests) == 1 and "already extracted" in capsys.readouterr().out


def test_wrong_checksum_is_refused_and_nothing_is_extracted(tmp_path, server, monkeypatch, capsys):
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": cifar10_archive(tmp_path)}, md5="0" * 32)
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url) == 1
    err = capsys.readouterr().err
    assert "md5" in err and "0" * 32 in err and "nothing was extracted" in err and err.count("\n") == 1
    assert err.startswith("snnlab data: error: cifar10: ")  # the CLI's one-line form (snnlab.errors)
    assert not (root / "cifar10" / "cifar-10-batches-py").exists()
    assert not (root / "downloads" / "cifar10" / "cifar-10-python.tar.gz").exists()
    assert leftovers(root) == []


def test_dropped_connection_is_resumed_with_a_range_request(tmp_path, server, monkeypatch):
    payload = cifar10_archive(tmp_path)
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": payload})
    monkeypatch.setattr(fetch.time, "sleep", lambda s: None)
    cut = len(payload) // 3
    server.drop_after["cifar-10-python.tar.gz"] = cut
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    assert server.ranges("cifar-10-python.tar.gz") == [None, f"bytes={cut}-"]  # only the missing bytes
    assert len(load_dataset("cifar10", train=False, root=str(root), augment=False)) == 4


def test_interrupted_download_resumes_on_the_next_run(tmp_path, server, monkeypatch, capsys):
    payload = cifar10_archive(tmp_path)
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": payload})
    cut = len(payload) // 2
    server.drop_after["cifar-10-python.tar.gz"] = cut
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url, "--retries", "0") == 1
    assert "run the same command again to resume" in capsys.readouterr().err
    part = root / "downloads" / "cifar10" / "cifar-10-python.tar.gz.part"
    assert part.read_bytes() == payload[:cut]
    assert not (root / "cifar10").exists()
    assert run("cifar10", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    assert server.ranges("cifar-10-python.tar.gz") == [None, f"bytes={cut}-"]
    assert (root / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file() and leftovers(root) == []


def test_a_server_ignoring_range_restarts_from_the_first_byte(tmp_path, server, monkeypatch):
    payload = cifar10_archive(tmp_path)
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": payload})
    part = tmp_path / "root" / "downloads" / "cifar10" / "cifar-10-python.tar.gz.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 500)  # a stale partial download
    server.ignore_range = True
    assert run("cifar10", "--root", str(tmp_path / "root"), "--mirror", server.url, "--no-verify") == 0
    assert server.ranges("cifar-10-python.tar.gz") == ["bytes=500-"]  # answered with 200: whole file


def test_full_disk_before_the_download(tmp_path, server, monkeypatch, capsys):
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": cifar10_archive(tmp_path)})
    usage = fetch.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda p: usage._replace(free=100))
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url) == 1
    err = capsys.readouterr().err
    assert "not enough free space" in err and "100 B free" in err
    assert not (root / "cifar10").exists() and leftovers(root) == []


def test_disk_full_while_writing_keeps_the_partial_download_for_a_resume(tmp_path, server, monkeypatch, capsys):
    payload = cifar10_archive(tmp_path)
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": payload})
    real_open = open

    room_left = len(payload) // 2

    class FillsUp:
        """A file that takes ``room_left`` bytes, then fails like a full disk."""

        def __init__(self, *args):
            self.inner = real_open(*args)

        def write(self, block):
            room = room_left - self.inner.tell()
            if len(block) > room:
                self.inner.write(block[:room])
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.inner.write(block)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

    def fake_open(path, *args):  # the download's writes fill the disk; other files open normally
        return FillsUp(path, *args) if str(path).endswith(".part") else real_open(path, *args)

    monkeypatch.setattr(fetch, "open", fake_open, raising=False)
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url) == 1
    err = capsys.readouterr().err
    assert "disk filled up while downloading" in err and "resumes" in err
    part = root / "downloads" / "cifar10" / "cifar-10-python.tar.gz.part"
    assert part.stat().st_size == room_left and not (root / "cifar10").exists()
    monkeypatch.undo()  # space freed
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": payload})
    assert run("cifar10", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    assert server.ranges("cifar-10-python.tar.gz")[-1] == f"bytes={room_left}-"
    assert (root / "cifar10" / "cifar-10-batches-py" / "data_batch_5").is_file()


def test_disk_full_while_extracting_leaves_no_half_extracted_folder(tmp_path, server, monkeypatch, capsys):
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": cifar10_archive(tmp_path)})
    real_extract = fetch._extract_one

    def extract_then_fill_up(path, into):
        real_extract(path, into)  # part of the data is on disk when the disk fills up
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fetch, "_extract_one", extract_then_fill_up)
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url) == 1
    assert "disk filled up while extracting" in capsys.readouterr().err
    assert not (root / "cifar10" / "cifar-10-batches-py").exists() and leftovers(root) == []
    assert (root / "downloads" / "cifar10" / "cifar-10-python.tar.gz").is_file()  # verified archive kept
    monkeypatch.setattr(fetch, "_extract_one", real_extract)
    assert run("cifar10", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    assert len(server.requests) == 1  # the kept archive was not downloaded again
    assert (root / "cifar10" / "cifar-10-batches-py" / "batches.meta").is_file()


def test_an_archive_without_the_expected_layout_is_refused(tmp_path, server, monkeypatch, capsys):
    source = tmp_path / "source"
    write_cifar10(source)
    wrong = tar_gz(source / "cifar10" / "cifar-10-batches-py", ["data_batch_1", "test_batch"])  # no folder
    publish(server, monkeypatch, "cifar10", {"cifar-10-python.tar.gz": wrong})
    root = tmp_path / "root"
    assert run("cifar10", "--root", str(root), "--mirror", server.url) == 1
    err = capsys.readouterr().err
    assert "expected layout" in err and "cifar-10-batches-py" in err and "data_batch_1" in err
    assert not (root / "cifar10" / "cifar-10-batches-py").exists() and leftovers(root) == []


def test_zip_members_outside_the_folder_are_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("Train/0/a.bin", b"12345")
        archive.writestr("../escape.txt", b"x")
    path = tmp_path / "evil.zip"
    path.write_bytes(buf.getvalue())
    with pytest.raises(fetch.FetchError, match="outside"):
        fetch.extract_archive(path, tmp_path / "out", ("Train",))
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "Train").exists()


def test_dvsgesture_two_archives_then_verify(tmp_path, server, monkeypatch, capsys):
    source = tmp_path / "source"
    write_dvsgesture(source)
    folder = source / "DVSGesture"
    publish(server, monkeypatch, "dvsgesture", {"ibmGestureTrain.tar.gz": tar_gz(folder, ["ibmGestureTrain"]),
                                                "ibmGestureTest.tar.gz": tar_gz(folder, ["ibmGestureTest"])})
    root = tmp_path / "root"
    assert run("dvsgesture", "--root", str(root), "--mirror", server.url) == 0
    assert "dvsgesture: ready, 9 files" in capsys.readouterr().out  # snnlab data verify: OK
    x, _ = load_dataset("dvsgesture", train=False, root=str(root))[0]
    assert x.shape == (40, 2, 32, 32)


def test_cifar10dvs_per_class_zips_are_extracted(tmp_path, server, monkeypatch):
    source = tmp_path / "source"
    write_cifar10dvs(source, per_class=3)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as archive:  # tonic's CIFAR10DVS.zip: one zip per class
        for name in CLASSES10:
            archive.writestr(f"{name}.zip", zip_folder(source / "CIFAR10DVS", [name]))
    publish(server, monkeypatch, "cifar10dvs", {"CIFAR10DVS.zip": outer.getvalue()})
    root = tmp_path / "root"
    assert run("cifar10dvs", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    folder = root / "CIFAR10DVS"
    assert sorted(p.name for p in folder.iterdir()) == sorted(CLASSES10)  # no zips left behind
    assert all(len(list((folder / c).glob("*.aedat4"))) == 3 for c in CLASSES10)
    status = verify_dataset("cifar10dvs", str(root))
    assert status["files"] == 30 and any("expected 1000" in p for p in status["problems"])


def test_nmnist_is_fetched_into_tonics_layout_and_loads(tmp_path, server, monkeypatch):
    source = tmp_path / "source"
    write_nmnist(source, per_digit=1)
    folder = source / "NMNIST"
    publish(server, monkeypatch, "nmnist", {"train.zip": zip_folder(folder, ["Train"]),
                                            "test.zip": zip_folder(folder, ["Test"])})
    root = tmp_path / "root"
    assert run("nmnist", "--root", str(root), "--mirror", server.url, "--no-verify") == 0
    test = load_dataset("nmnist", train=False, root=str(root))
    assert len(test) == 10 and test[0][0].shape == (10, 2, 34, 34) and test[0][0].dtype == torch.float32


def test_bad_input_gets_one_line_errors(tmp_path, capsys):
    assert main(["data", "fetch", "digits"]) == 2
    assert "knows cifar10, cifar100, dvsgesture, cifar10dvs, nmnist" in capsys.readouterr().err
    assert main(["data", "fetch"]) == 2
    assert "name the data set" in capsys.readouterr().err
    assert main(["data", "fetch", "cifar10", "--retries", "-1", "--root", str(tmp_path)]) == 2
    assert main(["data", "fetch", "cifar10", "--mirror", "not-a-url", "--root", str(tmp_path)]) == 2
    assert "base URL" in capsys.readouterr().err


def test_sources_record_a_checksum_and_where_it_was_published(capsys):
    assert main(["data", "fetch", "--list"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert {r["dataset"] for r in rows} == {"cifar10", "cifar100", "dvsgesture", "cifar10dvs", "nmnist"}
    for row in rows:
        algorithm, digest = row["checksum"].split(":")
        assert algorithm in ("md5", "sha256") and len(digest) == {"md5": 32, "sha256": 64}[algorithm]
        assert row["url"].startswith("https://") and row["source"]


def test_nothing_downloads_unless_fetch_runs(tmp_path, monkeypatch):
    """Every real loader, with its data missing, raises DataMissingError naming the fetch command;
    no network call is made."""
    import urllib.request

    def forbidden(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    import tonic.dataset
    import torchvision.datasets.cifar

    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", forbidden)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", forbidden)
    for name in fetch.FETCHABLE:
        with pytest.raises(DataMissingError, match=f"snnlab data fetch {name}"):
            load_dataset(name, train=True, root=str(tmp_path))


def test_a_second_fetch_of_the_same_set_is_refused_while_one_runs(tmp_path, server, capsys):
    """Two fetches of one data set would write the same download: the second stops at once (exit 2)."""
    from snnlab.data.fetch import DOWNLOADS
    from snnlab.files import folder_lock

    root = tmp_path / "data"
    with folder_lock(root / DOWNLOADS / ".cifar10.lock", wait=False):
        assert run("cifar10", "--root", str(root), "--mirror", server.url) == 2
    err = capsys.readouterr().err
    assert err.startswith("snnlab data: error: ") and "in use by" in err and err.count("\n") == 1
    assert server.requests == []  # nothing was downloaded
