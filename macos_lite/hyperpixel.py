"""Multi-layer ("hyperpixel") features for the correlation (Min, Lee, Ponce, Cho, "Hyperpixel Flow", ICCV 2019).

One descriptor per cell of the correlation grid, built from several stages of the encoder: each stage's map is
L2-normalised over its channels, resampled to the grid (bilinear, cell centres aligned: ``align_corners=False``),
the maps concatenated over channels and the result L2-normalised again. Stages are named by their stride:
8 (the stride-8 map), 16 (the encoder's correlation map, stride 16, or 8 when dilated) and 32 (Lite0's
320-channel stage, built with ``build_encoder(..., deep=True)``).

Taught in notebook 09 (the matching reference at several stages).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .backbones import l2_normalize

STAGES = (8, 16, 32)


def check_stages(stages) -> tuple[int, ...]:
    """``stages`` as a sorted tuple of distinct strides from :data:`STAGES` (``ValueError`` naming the bad one)."""
    out = tuple(sorted({int(s) for s in stages}))
    bad = [s for s in out if s not in STAGES]
    if not out or bad:
        raise ValueError(f"feature stages must be strides among {STAGES}, got {tuple(stages)}")
    return out


def stage_maps(encoder, images: torch.Tensor, stages) -> list[torch.Tensor]:
    """The raw maps of ``stages`` (see :func:`check_stages`) for ``images (N, 3, H, W)``, in stage order."""
    stages = check_stages(stages)
    feats = encoder(images)
    maps = {8: feats[2], 16: feats[3]}
    if 32 in stages:
        maps[32] = encoder.deeper(feats[3])
    return [maps[s] for s in stages]


def hyperpixel(maps, grid_size=None) -> torch.Tensor:
    """Concatenate L2-normalised maps ``(N, C_i, h_i, w_i)`` on one grid: ``(N, sum C_i, h, w)``, unit length per
    cell (or zero where every map is zero). grid_size ``(h, w)``: default the first map's.

    Example:
        >>> a, b = torch.randn(1, 4, 6, 6), torch.randn(1, 3, 3, 3)
        >>> f = hyperpixel([a, b])
        >>> tuple(f.shape), bool(torch.allclose(f.norm(dim=1), torch.ones(1, 6, 6)))
        ((1, 7, 6, 6), True)
    """
    maps = list(maps)
    size = tuple(grid_size) if grid_size is not None else tuple(maps[0].shape[-2:])
    parts = [l2_normalize(m if tuple(m.shape[-2:]) == size else
                          F.interpolate(m, size=size, mode="bilinear", align_corners=False)) for m in maps]
    return l2_normalize(torch.cat(parts, dim=1))
