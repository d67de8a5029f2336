"""Where data, runs and the shared development data live (all overridable by env).

Taught in notebook 00 (setup and data).
"""

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

