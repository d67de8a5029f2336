"""Where a benchmark's files are: the one place the loaders, the trainer and the notebooks look them up.

A benchmark ``name`` (``"pf-willow"``, ``"tss"`` ...) is looked for, in this order, in

1. a folder given by the caller (``root=``, ``--data-root``, a notebook's ``DATA_ROOT``): ``root/<name>`` or
   the development layout ``root/<DEV_LAYOUT[name]>`` (or the official archive's folder,
   ``root/<ARCHIVE_FOLDER[name]>``, e.g. iCoseg's ``dataset_public``);
2. the shared development data named by ``$MACOS_LITE_SHARED_DATA``, the same two ways;
3. the download folder, ``$MACOS_LITE_DATA/<name>`` (where ``macos-lite download`` puts it).

:func:`find_dataset` answers "is it here?" (a folder or None: a notebook explains and falls back);
:func:`dataset_root` is what a loader starts from (the caller's ``root`` as it is, else the search); and
:func:`dataset_folder` finds the unpacked archive inside that root. Whatever is missing raises one error,
:class:`DataNotFoundError`, naming what was expected and how to get it.
"""

from __future__ import annotations

from pathlib import Path

from .. import paths
from .imageio import DataNotFoundError, download_hint

__all__ = ["ARCHIVE_FOLDER", "DEV_LAYOUT", "DataNotFoundError", "dataset_folder", "dataset_root", "find_dataset"]

# folder names of the development subsets under $MACOS_LITE_SHARED_DATA
DEV_LAYOUT = {"pf-willow": "pf-willow-dev", "tss": "tss-sample", "weizmann-horse": "weizmann-horse-dev",
              "icoseg": "icoseg-dev"}
# the folder an official archive unpacks to, when a data root may hold it directly
ARCHIVE_FOLDER = {"icoseg": "dataset_public"}


def find_dataset(name: str, root: str | Path | None = None) -> Path | None:
    """The folder of dataset ``name``: ``root/<name>`` or the development layout under ``root``, then the same
    under ``$MACOS_LITE_SHARED_DATA``, then ``$MACOS_LITE_DATA/<name>``. None when nothing non-empty is found."""
    candidates = []
    for base in (root, paths.shared_data_root()):
        if base is not None:
            base = Path(base).expanduser()
            candidates += [base / name, base / DEV_LAYOUT.get(name, name)]
            candidates += [base / ARCHIVE_FOLDER[name]] if name in ARCHIVE_FOLDER else []
    candidates.append(paths.data_root() / name)
    return next((c for c in candidates if c.is_dir() and any(c.iterdir())), None)


def dataset_root(name: str, root=None) -> Path:
    """``root`` if given (the dataset's own folder), else where :func:`find_dataset` finds ``name``, else
    ``$MACOS_LITE_DATA/<name>`` (which may not exist: the loader's error then says how to get it)."""
    if root is not None:
        return Path(root).expanduser()
    return find_dataset(name) or paths.data_root() / name


def dataset_folder(root, candidates: list[str], dataset: str) -> Path:
    """The first ``root / c`` that is a folder, e.g. the unpacked archive inside a dataset root.

    Raises :class:`DataNotFoundError` naming the expected folder and the download command.
    """
    root = Path(root).expanduser()
    for candidate in candidates:
        path = root / candidate if candidate else root
        if path.is_dir():
            return path
    expected = root / candidates[0] if candidates[0] else root
    env = " ".join(f"({p}.)" for p in paths.env_problems())
    raise DataNotFoundError(
        f"{dataset}: expected the folder {expected}, which does not exist. "
        f"To get it, {download_hint(dataset)} (or pass root= / --data-root pointing to the folder that "
        f"contains {candidates[0] or 'the data'})." + (f" {env}" if env else "")
    )
