"""The decoder's co-occurrence input: what says "this cell shows the object the other images share",
independent of the category and of the partner's layout.

The paper feeds D with ``[f_t, S_st]``: the target's features and the correlation, one channel per *cell of the
partner*. Those ``h*w`` channels are tied to where things are in the partner, so a decoder trained on horses
learns what horses look like rather than what co-occurs (docs/differences.md D23). The co-occurrence input
replaces them by a few channels that mean the same thing for any category and any partner:

* ``match``: ``max_p cos(f_s(p), f_t(q))`` -- how well target cell q is matched anywhere in the partner;
* ``mutual``: ``max_p softmax_p(c / tau)[p, q] * softmax_q(c / tau)[p, q]`` with ``c = cos(f_s(p), f_t(q))`` --
  a soft mutual-nearest-neighbour score (close to 1 when q and its best partner cell pick each other);
* ``coloc``: the set's training-free co-localisation (:mod:`macos_lite.colocalization`: DDT, the largest
  component, prototype refinement) of the images seen together -- the pair or triplet in training, the whole
  group at evaluation -- as its signed evidence divided by its standard deviation over the set, and its mask.

``decoder_input(f_t, f_s, coloc)`` = ``[f_t, match, mutual, coloc score, coloc mask]``: ``C + 4`` channels.
Nothing here is learned, and no gradient flows through the statistics into the encoder.

Taught in notebook 06 (decoder and contrastive loss).
"""

from __future__ import annotations

import torch

from .colocalization import DEFAULT_ROUNDS, colocalize_features
from .correlation import raw_correlation

MUTUAL_TEMPERATURE = 0.05  # tau of the soft mutual-nearest-neighbour score, in cosine units
EXTRA_CHANNELS = 4  # match, mutual, co-localisation score, co-localisation mask
INPUTS = ("paper", "cooccurrence")
"""The decoder inputs: ``paper`` = ``[f_t, S_st]`` (eq 4's C_A), ``cooccurrence`` = this module's."""


def match_statistics(f_src: torch.Tensor, f_tgt: torch.Tensor, tau: float = MUTUAL_TEMPERATURE) -> torch.Tensor:
    """``(N, 2, h_t, w_t)``: the best cosine of each target cell in its partner, and the soft mutual-NN score.

    f_src ``(N, C, h_s, w_s)``, f_tgt ``(N, C, h_t, w_t)``, both L2-normalised over C (as the model's).
    tau: the softmax temperature of the mutual score (> 0).

    Example:
        >>> f = torch.nn.functional.normalize(torch.randn(1, 8, 3, 3), dim=1)
        >>> stats = match_statistics(f, f)          # an image against itself: every cell finds itself
        >>> bool(torch.allclose(stats[:, 0], torch.ones(1, 3, 3)))
        True
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    c = raw_correlation(f_src, f_tgt).flatten(2)  # (N, p, q)
    match = c.max(dim=1).values
    mutual = (torch.softmax(c / tau, dim=1) * torch.softmax(c / tau, dim=2)).max(dim=1).values
    return torch.stack((match, mutual), dim=1).view(f_tgt.shape[0], 2, *f_tgt.shape[-2:])


@torch.no_grad()
def colocalization_channels(features: torch.Tensor, rounds: int = DEFAULT_ROUNDS) -> torch.Tensor:
    """``(N, 2, h, w)``: the co-localisation of one image set ``features (N, C, h, w)`` (N >= 2 images that share
    an object) -- its signed evidence divided by the evidence's standard deviation over the set, and its mask.

    A single image (N = 1) has nothing to share: both channels are zero.
    """
    n, _, h, w = features.shape
    if n < 2:
        return features.new_zeros(n, 2, h, w)
    result = colocalize_features(features.float(), rounds)
    scores = result.scores.to(features)
    scores = scores / scores.std().clamp_min(1e-6)
    return torch.stack((scores, result.masks.to(features)), dim=1)


def colocalize_tuples(features: torch.Tensor, rounds: int = DEFAULT_ROUNDS) -> torch.Tensor:
    """Co-localisation channels of each sample's tuple: features ``(T, B, C, h, w)`` (T images of sample b form one
    set) -> ``(T, B, 2, h, w)``."""
    return torch.stack([colocalization_channels(features[:, b], rounds) for b in range(features.shape[1])], dim=1)


def decoder_input(f_tgt: torch.Tensor, f_src: torch.Tensor, coloc: torch.Tensor) -> torch.Tensor:
    """``[f_t, match, mutual, coloc score, coloc mask]`` ``(N, C + 4, h, w)`` for targets ``f_tgt (N, C, h, w)``
    co-segmented with partners ``f_src`` and the targets' co-localisation channels ``coloc (N, 2, h, w)``."""
    if coloc.shape[0] != f_tgt.shape[0] or coloc.shape[1] != 2 or coloc.shape[-2:] != f_tgt.shape[-2:]:
        raise ValueError(f"coloc must be (N, 2, h, w) = ({f_tgt.shape[0]}, 2, {f_tgt.shape[-2]}, {f_tgt.shape[-1]}), "
                         f"got {tuple(coloc.shape)}")
    stats = match_statistics(f_src.detach(), f_tgt.detach())
    return torch.cat((f_tgt, stats, coloc.to(f_tgt)), dim=1)
