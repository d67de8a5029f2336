"""Device selection and CPU thread capping (no `.cuda()` anywhere else).

Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import os

import torch

THREADS_ENV = "MACOS_LITE_THREADS"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else MPS, else CPU; else ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises ``ValueError`` naming ``--device`` for any other text (e.g. ``gpu0``), ``RuntimeError`` when the
    device asked for is not available.
    """
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"--device {device}: expected auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def cap_threads(max_threads: int | None = None) -> int:
    """Limit torch's intra-op threads to the cores this process may use (small machines thrash otherwise).

    ``$MACOS_LITE_THREADS`` (or ``$OMP_NUM_THREADS``) lowers the cap, e.g. to 1 on a machine shared with
    other jobs, where oversubscribed threads are many times slower than one. A ``$MACOS_LITE_THREADS`` that
    is not a whole number of at least 1 raises ``ValueError`` naming the variable and its value.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        cores = os.cpu_count() or 1
    env = os.environ.get(THREADS_ENV, "").strip()
    if env and not (env.isdigit() and int(env) > 0):
        raise ValueError(f"${THREADS_ENV} is {os.environ[THREADS_ENV]!r}; set it to a whole number of threads "
                         "of at least 1 (e.g. 1 on a shared machine), or unset it")
    env = env or os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    n = max(1, min(cores, max_threads or cores))
    torch.set_num_threads(n)
    return n
