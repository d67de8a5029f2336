"""Fetch the real benchmarks: resumable downloads, sha256 checks and safe extraction.

``macos-lite download NAME`` puts a benchmark listed in ``macos_lite/data/sources.json`` into
``<root>/<NAME>/`` (root: ``--root``, else ``$MACOS_LITE_DATA``, else ``~/.cache/macos_lite/data``) in its
official layout, so that ``--data-root <root>/<NAME>`` is what the loaders and ``macos-lite evaluate`` take.
Nothing here touches the network at import time, and nothing else in the package downloads.

What ``<root>/<NAME>/`` holds afterwards::

    PF-dataset-PASCAL.zip, *.csv ...   the published files, kept as downloaded
    PF-dataset-PASCAL/ ...             what the archives contain
    SHA256SUMS                         optional: hashes *you* trust (``sha256sum`` format), enforced
    .<archive>.extracted               that archive was checked and fully extracted
    .complete                          every file checked and the marker path present

Checksums: the known-good ``sha256`` values ship with the package (``macos_lite/data/sources.json``) and
are enforced: a mismatch is refused with both hashes printed. Where no trustworthy value is known the
manifest says null; such a file is used *unverified* (the command says so and prints its hash), and its
hash is never recorded as a reference -- a download cannot vouch for itself. A ``SHA256SUMS`` file the
user writes in the dataset folder is enforced the same way. A file whose hash does not match is renamed
aside, never deleted. A file placed in the folder by hand is verified and extracted like a downloaded one,
without network. Datasets without an official URL (``"manual"`` in the manifest, e.g. ``weizmann-horse``)
are placed by hand; ``macos-lite download NAME`` says how and checks the result (exit 2 while they are
missing; for ``icoseg`` it also counts the groups, images and masks of the placed copy).

Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shlex
import shutil
import stat
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tqdm.auto import tqdm

from macos_lite import __version__
from macos_lite.paths import data_root, runs_root

SUMS_FILE = "SHA256SUMS"
COMPLETE_STAMP = ".complete"
TIMEOUT_S = 30
CHUNK = 1 << 20
# An archive plus its extracted content needs about this many times the archive's size.
EXTRACT_FACTOR = 2.5
USER_AGENT = f"macos_lite/{__version__} (dataset download)"
_TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}

__all__ = [
    "DownloadError", "SourceUnavailableError", "ChecksumError", "UnsafeArchiveError", "DiskSpaceError",
    "ManualDataMissingError",
    "load_sources", "download", "dataset_status", "extract_archive", "sha256_file",
    "add_arguments", "run", "main",
]


class DownloadError(RuntimeError):
    """A dataset could not be fetched, verified or extracted; the message says what to do."""


class SourceUnavailableError(DownloadError):
    """Every URL of a file failed (unreachable host, timeout, HTTP error)."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from the pinned or the recorded one."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the target folder, or is a special file."""


class DiskSpaceError(DownloadError):
    """Not enough free space for the download or the extraction."""


class ManualDataMissingError(DownloadError):
    """A dataset without a download URL is not in place (or not usable); the message says where to put it.
    The command exits with 2 for it, as for any other input the user has to fix."""


# ----------------------------------------------------------------------------------------------------------
# Manifest


def load_sources(path: str | Path | None = None) -> dict[str, dict]:
    """The dataset entries of a manifest: ``{name: entry}`` (default: the one shipped with the package)."""
    if path is None:
        where = "macos_lite/data/sources.json"
        text = (resources.files("macos_lite") / "data" / "sources.json").read_text(encoding="utf-8")
    else:
        where = str(path)
        text = Path(path).read_text(encoding="utf-8")
    try:
        datasets = json.loads(text)["datasets"]
    except (ValueError, KeyError) as exc:
        raise DownloadError(
            f"{where} is not a dataset manifest ({exc!r}); restore it from the package") from exc
    return datasets


def _entry(name: str, sources: dict[str, dict] | None) -> dict:
    sources = load_sources() if sources is None else sources
    if name not in sources:
        hint = " (the synthetic set is generated on first use)" if name == "synthetic" else ""
        raise DownloadError(f"no download for dataset {name!r}{hint}; choose one of: {', '.join(sources)}")
    entry = sources[name]
    missing = [key for key in ("marker", "files") if key not in entry]
    if entry.get("manual"):
        missing = [key for key in ("marker",) if key not in entry]
    missing += [f"files[{i}].{key}" for i, spec in enumerate(entry.get("files", []))
                for key in ("name", "urls") if key not in spec]
    if missing:
        raise DownloadError(f"manifest entry {name!r} lacks {', '.join(missing)}")
    return entry


# ----------------------------------------------------------------------------------------------------------
# Public entry points


def download(name: str, root: str | Path | None = None, *, force: bool = False, quiet: bool = False,
             sources: dict[str, dict] | None = None) -> Path:
    """Download, verify and extract dataset ``name`` into ``<root>/<name>/`` and return that folder.

    Args:
        name: a key of the manifest (``pf-pascal``, ``pf-willow``, ``spair``, ``tss``, ``internet``).
        root: folder that holds all datasets; default ``macos_lite.paths.data_root()``.
        force: verify the files again and re-extract the archives present, even if an earlier run
            completed (a missing file is downloaded; to fetch a present file again, delete it first).
        quiet: no progress bars and no messages.
        sources: manifest entries to use instead of the packaged ``sources.json`` (``{name: entry}``).

    Raises:
        DownloadError (or a subclass) with a message naming the file, the reason and the fix.
    """
    entry = _entry(name, sources)
    root = Path(root).expanduser() if root is not None else data_root()
    folder = root / name
    title = entry.get("title", name)
    if entry.get("manual"):
        return _manual_dataset(name, entry, folder, quiet)
    if not force and dataset_status(name, root, sources={name: entry}) == "present":
        _say(quiet, f"{title} is already in {folder} (--force verifies and extracts it again).")
        _say_next_steps(quiet, name, entry, folder)
        return folder

    folder.mkdir(parents=True, exist_ok=True)
    hashes = {spec["name"]: _ensure_file(name, entry, spec, root, force=force, quiet=quiet)
              for spec in entry["files"]}
    marker = folder / entry["marker"]
    if not marker.exists():
        found = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))[:20]
        raise DownloadError(
            f"{title}: the files are in {folder} but {entry['marker']} is missing "
            f"(found: {', '.join(found)}). "
            f"The archive layout may have changed upstream; extract it by hand so that {marker} exists, "
            f"then run `{_command(name, root)}` again.")
    (folder / COMPLETE_STAMP).write_text(json.dumps({"dataset": name, "sha256": hashes}, indent=2) + "\n")
    _say(quiet, f"{title} is ready in {folder}")
    _say(quiet, f"Terms: {entry.get('terms', 'research use; see the project page.')}")
    if entry.get("citation"):
        _say(quiet, f"Please cite: {entry['citation']}")
    _say_next_steps(quiet, name, entry, folder)
    return folder


# manual datasets whose placed copy is checked further: name -> module with check_copy(folder) -> str
_MANUAL_CHECKS = {"icoseg": "macos_lite.data.icoseg"}


def _has_marker(folder: Path, entry: dict) -> bool:
    """``entry["marker"]`` (or one of its ``marker_alternatives``, e.g. inside the archive's own folder) exists."""
    return any((folder / m).exists() for m in (entry["marker"], *entry.get("marker_alternatives", ())))


def _manual_dataset(name: str, entry: dict, folder: Path, quiet: bool) -> Path:
    """A dataset placed by hand: check that it is there (and, for :data:`_MANUAL_CHECKS`, what it holds), else
    explain where to put it (:class:`ManualDataMissingError`)."""
    title = entry.get("title", name)
    if _has_marker(folder, entry):
        if name in _MANUAL_CHECKS:
            import importlib

            from macos_lite.data.imageio import DataError

            try:
                _say(quiet, importlib.import_module(_MANUAL_CHECKS[name]).check_copy(folder))
            except DataError as exc:
                raise ManualDataMissingError(f"{title}: the copy in {folder} is not usable: {exc}") from exc
        _say(quiet, f"{title} is in place in {folder}.")
        if entry.get("citation"):
            _say(quiet, f"Please cite: {entry['citation']}")
        _say_next_steps(quiet, name, entry, folder)
        return folder
    raise ManualDataMissingError(
        f"{title} cannot be downloaded automatically. {entry['manual']} The dataset folder is "
        f"{folder} (or pass --root DIR to use DIR/{name}); then run `macos-lite download {name}` again to check it.")


def dataset_status(name: str, root: str | Path | None = None, *,
                   sources: dict[str, dict] | None = None) -> str:
    """``"present"`` (verified and extracted), ``"incomplete"`` (started, not finished) or ``"missing"``."""
    entry = _entry(name, sources)
    folder = (Path(root).expanduser() if root is not None else data_root()) / name
    if _has_marker(folder, entry) and (entry.get("manual") or (folder / COMPLETE_STAMP).is_file()):
        return "present"
    return "incomplete" if folder.is_dir() and any(folder.iterdir()) else "missing"


def sha256_file(path: str | Path, *, quiet: bool = True) -> str:
    """Hex sha256 of a file, read in chunks (with a progress bar unless quiet)."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh, _bar(path.stat().st_size, f"sha256 {path.name}", quiet) as bar:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------
# One file: fetch (or use the copy in place), verify, extract


def _ensure_file(name: str, entry: dict, spec: dict, root: Path, *, force: bool, quiet: bool) -> str | None:
    """Bring one manifest file into ``<root>/<name>/``; returns its sha256 (None if extracted by hand)."""
    folder = root / name
    path = folder / spec["name"]
    extract = bool(spec.get("extract"))
    stamp = folder / f".{spec['name']}.extracted"
    if extract and not force and stamp.is_file():
        return stamp.read_text().strip() or None
    if extract and not path.exists() and (folder / entry["marker"]).exists():
        # Extracted by hand, or the archive was deleted after extraction to save space.
        _say(quiet, f"{entry['marker']} is already in {folder}; not downloading {spec['name']}.")
        return None

    if path.exists():
        _say(quiet, f"Using {path}, already in place.")
    else:
        _fetch(name, spec, path, root, extract=extract, quiet=quiet)
    if extract:
        _check_archive_format(name, spec, path, root)
    digest = _verify(name, spec, path, root, quiet=quiet)
    if extract:
        _extract_into_place(path, folder, quiet=quiet)
        stamp.write_text(digest + "\n")
    return digest


def _fetch(name: str, spec: dict, path: Path, root: Path, *, extract: bool, quiet: bool) -> None:
    """Download ``spec`` to ``path`` through ``<path>.part``, trying each URL in turn."""
    part = path.with_name(path.name + ".part")
    failures = []
    for url in spec["urls"]:
        try:
            _fetch_url(url, part, extract=extract, quiet=quiet)
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
            failures.append(f"  {url}: {_reason(exc)}")
            continue
        part.replace(path)
        return
    kept = f"\nThe partial download {part} is kept; running the command again resumes it." \
        if part.exists() and part.stat().st_size else ""
    raise SourceUnavailableError(
        f"Could not download {spec['name']} for {name}:\n" + "\n".join(failures) + kept +
        "\nThe host may be down, or the file withdrawn for a while (this has happened to these links "
        "before and they came back); try again later, or fetch it by hand.\n"
        + _manual_fallback(name, spec, path, root))


def _fetch_url(url: str, part: Path, *, extract: bool, quiet: bool) -> None:
    """Download one URL into ``part``, continuing a partial file with an HTTP Range request."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        # Range not satisfiable: the part file is already whole, or it is not a prefix of this file.
        if _content_range_total(exc.headers.get("Content-Range")) == offset:
            return
        part.unlink()
        return _fetch_url(url, part, extract=extract, quiet=quiet)
    with response:
        if response.status == 206 and _content_range_start(response) != offset:
            part.unlink()  # so that the next attempt starts over
            raise ConnectionError(f"unexpected byte range {response.headers.get('Content-Range')!r}")
        if response.status != 206:
            offset = 0  # the server ignored the Range header and sends the whole file: start over
        length = response.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        total = None if remaining is None else offset + remaining
        if remaining is not None:
            need = remaining + (int(total * (EXTRACT_FACTOR - 1)) if extract else 0)
            _require_space(part.parent, need, f"to download{' and extract' if extract else ''} {url}")
        with open(part, "ab" if offset else "wb") as fh, \
                _bar(total, part.name[: -len(".part")], quiet, initial=offset) as bar:
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")


def _content_range_start(response) -> int | None:
    """First byte of a partial answer ('Content-Range: bytes START-END/TOTAL'), None if unreadable."""
    value = response.headers.get("Content-Range", "")
    start = value[len("bytes "):].partition("-")[0] if value.startswith("bytes ") else ""
    return int(start) if start.isdigit() else None


def _content_range_total(value: str | None) -> int | None:
    total = (value or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
    return f"{type(exc).__name__}: {exc}"


def _manual_fallback(name: str, spec: dict, path: Path, root: Path) -> str:
    lines = ["To fetch it by hand: download it in a browser (or on another machine) and save it as",
             f"  {path}",
             f"then run `{_command(name, root)}` again: it verifies and extracts the file without network."]
    if spec.get("alternatives"):
        lines.append("Where else to find it:\n" + "\n".join(f"  - {alt}" for alt in spec["alternatives"]))
    return "\n".join(lines)


def _verify(name: str, spec: dict, path: Path, root: Path, *, quiet: bool) -> str:
    """Check ``path`` against the sha256 shipped in the manifest, else against a SHA256SUMS the user wrote.

    Nothing is recorded: without a known-good hash the file is used unverified, and the message says so.
    """
    actual = sha256_file(path, quiet=quiet)
    pinned = (spec.get("sha256") or "").lower()
    if pinned:
        if actual != pinned:
            _reject(name, spec, path, root, pinned, actual, pinned_in_manifest=True)
        return actual
    sums_path = path.parent / SUMS_FILE
    recorded = _read_sums(sums_path).get(path.name)
    if recorded is None:
        _say(quiet, f"warning: {path.name} is UNVERIFIED: no known-good sha256 ships with this package for it, so "
                    f"its content cannot be checked (its sha256 is {actual}). Compare it with a hash from the "
                    f"publisher, if you have one, or list one you trust in {sums_path}.")
    elif recorded != actual:
        _reject(name, spec, path, root, recorded, actual, pinned_in_manifest=False)
    return actual


def _reject(name: str, spec: dict, path: Path, root: Path, expected: str, actual: str, *,
            pinned_in_manifest: bool) -> None:
    aside = _move_aside(path, "sha256-mismatch")
    sums_path = path.parent / SUMS_FILE
    if pinned_in_manifest:
        origin = "pinned in the manifest"
        cause = "If it happens again, the published file has changed: report it, or use a copy you trust."
    else:
        origin = f"listed in {sums_path}"
        cause = (f"If the publisher changed the file on purpose and you trust the new one, update its line in "
                 f"{sums_path} and run again.")
    raise ChecksumError(
        f"sha256 mismatch for {path}:\n  expected {expected} ({origin})\n  actual   {actual}\n"
        f"The file was moved aside to {aside} (not deleted). Run `{_command(name, root)}` again to "
        f"download a fresh copy, or place a good copy at {path}. {cause}")


def _check_archive_format(name: str, spec: dict, path: Path, root: Path) -> None:
    """Refuse a file that is not the announced archive (an HTML error page saved under the archive's name)."""
    kind = _archive_kind(path)
    valid = zipfile.is_zipfile(path) if kind == "zip" else tarfile.is_tarfile(path)
    if not valid:
        aside = _move_aside(path, "not-an-archive")
        raise DownloadError(
            f"{path} is not a valid {kind} archive (the server may have sent an error page instead). "
            f"It was moved aside to {aside}.\n" + _manual_fallback(name, spec, path, root))


def _read_sums(sums_path: Path) -> dict[str, str]:
    sums = {}
    if sums_path.is_file():
        for line in sums_path.read_text(encoding="utf-8").splitlines():
            digest, _, filename = line.strip().partition(" ")
            if digest and filename:
                sums[filename.lstrip(" *")] = digest.lower()
    return sums


def _move_aside(path: Path, why: str) -> Path:
    """Rename ``path`` to ``<path>.<why>`` (numbered if taken) so that a bad file is kept, not lost."""
    aside, n = path.with_name(f"{path.name}.{why}"), 0
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.{why}.{n}")
    path.rename(aside)
    return aside


# ----------------------------------------------------------------------------------------------------------
# Safe extraction


@dataclass(frozen=True)
class _Member:
    """What an archive member would create: kind is file, dir, symlink, hardlink or special."""
    name: str
    kind: str
    link: str = ""
    size: int = 0


def _archive_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    raise DownloadError(
        f"{path}: unknown archive type; expected .zip, .tar, .tar.gz, .tgz, .tar.bz2 or .tar.xz")


def _zip_members(zf: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in zf.infolist():
        if stat.S_ISLNK(info.external_attr >> 16):
            members.append(_Member(info.filename, "symlink", zf.read(info).decode("utf-8", "replace")))
        else:
            members.append(_Member(info.filename, "dir" if info.is_dir() else "file", size=info.file_size))
    return members


def _tar_kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    return "hardlink" if info.islnk() else "special"


def _escapes(relpath: str) -> bool:
    """True for an absolute path, a drive path or any '..' component (backslashes count as separators)."""
    parts = relpath.replace("\\", "/").split("/")
    return relpath.startswith(("/", "\\")) or (len(relpath) > 1 and relpath[1] == ":") or ".." in parts


def _check_members(members: list[_Member], archive: Path) -> None:
    """Refuse the whole archive if any member could write outside the target folder.

    Member names and link targets may not be absolute nor contain '..'. Paths then only ever descend
    from the target, even through links, so nothing can resolve outside it.
    """
    for member in members:
        if member.kind == "special":
            why = "is a device, FIFO or other special file"
        elif _escapes(member.name):
            why = "has an absolute path or a '..' component and would be written outside the target folder"
        elif member.kind in ("symlink", "hardlink") and _escapes(member.link):
            why = f"is a link to {member.link!r}, which points outside the target folder"
        else:
            continue
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {member.name!r} {why}. Nothing was extracted. "
            f"The archive may be damaged or tampered with: delete it and download it again.")


def extract_archive(archive: str | Path, target: str | Path, *, quiet: bool = True) -> None:
    """Extract a zip or tar(.gz) archive into the existing folder ``target``, refusing unsafe members.

    Every member is checked before anything is written: an absolute path, a '..' component, a link
    pointing outside ``target`` or a special file raises UnsafeArchiveError naming the member.
    """
    archive, target = Path(archive), Path(target)
    if _archive_kind(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            members = _zip_members(zf)
            _check_members(members, archive)
            _require_space(target, sum(m.size for m in members), f"to extract {archive.name}")
            for info, member in zip(zf.infolist(), _bar_iter(members, archive.name, quiet)):
                if member.kind == "symlink":
                    link = target / member.name
                    link.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(member.link, link)
                else:
                    zf.extract(info, target)
        return
    with tarfile.open(archive) as tf:
        infos = tf.getmembers()
        members = [_Member(i.name, _tar_kind(i), i.linkname, i.size) for i in infos]
        _check_members(members, archive)
        _require_space(target, sum(m.size for m in members), f"to extract {archive.name}")
        # extractall sets directory permissions last, so a read-only folder does not block its files;
        # Python's own 'data' filter (where available) re-checks every member as it is written.
        tf.extractall(target, members=_bar_iter(infos, archive.name, quiet), **_TAR_FILTER)


def _extract_into_place(archive: Path, folder: Path, *, quiet: bool) -> None:
    """Extract into a hidden staging folder, then move the result into ``folder``.

    An interrupted extraction thus leaves only the staging folder (removed on the next run), never a
    half-filled dataset folder that looks complete.
    """
    staging = folder / f".{archive.name}.extracting"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        try:
            extract_archive(archive, staging, quiet=quiet)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise DownloadError(
                f"could not extract {archive}: {exc}. The file is damaged: delete it (and its line in "
                f"{folder / SUMS_FILE}) and run the command again.") from exc
        for entry in sorted(staging.iterdir()):
            target = folder / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # an earlier extraction of this archive, replaced by the fresh one
            elif target.exists() or target.is_symlink():
                target.unlink()
            entry.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------
# Disk space, messages, progress


def _require_space(folder: Path, need: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DiskSpaceError(
            f"not enough free space in {folder} {what}: about {_size(need)} needed, {_size(free)} free. "
            "Free some space, or choose a folder on another disk with --root DIR (or $MACOS_LITE_DATA).")


def _size(n: float) -> str:
    if n < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if n < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"


def _command(name: str, root: Path) -> str:
    return f"macos-lite download {name} --root {shlex.quote(str(root))}"


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, flush=True)


def _say_next_steps(quiet: bool, name: str, entry: dict, folder: Path) -> None:
    data = shlex.quote(str(folder))
    if "matching" in entry.get("tasks", ()):
        json_file = shlex.quote(str(runs_root() / f"{name}-identity.json"))
        step = f"--method identity --json {json_file}"
    else:
        step = f"--checkpoint CHECKPOINT --json {shlex.quote(str(runs_root() / f'{name}.json'))}"
    _say(quiet, f"Next: macos-lite evaluate --dataset {name} --data-root {data} {step}")


def _bar(total: int | None, desc: str, quiet: bool, initial: int = 0):
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=quiet, leave=False)


def _bar_iter(items: list, name: str, quiet: bool):
    return tqdm(items, desc=f"extract {name}", unit="file", disable=quiet, leave=False)


# ----------------------------------------------------------------------------------------------------------
# Command line: `macos-lite download NAME [--root DIR] [--force] [--quiet] [--list]`


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``download`` options to ``parser`` (a subcommand parser of ``macos-lite``)."""
    names = list(load_sources())
    parser.add_argument("name", nargs="?", metavar="NAME", choices=names,
                        help=f"dataset to fetch: {', '.join(names)}")
    parser.add_argument("--root", type=Path, default=None, metavar="DIR",
                        help="folder holding the datasets "
                             "(default: $MACOS_LITE_DATA, else ~/.cache/macos_lite/data)")
    parser.add_argument("--force", action="store_true",
                        help="verify the files again and re-extract the archives even if already complete")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    parser.add_argument("--list", dest="list_datasets", action="store_true",
                        help="list the datasets and whether each is present under the root")


def run(args: argparse.Namespace) -> int:
    """Carry out parsed ``download`` arguments; returns the process exit code."""
    root = Path(args.root).expanduser() if args.root is not None else data_root()
    if args.list_datasets:
        sources = load_sources()
        print(f"datasets under {root}:")
        for name, entry in sources.items():
            status = dataset_status(name, root, sources=sources)
            print(f"  {name:<10} {status:<10} {entry.get('title', name)}")
        return 0
    if not args.name:
        print("error: name a dataset to download, or use --list", file=sys.stderr)
        return 2
    from macos_lite.cli_common import writable_folder

    from macos_lite.paths import DATA_ENV

    writable_folder(root, "--root" if args.root is not None else f"${DATA_ENV}")  # exit 2 before any transfer
    try:
        download(args.name, root, force=args.force, quiet=args.quiet)
    except DownloadError as exc:
        from macos_lite.cli_common import command_error

        return command_error(exc, code=2 if isinstance(exc, ManualDataMissingError) else 1)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m macos_lite.data.download NAME ...``: the same as ``macos-lite download NAME ...``."""
    parser = argparse.ArgumentParser(prog="macos-lite download",
                                     description="Download, verify and extract a real benchmark.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
