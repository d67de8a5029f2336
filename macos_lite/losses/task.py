"""Cross-network (task) consistency loss (eqs 10-11): masks must agree under the estimated warp.

For a pair (s, t) with ``theta_st`` mapping t's points into s, the source mask warped into t's
frame, ``M~_s = warp(M_s, theta_st)``, is the target of a binary cross-entropy on t's mask logits:

    L_bce(M~_s, M_t) = - mean_valid [ M~_s log M_t + (1 - M~_s) log(1 - M_t) ]

summed over both directions (eq 10). Design choices (docs/differences.md D8):

* the warped mask is a *detached* target (the official code back-propagated through it), so
  gradients flow into the target's mask logits (the decoder) only -- neither into the source mask nor
  into theta;
* the full affine->TPS map is used (the official code used the affine stage only);
* pixels of t whose source position falls outside s carry no information and are excluded from the mean;
* the with-logits form is used (numerically stable; masks leave the network as logits).

Taught in notebook 07 (task consistency and the objective).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import geometry as G


def warped_mask_bce(logits_s: torch.Tensor, logits_t: torch.Tensor, theta_st: torch.Tensor, kind: str = "cascade",
                    lam: float = 0.0) -> torch.Tensor:
    """``L_bce(M~_s, M_t)`` per sample ``(B,)``; logits ``(B, 1, H, W)``, theta maps t into s."""
    size = logits_t.shape[-2:]
    grid = G.sampling_grid(theta_st.detach().float(), kind, size, lam)
    target = F.grid_sample(torch.sigmoid(logits_s.detach().float()), grid, align_corners=True)
    valid = G.inside_mask(grid).unsqueeze(1).float()  # (B, 1, H, W)
    bce = F.binary_cross_entropy_with_logits(logits_t.float(), target, reduction="none")
    return (bce * valid).flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1.0)


def task_loss(out, kind: str = "cascade", lam: float = 0.0) -> torch.Tensor:
    """Eq 10 over every unordered pair (both directions summed), averaged over pairs: ``(B,)``."""
    if out.mask_logits is None:
        raise ValueError("the task loss needs the decoder's masks: run the model with masks=True")
    losses = []
    for s, t in out.pairs:
        theta = out.theta_aff[out.index(s, t)] if kind == "affine" else out.theta(s, t)
        logits_s = out.mask_logits_of(s, partner=t)
        logits_t = out.mask_logits_of(t, partner=s)
        losses.append(warped_mask_bce(logits_s, logits_t, theta, kind, lam))
    return torch.stack(losses).sum(0) / (len(out.pairs) / 2)
