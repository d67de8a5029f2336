"""Foreground-guided matching loss (eqs 1-3).

With our direction convention ``theta_st`` maps points of the target t into the source s, so the
matching score is computed per *target* cell q (the paper writes the same with the roles named
the other way round):

* correspondence mask (eq 1): ``m(p, q) = [ |T(q) - p| <= phi ]`` for source cells p, target cells q,
  with distances in feature cells. The soft form replaces the indicator with the tent
  ``relu(1 - |dx| / phi) * relu(1 - |dy| / phi)``; at ``phi = 1`` it is exactly bilinear interpolation
  of the correlation at ``T(q)`` -- the warped identity mask of WeakAlign -- and it is differentiable
  in theta, which the hard form is not.
* matching score (eq 2): ``s(q) = sum_p m(p, q) S(p, q)``: the correlation found where T sends q.
* loss (eq 3): ``-sum_q M(q) s(q) / sum_q M(q)``, with M the decoder's foreground probability of the
  target, average-pooled to the feature grid. The normaliser is constant in theta, so a transform that
  maps cells outside the source loses their score instead of shrinking the denominator.

Whether eq 3 also trains the mask is a choice (``mask_grad``). Detached (the default), the mask only
guides matching. With gradients, the weighted *mean* moves mask weight towards cells whose
correspondences score above the average -- the cells that move with the object -- a co-segmentation
signal from matching; unnormalised, eq 3 would simply push every mask value up.

The official code weights by the best correlation of each cell (``max_p S(p, q)``); that proxy is
``weighting="corr_max"`` (per sample, without the official batch-mixing broadcast, docs/differences.md D1).

Taught in notebook 04 (matching loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import geometry as G

WEIGHTINGS = ("mask", "corr_max", "none")


def correspondence_mask(theta: torch.Tensor, kind: str, grid_size, image_size, phi: float = 1.0,
                        soft: bool = True, lam: float = 0.0) -> torch.Tensor:
    """``m(p, q)`` for source cells p (S's channel order, column-major) and target cells q (row-major):
    ``(B, h*w, h*w)``.

    theta ``(B, D)`` maps target points into the source; grid_size ``(h, w)`` of the feature grids;
    image_size ``(H, W)`` of the images they were computed from; phi in feature cells.
    """
    if phi <= 0:
        raise ValueError(f"the match tolerance phi must be positive (in feature cells), got {phi}")
    h, w = (int(s) for s in grid_size)
    centres = G.cell_centers((h, w), image_size).to(theta).view(-1, 2)  # target cells q, row-major
    mapped = G.normalized_to_cell(G.transform_points(centres, theta, kind, lam), (h, w), image_size)
    k = torch.arange(h * w, device=theta.device)
    row_p, col_p = (k % h).to(theta), (k // h).to(theta)  # column-major source channels
    dx = mapped[:, None, :, 0] - col_p[None, :, None]  # (B, p, q)
    dy = mapped[:, None, :, 1] - row_p[None, :, None]
    if soft:
        return torch.relu(1 - dx.abs() / phi) * torch.relu(1 - dy.abs() / phi)
    return ((dx**2 + dy**2) <= phi**2).to(theta.dtype)


def matching_score(corr: torch.Tensor, theta: torch.Tensor, kind: str, weights: torch.Tensor | None = None,
                   image_size=None, phi: float = 1.0, soft: bool = True, lam: float = 0.0) -> torch.Tensor:
    """Weighted mean matching score per sample ``(B,)``.

    corr: ``S_st`` ``(B, h*w, h, w)``; theta ``(B, D)`` maps t into s; weights ``(B, h, w)`` over the
    target cells (None: uniform); image_size defaults to 16 x the grid.
    """
    b, _, h, w = corr.shape
    image_size = image_size or (16 * h, 16 * w)
    m = correspondence_mask(theta, kind, (h, w), image_size, phi, soft, lam)
    s_q = (m * corr.reshape(b, h * w, h * w)).sum(1)  # eq 2, (B, q)
    if weights is None:
        return s_q.mean(1)
    wq = weights.reshape(b, h * w)
    return (wq * s_q).sum(1) / wq.sum(1).clamp_min(1e-6)


def foreground_weights(corr: torch.Tensor, mask_logits: torch.Tensor | None, weighting: str,
                       mask_grad: bool = False) -> torch.Tensor | None:
    """Per-target-cell weights ``(B, h, w)`` for the chosen ``weighting`` (detached unless ``mask_grad``)."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown matching weighting {weighting!r}; expected one of {WEIGHTINGS}")
    if weighting == "none":
        return None
    if weighting == "corr_max":
        return corr.detach().amax(dim=1)
    if mask_logits is None:
        raise ValueError("weighting='mask' needs the decoder's masks: run the model with masks=True")
    logits = mask_logits.float() if mask_grad else mask_logits.detach().float()
    return F.adaptive_avg_pool2d(torch.sigmoid(logits), corr.shape[-2:])[:, 0]


def matching_loss(out, weighting: str = "mask", phi: float = 1.0, soft: bool = True, lam: float = 0.0,
                  stages=("affine", "cascade"), mask_grad: bool = False) -> torch.Tensor:
    """Eq 3 over every ordered pair of a :class:`~macos_lite.model.MaCoSOutput`, for the affine stage and
    the composed affine->TPS map, both scored on the stage-1 correlation (as WeakAlign). Returns ``(B,)``."""
    p, b = out.theta_aff.shape[:2]
    corr = out.corr.reshape(p * b, *out.corr.shape[2:])
    logits = None if out.mask_logits is None else out.mask_logits.reshape(p * b, *out.mask_logits.shape[2:])
    weights = foreground_weights(corr, logits, weighting, mask_grad)
    scores = []
    for stage in stages:
        if stage == "affine":
            theta, kind = out.theta_aff.reshape(p * b, -1), "affine"
        elif stage == "cascade":
            if out.theta_tps is None:
                continue
            theta = G.cascade_theta(out.theta_aff.reshape(p * b, -1), out.theta_tps.reshape(p * b, -1))
            kind = "cascade"
        else:
            raise ValueError(f"unknown stage {stage!r}; expected 'affine' or 'cascade'")
        scores.append(matching_score(corr, theta, kind, weights, out.image_size, phi, soft, lam))
    return -torch.stack(scores).mean(0).view(p, b).mean(0)
