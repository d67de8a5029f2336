"""Tests of `macos_lite.data.download` against archives served from 127.0.0.1; the real network is never used."""

from __future__ import annotations

import collections
import hashlib
import io
import shutil
import socket
import stat
import tarfile
import threading
import urllib.parse
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from macos_lite.data import download as dl

PAYLOAD = bytes(range(256)) * 800  # 200 KiB, large enough for a meaningful partial file
CSV = b"source_image,target_image,class\ntoy/images/a.txt,toy/images/b.bin,1\n"
TOY_MEMBERS = {"toy/images/a.txt": b"hello\n", "toy/images/b.bin": PAYLOAD}


# ----------------------------------------------------------------------------------------------------------
# A local HTTP server: Range-aware (or Range-ignoring), 404 for unknown paths, logging every request.


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.log.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start, status = 0, 200
        ranged = self.headers.get("Range", "")
        if self.server.honour_range and ranged.startswith("bytes="):
            start = int(ranged[len("bytes="):].partition("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:self.server.cut_at or None])

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.log, httpd.honour_range, httpd.cut_at = {}, [], True, None
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _local_only(monkeypatch):
    """Fail any test that would reach beyond 127.0.0.1."""
    real = urllib.request.urlopen

    def guarded(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1", f"test tried to reach {url}"
        return real(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture
def closed_port_url():
    """A URL on a local port that nobody listens on: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------------------------------------
# Helpers


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def tar_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def toy_sources(base: str, *, archive: str = "toy.zip", csv: bool = True, pins: dict | None = None) -> dict:
    """A one-dataset manifest named 'toy' whose files are served under ``base``."""
    pins = pins or {}
    files = [{"name": archive, "urls": [f"{base}/{archive}"], "sha256": pins.get(archive), "extract": True,
              "alternatives": ["the toy project page, https://example.org/toy"]}]
    if csv:
        files.append({"name": "pairs.csv", "urls": [f"{base}/pairs.csv"], "sha256": pins.get("pairs.csv")})
    return {"toy": {"title": "Toy", "tasks": ["matching"], "marker": "toy/images", "files": files,
                    "citation": "A. Author. Toy. 2024."}}


def serve_toy(server, archive_bytes: bytes | None = None) -> bytes:
    archive_bytes = archive_bytes if archive_bytes is not None else zip_bytes(TOY_MEMBERS)
    server.files.update({"/toy.zip": archive_bytes, "/pairs.csv": CSV})
    return archive_bytes


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# ----------------------------------------------------------------------------------------------------------
# Download, resume, idempotence


def test_full_download_extracts_records_and_reports(server, tmp_path, capsys):
    archive = serve_toy(server)
    folder = dl.download("toy", tmp_path, sources=toy_sources(server.url))

    assert folder == tmp_path / "toy"
    assert (folder / "toy/images/b.bin").read_bytes() == PAYLOAD
    assert (folder / "pairs.csv").read_bytes() == CSV
    assert (folder / "toy.zip").read_bytes() == archive
    assert not (folder / "SHA256SUMS").exists()  # a download never vouches for itself
    assert not list(folder.glob("*.part")) and not list(folder.glob(".*.extracting"))
    assert dl.dataset_status("toy", tmp_path, sources=toy_sources(server.url)) == "present"
    out = capsys.readouterr().out
    assert sha(archive) in out and "toy.zip is UNVERIFIED" in out
    assert f"macos-lite evaluate --dataset toy --data-root {folder}" in out


def test_second_call_does_nothing(server, tmp_path, capsys):
    serve_toy(server)
    sources = toy_sources(server.url)
    folder = dl.download("toy", tmp_path, quiet=True, sources=sources)
    sentinel = folder / "toy/images/sentinel"
    sentinel.write_text("kept")
    requests = len(server.log)

    assert dl.download("toy", tmp_path, sources=sources) == folder
    assert len(server.log) == requests  # no network
    assert sentinel.exists()  # no re-extraction
    assert f"already in {folder}" in capsys.readouterr().out


def test_resume_continues_partial_file_with_range(server, tmp_path):
    archive = serve_toy(server)
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.zip.part").write_bytes(archive[:70_000])

    dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url))

    assert ("/toy.zip", "bytes=70000-") in server.log
    assert (folder / "toy.zip").read_bytes() == archive


def test_interrupted_download_is_kept_and_resumed(server, tmp_path):
    archive = serve_toy(server)
    server.cut_at = 50_000  # the connection drops after this many bytes
    sources = toy_sources(server.url)
    with pytest.raises(dl.SourceUnavailableError, match="partial download .* is kept"):
        dl.download("toy", tmp_path, quiet=True, sources=sources)
    part = tmp_path / "toy" / "toy.zip.part"
    assert part.read_bytes() == archive[:50_000]

    server.cut_at = None
    dl.download("toy", tmp_path, quiet=True, sources=sources)
    assert ("/toy.zip", "bytes=50000-") in server.log
    assert (tmp_path / "toy" / "toy.zip").read_bytes() == archive


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    archive = serve_toy(server)
    server.honour_range = False
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.zip.part").write_bytes(b"x" * 5000)  # appending to this would corrupt the file

    dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url))

    assert ("/toy.zip", "bytes=5000-") in server.log
    assert (folder / "toy.zip").read_bytes() == archive


def test_whole_part_file_is_used_when_range_is_not_satisfiable(server, tmp_path):
    archive = serve_toy(server)
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.zip.part").write_bytes(archive)

    dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url))

    assert (folder / "toy.zip").read_bytes() == archive


# ----------------------------------------------------------------------------------------------------------
# Checksums


def test_pinned_checksum_mismatch_keeps_bad_file_aside(server, tmp_path):
    serve_toy(server)
    wrong = "0" * 64
    with pytest.raises(dl.ChecksumError) as err:
        dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url, pins={"pairs.csv": wrong}))

    folder = tmp_path / "toy"
    message = str(err.value)
    assert str(folder / "pairs.csv") in message and wrong in message and sha(CSV) in message
    assert "macos-lite download toy" in message
    assert not (folder / "pairs.csv").exists()
    assert (folder / "pairs.csv.sha256-mismatch").read_bytes() == CSV


def test_matching_pin_is_accepted(server, tmp_path):
    archive = serve_toy(server)
    pins = {"toy.zip": sha(archive), "pairs.csv": sha(CSV)}
    dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url, pins=pins))
    assert (tmp_path / "toy/toy/images/a.txt").exists()


def test_hashes_listed_by_the_user_are_enforced(server, tmp_path):
    serve_toy(server)
    sources = toy_sources(server.url)
    folder = dl.download("toy", tmp_path, quiet=True, sources=sources)
    assert not (folder / "SHA256SUMS").exists()
    (folder / "SHA256SUMS").write_text(f"{sha(CSV)}  pairs.csv\n")

    changed = CSV + b"toy/images/b.bin,toy/images/a.txt,1\n"
    server.files["/pairs.csv"] = changed
    (folder / "pairs.csv").unlink()
    with pytest.raises(dl.ChecksumError) as err:
        dl.download("toy", tmp_path, force=True, quiet=True, sources=sources)

    assert "SHA256SUMS" in str(err.value) and sha(CSV) in str(err.value) and sha(changed) in str(err.value)
    assert (folder / "pairs.csv.sha256-mismatch").read_bytes() == changed


def test_error_page_instead_of_archive_is_set_aside(server, tmp_path):
    serve_toy(server, archive_bytes=b"<html>Forbidden</html>")
    with pytest.raises(dl.DownloadError, match="not a valid zip archive") as err:
        dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url))
    assert str(tmp_path / "toy" / "toy.zip") in str(err.value)
    assert (tmp_path / "toy/toy.zip.not-an-archive").exists()
    assert not (tmp_path / "toy" / "SHA256SUMS").exists()


# ----------------------------------------------------------------------------------------------------------
# Safe extraction


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize("evil", ["../evil.txt", "ABSOLUTE"])
def test_escaping_members_are_refused(tmp_path, kind, evil):
    outside = tmp_path / "outside"
    outside.mkdir()
    evil = str(outside / "evil.txt") if evil == "ABSOLUTE" else evil
    target = tmp_path / "target" / "inner"
    target.mkdir(parents=True)
    members = {"ok/first.txt": b"fine", evil: b"pwned"}
    archive = tmp_path / f"evil.{kind}"
    archive.write_bytes(zip_bytes(members) if kind == "zip" else tar_bytes(members))

    with pytest.raises(dl.UnsafeArchiveError) as err:
        dl.extract_archive(archive, target)

    assert repr(evil) in str(err.value) and str(archive) in str(err.value)
    assert tree(target) == set()  # refused before anything was written
    assert tree(tmp_path / "target") == {"inner"} and tree(outside) == set()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
@pytest.mark.parametrize("link", ["../../outside", "ABSOLUTE"])
def test_symlink_pointing_outside_is_refused(tmp_path, kind, link):
    outside = tmp_path / "outside"
    outside.mkdir()
    link = str(outside) if link == "ABSOLUTE" else link
    target = tmp_path / "target"
    target.mkdir()
    archive = tmp_path / f"link.{kind}"
    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            info = zipfile.ZipInfo("toy/link")
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, link)
            zf.writestr("toy/link/evil.txt", b"pwned")
        archive.write_bytes(buf.getvalue())
    else:
        archive.write_bytes(tar_bytes({"toy/link/evil.txt": b"pwned"}, links={"toy/link": link}))

    with pytest.raises(dl.UnsafeArchiveError, match="'toy/link'"):
        dl.extract_archive(archive, target)

    assert tree(target) == set() and tree(outside) == set()


def test_links_inside_the_folder_are_extracted(tmp_path):
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(tar_bytes({"toy/images/a.txt": b"hello"}, links={"toy/alias.txt": "images/a.txt"}))
    dl.extract_archive(archive, tmp_path)
    assert (tmp_path / "toy/alias.txt").read_bytes() == b"hello"


def test_refused_archive_leaves_no_dataset_behind(server, tmp_path):
    serve_toy(server, archive_bytes=zip_bytes({**TOY_MEMBERS, "../../evil.txt": b"pwned"}))
    sources = toy_sources(server.url)
    with pytest.raises(dl.UnsafeArchiveError, match="evil.txt"):
        dl.download("toy", tmp_path, quiet=True, sources=sources)

    folder = tmp_path / "toy"
    assert not (folder / "toy").exists() and not list(folder.glob(".*.extracting"))
    assert not list(tmp_path.rglob("evil.txt"))
    assert dl.dataset_status("toy", tmp_path, sources=sources) == "incomplete"


def test_tar_gz_dataset_downloads(server, tmp_path):
    server.files["/toy.tar.gz"] = tar_bytes(TOY_MEMBERS)
    folder = dl.download("toy", tmp_path, quiet=True,
                         sources=toy_sources(server.url, archive="toy.tar.gz", csv=False))
    assert (folder / "toy/images/b.bin").read_bytes() == PAYLOAD


# ----------------------------------------------------------------------------------------------------------
# Dead links, manual fallback, disk space


def test_unreachable_host_names_url_and_manual_fallback(closed_port_url, tmp_path):
    with pytest.raises(dl.SourceUnavailableError) as err:
        dl.download("toy", tmp_path, quiet=True, sources=toy_sources(closed_port_url))

    message = str(err.value)
    assert f"{closed_port_url}/toy.zip" in message and "Connection" in message
    assert str(tmp_path / "toy" / "toy.zip") in message  # where to put a hand-downloaded copy
    assert f"macos-lite download toy --root {tmp_path}" in message
    assert "https://example.org/toy" in message


def test_http_404_names_url_and_status(server, tmp_path):
    with pytest.raises(dl.SourceUnavailableError) as err:
        dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url))
    assert f"{server.url}/toy.zip: HTTP 404" in str(err.value)


def test_preplaced_archive_is_used_without_network(closed_port_url, tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    archive = zip_bytes(TOY_MEMBERS)
    (folder / "toy.zip").write_bytes(archive)
    (folder / "pairs.csv").write_bytes(CSV)

    dl.download("toy", tmp_path, quiet=True, sources=toy_sources(closed_port_url))

    assert (folder / "toy/images/a.txt").read_bytes() == b"hello\n"
    assert not (folder / "SHA256SUMS").exists()


def test_hand_extracted_copy_is_accepted_without_archive(closed_port_url, tmp_path):
    (tmp_path / "toy/toy/images").mkdir(parents=True)
    folder = dl.download("toy", tmp_path, quiet=True, sources=toy_sources(closed_port_url, csv=False))
    assert dl.dataset_status("toy", tmp_path, sources=toy_sources(closed_port_url)) == "present"
    assert not (folder / "toy.zip").exists()


def test_low_disk_space_is_reported_before_writing(server, tmp_path, monkeypatch):
    serve_toy(server)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6 - 1000, 1000))

    with pytest.raises(dl.DiskSpaceError) as err:
        dl.download("toy", tmp_path, quiet=True, sources=toy_sources(server.url))

    assert str(tmp_path / "toy") in str(err.value) and "needed" in str(err.value)
    assert not (tmp_path / "toy" / "toy.zip.part").exists()


# ----------------------------------------------------------------------------------------------------------
# Packaged manifest and command line


def test_packaged_manifest_lists_the_benchmarks():
    sources = dl.load_sources()
    assert set(sources) == {"pf-pascal", "pf-willow", "spair", "tss", "internet", "weizmann-horse", "icoseg"}
    assert sources["weizmann-horse"]["manual"] and not sources["weizmann-horse"]["files"]
    for name, entry in sources.items():
        if entry.get("manual"):
            continue
        assert entry["marker"] and entry["citation"] and entry["files"], name
        assert any(spec.get("extract") for spec in entry["files"]), name
        for spec in entry["files"]:
            assert spec["urls"] and all(url.startswith(("http://", "https://")) for url in spec["urls"])
            assert spec["sha256"] is None or len(spec["sha256"]) == 64


def test_unknown_dataset_is_named():
    with pytest.raises(dl.DownloadError, match="choose one of"):
        dl.download("nope", "/nonexistent")


def test_cli_list_and_missing_name(tmp_path, capsys):
    assert dl.main(["--list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pf-willow" in out and "missing" in out
    assert dl.main(["--root", str(tmp_path)]) == 2
