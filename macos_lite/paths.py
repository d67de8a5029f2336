"""Where data, runs and the shared development data live (all overridable by env).

Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MACOS_LITE_DATA"
RUNS_ENV = "MACOS_LITE_RUNS"
SHARED_DATA_ENV = "MACOS_LITE_SHARED_DATA"


def _folder_env(name: str) -> Path | None:
    """The folder named by environment variable ``name`` (None when unset or empty); ``ValueError`` naming the
    variable and its value when it names a file."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"${name} is {os.environ[name]!r}, which is a file, not a folder; point it at a folder "
                         "(or unset it)")
    return path


def data_root() -> Path:
    """Folder of downloaded benchmarks: ``$MACOS_LITE_DATA`` or ``~/.cache/macos_lite/data``.

    Raises ``ValueError`` naming the variable when it names a file."""
    return _folder_env(DATA_ENV) or Path.home() / ".cache" / "macos_lite" / "data"


def runs_root() -> Path:
    """Folder of checkpoints and results: ``$MACOS_LITE_RUNS`` or ``./runs``.

    Raises ``ValueError`` naming the variable when it names a file."""
    return _folder_env(RUNS_ENV) or Path("runs")


def shared_data_root() -> Path | None:
    """The real development data named by ``$MACOS_LITE_SHARED_DATA``, or None when unset/missing
    (:func:`env_problems` says which)."""
    env = os.environ.get(SHARED_DATA_ENV)
    if not env:
        return None
    path = Path(env).expanduser()
    return path if path.is_dir() else None


def env_problems() -> list[str]:
    """One sentence per folder variable (``$MACOS_LITE_SHARED_DATA``, ``$MACOS_LITE_DATA``,
    ``$MACOS_LITE_RUNS``) whose value cannot be what the user meant: a missing folder for the shared data
    (it is read only), a file where a folder belongs for any of them. Empty when all is well; a not-found
    message adds these sentences so that the variable is named."""
    out = []
    for name in (SHARED_DATA_ENV, DATA_ENV, RUNS_ENV):
        value = os.environ.get(name)
        if not value:
            continue
        path = Path(value).expanduser()
        if path.exists() and not path.is_dir():
            out.append(f"${name} is {value!r}, which is a file, not a folder")
        elif name == SHARED_DATA_ENV and not path.exists():
            out.append(f"${name} names {value}, which does not exist, so it was not searched")
    return out
