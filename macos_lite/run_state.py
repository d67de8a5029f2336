"""The state that makes a training run reproducible and resumable: random generators and the process group.

A checkpoint holds :func:`rng_state`; :func:`set_rng_state` restores it, so that ``--resume`` continues
bit-identically on the CPU. :func:`distributed_env` reads torchrun's environment and :func:`close_distributed`
ends the process group. Used by
:mod:`macos_lite.training` (notebook 08).
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def close_distributed(wait: bool = True) -> None:
    """End the process group, if one is open; with ``wait``, once every process has reached this point.

    A torchrun process that exits with the group still open may abort (SIGABRT) while Python shuts down: gloo's
    worker threads still hold tensors then. The barrier keeps a process from leaving while another one still
    trains or saves; after an error pass ``wait=False`` (the others may never reach it). A no-op outside
    torchrun."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        if wait:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def rng_state() -> dict:
    """Every global generator's state (torch, numpy, Python, CUDA), numpy's as plain values and tensors so that
    a checkpoint holding it loads with ``weights_only=True``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                        cached], "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators from :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
