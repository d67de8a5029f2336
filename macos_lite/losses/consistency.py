"""Geometric consistency of the predicted transforms: forward-backward (eq 4) and transitivity (eq 5).

Both are measured on a fixed 10 x 10 grid of points spanning the image, in normalised units (an
error of 0.1 is 5 % of the image width), with the Euclidean distance of the paper -- not squared
pixels, which dwarfed the other terms in the official code (docs/differences.md D9).

Directions: ``T_st`` maps t's points into s. The forward-backward chain for a point q of t is
``T_ts(T_st(q)) = q``. For a triplet (X, Y, Z) the transitivity chain for a point of Y is
``T_YZ(T_ZX(T_XY(q))) = q`` (Y -> X -> Z -> Y); a perfectly consistent triplet gives exactly zero
(the official chain was reversed and covered only a 100-pixel corner, docs/differences.md D2).

Taught in notebook 05 (cycle and transitivity).
"""

from __future__ import annotations

from itertools import permutations

import torch

from .. import geometry as G


def consistency_points(n: int = 10, dtype=torch.float32, device=None) -> torch.Tensor:
    """``n x n`` points evenly spread over ``[-1, 1]^2``, shape ``(n * n, 2)``."""
    return G.normalized_grid((n, n), dtype, device).view(-1, 2)


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # sqrt with a tiny floor: the gradient of |x| is undefined at the perfect solution
    return torch.sqrt(((a - b) ** 2).sum(-1) + 1e-12).mean(-1)


def cycle_error(theta_st: torch.Tensor, theta_ts: torch.Tensor, kind: str = "affine", n: int = 10) -> torch.Tensor:
    """Mean ``|T_ts(T_st(q)) - q|`` over the grid, per sample ``(B,)``."""
    q = consistency_points(n, theta_st.dtype, theta_st.device)
    return _distance(G.transform_points(G.transform_points(q, theta_st, kind), theta_ts, kind), q)


def cycle_loss(out, kind: str = "affine", n: int = 10) -> torch.Tensor:
    """Eq 4 summed over both directions of every pair of images, averaged over pairs: ``(B,)``."""
    theta = out.theta_aff if kind == "affine" else torch.stack([out.theta(s, t) for s, t in out.pairs])
    reverse = torch.tensor([out.index(t, s) for s, t in out.pairs], device=theta.device)
    p, b = theta.shape[:2]
    err = cycle_error(theta.reshape(p * b, -1), theta[reverse].reshape(p * b, -1), kind, n)
    return err.view(p, b).sum(0) / (p / 2)  # each unordered pair contributes both directions (eq 4)


def transitivity_error(theta_xy, theta_zx, theta_yz, kind: str = "affine", n: int = 10) -> torch.Tensor:
    """Mean ``|T_YZ(T_ZX(T_XY(q))) - q|`` for points q of Y, per sample ``(B,)``."""
    q = consistency_points(n, theta_xy.dtype, theta_xy.device)
    chain = G.transform_points(G.transform_points(G.transform_points(q, theta_xy, kind), theta_zx, kind), theta_yz, kind)
    return _distance(chain, q)


def transitivity_loss(out, kind: str = "affine", n: int = 10) -> torch.Tensor:
    """Eq 5 for a triplet input, averaged over the six chains (each start image, both orientations): ``(B,)``."""
    images = sorted({s for s, _ in out.pairs})
    if len(images) < 3:
        raise ValueError("the transitivity loss needs triplets: feed the model three images per sample")
    errors = []
    for x, y, z in permutations(images[:3]):
        th = [out.theta(a, b_, kind) if kind != "affine" else out.theta_aff[out.index(a, b_)]
              for a, b_ in ((x, y), (z, x), (y, z))]
        errors.append(transitivity_error(*th, kind=kind, n=n))
    return torch.stack(errors).mean(0)
