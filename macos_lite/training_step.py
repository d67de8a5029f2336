"""One optimisation step, the unit every training loop repeats (the course's exercise of notebook 08).

The trainer (:class:`macos_lite.training.Trainer`) adds to it what a long run needs (phases, a learning-rate
schedule, checks for non-finite losses, checkpoints); the order of the calls is the same.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def training_step(model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, batch,
                  grad_clip: float | None = None) -> float:
    """Clear the gradients, compute ``loss_fn(model, batch)`` (a scalar tensor), back-propagate, clip the
    gradient norm to ``grad_clip`` (None: no clipping; the norm of all gradients together, as
    ``torch.nn.utils.clip_grad_norm_``), update with ``optimizer.step()``; returns the loss as a float.

    The gradients are cleared *before* the backward pass: PyTorch accumulates them in ``.grad``, so a
    step without ``zero_grad`` would also apply the previous steps' gradients.

    Example:
        >>> model = nn.Linear(2, 1)
        >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> mse = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()
        >>> loss = training_step(model, mse, opt, (torch.ones(4, 2), torch.zeros(4, 1)), grad_clip=1.0)
    """
    optimizer.zero_grad(set_to_none=True)
    loss = loss_fn(model, batch)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], grad_clip)
    optimizer.step()
    return float(loss.detach())
