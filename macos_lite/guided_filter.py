"""The colour guided filter (He, Sun, Tang, "Guided Image Filtering", ECCV 2010; TPAMI 2013, Algorithm 1
with a 3-channel guide), used to snap coarse masks to an image's edges (:func:`macos_lite.colocalization.edge_refine`).

In every window ``w_k`` of radius ``r`` the output is a linear function of the guide ``I``, ``q = a_k^T I + b_k``,
fitted to the input ``p`` by ridge regression:

    a_k = (Sigma_k + eps U)^-1 (mean(I p) - mean(I) mean(p)),      b_k = mean(p) - a_k^T mean(I),

with ``Sigma_k`` the 3 x 3 covariance of the guide's colours in the window; ``q`` averages the ``(a_k, b_k)``
of the windows covering each pixel. Where the guide is flat (``Sigma`` small against ``eps``) ``q`` is a
smoothed ``p``; across a colour edge ``q`` follows the edge.

Every mean is a box mean over a ``(2r + 1)^2`` window with the border mirrored (``scipy.ndimage.uniform_filter``,
``mode="mirror"``: a running sum, the same cost for any radius), and the 3 x 3 systems are solved in closed
form (the adjugate of a symmetric matrix). The result equals ``kornia.filters.guided_blur(I, p, 2r + 1, eps)``
(its "reflect" border) to float rounding, in about a fifth of its time for the 30-pixel radius used here (its box
filter costs O(r) per pixel); tests/test_guided_filter.py checks both. Notebook 06 shows it at work on the
co-localisation masks.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

CHUNK = 32  # images filtered together: bounds the memory of the 13 intermediate maps per image


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean of ``x`` ``(N, C, H, W)`` over the ``(2 radius + 1)^2`` window around each pixel, border mirrored."""
    size = (1, 1, 2 * radius + 1, 2 * radius + 1)
    return torch.from_numpy(ndimage.uniform_filter(np.ascontiguousarray(x.numpy()), size=size, mode="mirror"))


def guided_filter(guide: torch.Tensor, p: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Filter ``p`` ``(N, 1, H, W)`` along the edges of the colour ``guide`` ``(N, 3, H, W)`` (He et al. 2010).

    radius: the window radius in pixels (>= 1; mirrored borders need ``radius < min(H, W)``); eps: the
    regulariser in squared units of the guide (larger: smoother, fewer edges followed). Returns ``(N, 1, H, W)``
    float32 on the CPU. Raises ``ValueError`` for other shapes or a radius out of range.

    Example:
        >>> g = torch.zeros(1, 3, 8, 8); g[..., 4:] = 1.0          # a vertical colour edge
        >>> q = guided_filter(g, torch.full((1, 1, 8, 8), 0.3), radius=2, eps=1e-4)
        >>> bool(torch.allclose(q, torch.tensor(0.3), atol=1e-5))   # a constant input stays constant
        True
    """
    if guide.dim() != 4 or guide.shape[1] != 3 or p.dim() != 4 or p.shape[1] != 1 \
            or guide.shape[0] != p.shape[0] or guide.shape[-2:] != p.shape[-2:]:
        raise ValueError(f"guide must be (N, 3, H, W) and p (N, 1, H, W) of the same N, H, W; got "
                         f"{tuple(guide.shape)} and {tuple(p.shape)}")
    if not 1 <= int(radius) < min(guide.shape[-2:]):
        raise ValueError(f"radius must be in [1, {min(guide.shape[-2:]) - 1}] for {tuple(guide.shape[-2:])} "
                         f"images, got {radius}")
    guide, p = guide.detach().float().cpu(), p.detach().float().cpu()
    return torch.cat([_filter(guide[i:i + CHUNK], p[i:i + CHUNK], int(radius), float(eps))
                      for i in range(0, len(p), CHUNK)])


def _filter(guide: torch.Tensor, p: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    i, j = torch.triu_indices(3, 3)  # the six distinct entries of the covariance: 00 01 02 11 12 22
    mean_guide, mean_p = box_mean(guide, r), box_mean(p, r)
    moments = box_mean(torch.cat([guide[:, i] * guide[:, j], guide * p], 1), r)
    s = moments[:, :6] - mean_guide[:, i] * mean_guide[:, j]
    s00, s01, s02, s11, s12, s22 = (s[:, k] + (eps if k in (0, 3, 5) else 0.0) for k in range(6))
    cov = moments[:, 6:] - mean_guide * mean_p  # (N, 3, H, W): covariance of each colour with p
    # (Sigma + eps U)^-1 = adj / det for the symmetric 3 x 3 matrix
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    a = torch.stack([c00 * cov[:, 0] + c01 * cov[:, 1] + c02 * cov[:, 2],
                     c01 * cov[:, 0] + c11 * cov[:, 1] + c12 * cov[:, 2],
                     c02 * cov[:, 0] + c12 * cov[:, 1] + c22 * cov[:, 2]], 1) / det.unsqueeze(1)
    b = mean_p - (a * mean_guide).sum(1, keepdim=True)
    return (box_mean(a, r) * guide).sum(1, keepdim=True) + box_mean(b, r)
