"""Multi-layer ("hyperpixel") features for the correlation (Min, Lee, Ponce, Cho, "Hyperpixel Flow", ICCV 2019).

One descriptor per cell of the correlation grid, built from several stages of the encoder: each stage's map is
L2-normalised over its channels, resampled to the grid (bilinear, cell centres aligned: ``align_corners=False``),
the maps concatenated over channels and the result L2-normalised again. Stages are named by their stride:
8 (the stride-8 map), 16 (the encoder's correlation map, stride 16, or 8 when dilated) and 32 (Lite0's
320-channel stage, built with ``build_encoder(..., deep=True)``).

Taught in notebook 09 (the matching reference at several stages).
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F

from .backbones import l2_normalize

STAGES = (8, 16, 32)
# the command line's names of every choice of stages (strides joined by '+', ascending): "8", "8+16", ..., "8+16+32"
STAGE_CHOICES = tuple("+".join(map(str, chosen)) for k in range(1, len(STAGES) + 1)
                      for chosen in combinations(STAGES, k))


def check_stages(stages) -> tuple[int, ...]:
    """``stages`` as a sorted tuple of distinct strides from :data:`STAGES`: an iterable of strides or a string
    of them joined by '+' (``"16+32"``, the command line's form). ``ValueError`` naming the bad one."""
    try:
        items = stages.split("+") if isinstance(stages, str) else list(stages)
        out = tuple(sorted({int(s) for s in items}))
    except (TypeError, ValueError):
        out = ()
    bad = [s for s in out if s not in STAGES]
    if not out or bad:
        raise ValueError(f"feature stages must be strides among {STAGES} (e.g. 16 or 16+32), got {stages!r}")
    return out


def stage_names(stages) -> str:
    """The command line's form of ``stages``: strides joined by '+' (``(16, 32)`` -> ``"16+32"``)."""
    return "+".join(str(s) for s in check_stages(stages))


def stage_channels(encoder, stages) -> int:
    """Channels of the concatenated descriptor of ``stages`` for ``encoder`` (Lite0: 8 -> 40, 16 -> 112, 32 -> 320)."""
    per_stage = {8: encoder.channels[2], 16: encoder.channels[3]}
    if 32 in check_stages(stages):
        per_stage[32] = encoder.deep_channels
    return sum(per_stage[s] for s in check_stages(stages))


def maps_of(encoder, feats: list[torch.Tensor], stages) -> list[torch.Tensor]:
    """The raw maps of ``stages`` from the encoder's outputs ``feats`` (its maps at strides 2, 4, 8, 16), in
    stage order; the stride-32 map is computed from the stride-16 one (``encoder.deeper``)."""
    stages = check_stages(stages)
    maps = {8: feats[2], 16: feats[3]}
    if 32 in stages:
        maps[32] = encoder.deeper(feats[3])
    return [maps[s] for s in stages]


def stage_maps(encoder, images: torch.Tensor, stages) -> list[torch.Tensor]:
    """The raw maps of ``stages`` (see :func:`check_stages`) for ``images (N, 3, H, W)``, in stage order."""
    return maps_of(encoder, encoder(images), stages)


def correlation_features(encoder, feats: list[torch.Tensor], stages) -> torch.Tensor:
    """The descriptors that are correlated, on the grid of the encoder's last map ``feats[3]`` ``(N, C, h, w)``:
    that map L2-normalised for ``stages == (16,)`` (the paper's), else :func:`hyperpixel` of the stages' maps."""
    maps = maps_of(encoder, feats, stages)
    if len(maps) == 1 and check_stages(stages) == (16,):
        return l2_normalize(maps[0])
    return hyperpixel(maps, feats[3].shape[-2:])


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
