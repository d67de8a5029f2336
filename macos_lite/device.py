"""Device selection and CPU thread capping (no `.cuda()` anywhere else).

Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import os

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None -> CUDA when available, else MPS, else CPU; anything else is parsed by torch."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {str(device)!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    return dev


def cap_threads(max_threads: int | None = None) -> int:
    """Limit torch's intra-op threads to the cores this process may use (small machines thrash otherwise).

    ``$MACOS_LITE_THREADS`` (or ``$OMP_NUM_THREADS``) lowers the cap, e.g. to 1 on a machine shared with
    other jobs, where oversubscribed threads are many times slower than one.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        cores = os.cpu_count() or 1
    env = os.environ.get("MACOS_LITE_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if env and env.isdigit() and int(env) > 0:
        cores = min(cores, int(env))
    n = max(1, min(cores, max_threads or cores))
    torch.set_num_threads(n)
    return n
