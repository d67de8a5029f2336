"""Where data, runs and the shared development data live (all overridable by env)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MACOS_LITE_DATA"
RUNS_ENV = "MACOS_LITE_RUNS"
SHARED_DATA_ENV = "MACOS_LITE_SHARED_DATA"


def data_root() -> Path:
    """Folder of downloaded benchmarks: ``$MACOS_LITE_DATA`` or ``~/.cache/macos_lite/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "macos_lite" / "data"


def runs_root() -> Path:
    """Folder of checkpoints and results: ``$MACOS_LITE_RUNS`` or ``./runs``."""
    return Path(os.environ.get(RUNS_ENV, "runs")).expanduser()


def shared_data_root() -> Path | None:
    """The real development data named by ``$MACOS_LITE_SHARED_DATA``, or None when unset/missing."""
    env = os.environ.get(SHARED_DATA_ENV)
    if not env:
        return None
    path = Path(env).expanduser()
    return path if path.is_dir() else None


# folder names of the development subsets under $MACOS_LITE_SHARED_DATA
DEV_LAYOUT = {"pf-willow": "pf-willow-dev", "tss": "tss-sample", "weizmann-horse": "weizmann-horse-dev"}


def find_dataset(name: str, root: str | Path | None = None) -> Path | None:
    """The folder of dataset ``name``: ``root`` itself when it is that dataset's folder, ``root/<name>`` or the
    development layout under ``root``, then the same under ``$MACOS_LITE_SHARED_DATA``, then
    ``$MACOS_LITE_DATA/<name>``. None when nothing non-empty is found."""
    candidates = []
    for base in (root, shared_data_root()):
        if base is not None:
            base = Path(base).expanduser()
            candidates += [base / name, base / DEV_LAYOUT.get(name, name)]
    candidates.append(data_root() / name)
    return next((c for c in candidates if c.is_dir() and any(c.iterdir())), None)
