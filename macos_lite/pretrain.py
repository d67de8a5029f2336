"""Synthetic strong supervision for the transformation predictor (the CNNGeo recipe, docs/differences.md D14).

The official MaCoSNet starts from a WeakAlign checkpoint that is no longer downloadable. We give G a
sane start the way CNNGeo did: take an image A, draw a random transform theta_gt, make
``B = warp(A, theta_gt)`` (so that theta_gt maps B's points into A, our convention) and regress it.
The loss is CNNGeo's *grid loss*: the mean distance between where the predicted and the true maps
send a grid of points -- in normalised units, independent of how the map is parameterised.

Random maps: an affine part (rotation, anisotropic scale, shear, translation) and, for the cascade,
a TPS part (control points jittered around the lattice). Reflection padding keeps B free of black
borders that would give the answer away.

The warp distribution (:data:`WARP_DISTRIBUTION`, every parameter independent and uniform):

=================  ===========================  ==================================================
rotation           +-25 degrees                 R(angle)
scale              0.75 .. 1.25                 s, common to both axes
aspect             exp(u), u in +-0.15          x stretched by a, y by 1 / a (0.86 .. 1.16)
shear              +-0.15                       x += shear * y before the rotation
translation        +-0.25 per axis              in normalised units (1/8 of the image side)
TPS jitter         +-0.1 per coordinate         each of the 3 x 3 control points, after the affine
=================  ===========================  ==================================================

The affine matrix is ``R(angle) @ [[s a, s shear], [0, s / a]]``; the cascade's TPS part moves the
control points of the 3 x 3 lattice (spacing 1 in normalised units) by up to a tenth of their spacing.
:func:`warp_parameters` draws the same numbers as :func:`random_cascade` (with the same generator state)
and returns them by name, e.g. to plot the distribution.

Taught in notebook 03 (predictor and cascade).
"""

from __future__ import annotations

import math

import torch

from . import geometry as G
from .losses.consistency import consistency_points


WARP_DISTRIBUTION = {"rotation_deg": 25.0, "scale": (0.75, 1.25), "log_aspect": 0.15, "shear": 0.15,
                     "translation": 0.25, "tps_jitter": 0.1}


def _affine_draws(batch: int, generator: torch.Generator, rotation: float, scale, aspect: float, shear: float,
                  translation: float) -> dict:
    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(batch, generator=generator)

    angle, s = u(-rotation, rotation), u(*scale)
    a, sh = torch.exp(u(-aspect, aspect)), u(-shear, shear)
    tx, ty = u(-translation, translation), u(-translation, translation)
    return {"angle": angle, "scale": s, "aspect": a, "shear": sh, "tx": tx, "ty": ty}


def random_affine(batch: int, generator: torch.Generator, rotation: float = math.radians(25), scale=(0.75, 1.25),
                  aspect: float = 0.15, shear: float = 0.15, translation: float = 0.25, device=None) -> torch.Tensor:
    """Random affine thetas ``(batch, 6)``: rotation in radians, scale range, log-aspect, shear, translation."""
    d = _affine_draws(batch, generator, rotation, scale, aspect, shear, translation)
    angle, s, a, sh, tx, ty = (d[k] for k in ("angle", "scale", "aspect", "shear", "tx", "ty"))
    cos, sin = torch.cos(angle), torch.sin(angle)
    # R(angle) @ [[s a, s sh], [0, s / a]]
    m00, m01 = cos * s * a, cos * s * sh - sin * s / a
    m10, m11 = sin * s * a, sin * s * sh + cos * s / a
    return torch.stack((m00, m01, tx, m10, m11, ty), 1).to(device)


def random_tps(batch: int, generator: torch.Generator, jitter: float = 0.15, grid_size: int = 3, device=None):
    """Random TPS thetas ``(batch, 2 n^2)``: control points moved uniformly by up to ``jitter``."""
    noise = (torch.rand(batch, 2 * grid_size * grid_size, generator=generator) * 2 - 1) * jitter
    return (G.identity_theta("tps", batch, grid_size) + noise).to(device)


def random_cascade(batch: int, generator: torch.Generator, tps_jitter: float = 0.1, grid_size: int = 3, device=None,
                   **affine_kw) -> torch.Tensor:
    return G.cascade_theta(random_affine(batch, generator, device=device, **affine_kw),
                           random_tps(batch, generator, tps_jitter, grid_size, device))


def warp_parameters(batch: int, generator: torch.Generator, tps_jitter: float = 0.1, grid_size: int = 3) -> dict:
    """The parameters behind ``random_cascade(batch, generator)`` by name (same generator state, same draws):
    ``rotation_deg``, ``scale``, ``aspect``, ``shear``, ``tx``, ``ty`` ``(batch,)`` and ``tps_offsets``
    ``(batch, 2 n^2)`` (control-point displacements, normalised units)."""
    d = _affine_draws(batch, generator, math.radians(25), (0.75, 1.25), 0.15, 0.15, 0.25)
    noise = (torch.rand(batch, 2 * grid_size * grid_size, generator=generator) * 2 - 1) * tps_jitter
    return {"rotation_deg": torch.rad2deg(d["angle"]), "scale": d["scale"], "aspect": d["aspect"],
            "shear": d["shear"], "tx": d["tx"], "ty": d["ty"], "tps_offsets": noise}


SCHEDULES = ("cosine", "constant")  # the learning-rate schedules of both training phases


def lr_schedule(step: int, steps: int, schedule: str = "cosine", warmup: int = 0) -> float:
    """Factor of a phase's peak learning rate at its step ``step`` (0-based) of ``steps``: the one schedule of
    both pre-training and the weak phase (:class:`macos_lite.training.Trainer`).

    ``"constant"``: 1. ``"cosine"``: ``(step + 1) / (warmup + 1)`` during a linear warm-up of ``warmup`` steps,
    then ``(1 + cos(pi t)) / 2`` with ``t = (step - warmup) / (steps - warmup)`` going from 0 to 1 (held at 1
    past the end): the rate decays to zero by the end of the phase. At a constant rate the pre-training grid
    loss falls and then climbs back (Adam's steps stay large while the regression gets finer); the decay
    lets it settle.

    Example:
        >>> [round(lr_schedule(s, 4), 3) for s in range(5)]
        [1.0, 0.854, 0.5, 0.146, 0.0]
    """
    if schedule == "constant":
        return 1.0
    if schedule != "cosine":
        raise ValueError(f"the learning-rate schedule must be one of {SCHEDULES}, got {schedule!r}")
    warm = max(0, min(int(warmup), steps - 1))
    if step < warm:
        return (step + 1) / (warm + 1)
    t = (step - warm) / max(1, steps - warm)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def make_pairs(images: torch.Tensor, theta_gt: torch.Tensor, kind: str) -> torch.Tensor:
    """``(B, 2, 3, H, W)`` pairs (A, B = warp(A, theta_gt)) with reflection padding."""
    warped = G.warp_image(images, theta_gt.to(images.dtype), kind, padding_mode="reflection", check=False)
    return torch.stack((images, warped), 1)


def grid_loss(theta_pred: torch.Tensor, theta_gt: torch.Tensor, kind_pred: str, kind_gt: str, n: int = 20) -> torch.Tensor:
    """Mean distance between the predicted and true images of an ``n x n`` grid, per sample ``(B,)``."""
    q = consistency_points(n, theta_pred.dtype, theta_pred.device)
    d = G.transform_points(q, theta_pred, kind_pred) - G.transform_points(q, theta_gt.to(theta_pred.dtype), kind_gt)
    return torch.sqrt((d**2).sum(-1) + 1e-12).mean(-1)


def pretrain_loss(model, images: torch.Tensor, generator: torch.Generator, tps: bool = True) -> tuple[torch.Tensor, dict]:
    """One strong-supervision step's loss for a batch of single images ``(B, 3, H, W)``.

    With ``tps``: B is a random cascade warp of A; the affine stage is judged against the whole true
    map (it should explain what an affine map can), the composed prediction against it too.
    """
    theta_gt = random_cascade(images.shape[0], generator, device=images.device) if tps else \
        random_affine(images.shape[0], generator, device=images.device)
    kind_gt = "cascade" if tps else "affine"
    out = model(make_pairs(images, theta_gt, kind_gt), tps=tps, masks=False, pairs=[(0, 1)])
    terms = {"grid_affine": grid_loss(out.theta(0, 1, "affine"), theta_gt, "affine", kind_gt)}
    if tps:
        terms["grid_cascade"] = grid_loss(out.theta(0, 1, "cascade"), theta_gt, "cascade", kind_gt)
    return sum(v.mean() for v in terms.values()), terms
