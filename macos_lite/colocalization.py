"""Training-free co-localisation: the object that a set of images shares, found from their features alone.

Co-segmentation is defined on a *set* of images of one category: what recurs across the set is the object,
what changes from image to image is background. This module finds it without any training and without
masks, with the encoder's ImageNet features, in three steps:

1. **DDT** (Deep Descriptor Transforming; Wei, Zhang, Li, Shen, Zhou, IJCAI 2017). Stack every stride-16
   descriptor ``x`` of every image of the set into ``X`` (``N h w`` rows, ``C`` columns), take its mean
   ``mu`` and the first principal direction ``v`` of ``X - mu``; the score of a cell is its projection

       P_i(p) = v^T (x_i(p) - mu).

   The principal direction is the strongest shared pattern of the set: the co-occurring object. Its sign
   is arbitrary, so it is fixed by the border: objects seldom fill the image border, so the mean score
   over the border cells is made negative.
2. **Largest connected component** of ``P > 0`` (``scipy.ndimage.label``): one object per image.
3. **Prototype refinement** (a few rounds): one object prototype for the whole set, ``o = n(sum M x)``,
   one background prototype per image, ``b_i = n(sum (1 - M) x_i)`` (``n`` = L2 normalisation), and
   the new mask ``[d > 0]`` with ``d_i(p) = cos(x_i(p), o) - cos(x_i(p), b_i)``, again its largest component.

Optionally, :func:`edge_refine` snaps the coarse (stride-16) mask to the image's colour edges with a
colour guided filter (He, Sun, Tang, "Guided Image Filtering", ECCV 2010; :mod:`macos_lite.guided_filter`).

Measured on the Weizmann horses (Lite0, 240 px, per-image Jaccard J, mean over images): all-foreground
0.24, a centred ellipse 0.41, DDT > 0 about 0.48, + largest component 0.54, + refinement 0.60,
+ guided filter about 0.77 (notebook 06 prints them; ``macos-lite evaluate --method ddt``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from . import geometry as G
from .guided_filter import guided_filter

DEFAULT_ROUNDS = 3
DEFAULT_PRIOR_SIZE = 240  # pixels: the prior's features come from images of this size (a 15 x 15 grid for Lite0)
DEFAULT_EDGE_RADIUS = 0.125  # guided-filter radius as a fraction of the image's shorter side (30 px at 240 px)
DEFAULT_EDGE_EPS = 0.01  # guided-filter regulariser, in squared [0, 1] intensity units


def ddt_projection(features: torch.Tensor) -> torch.Tensor:
    """DDT scores ``P (N, h, w)`` of a set's descriptors ``features (N, C, h, w)`` (one category).

    ``P_i(p) = v^T (x_i(p) - mu)`` with ``mu`` the mean descriptor of the set and ``v`` the first right
    singular vector of the centred descriptor matrix (its first principal direction), signed so that the
    mean score on the border cells is negative (objects seldom fill the border). Computed in float64.

    Example:
        >>> f = torch.zeros(2, 3, 4, 4); f[:, 0, 1:3, 1:3] = 1.0   # a blob that recurs in both images
        >>> (ddt_projection(f) > 0).int()[0].tolist()
        [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    """
    if features.dim() != 4:
        raise ValueError(f"features must be (N, C, h, w), got shape {tuple(features.shape)}")
    n, c, h, w = features.shape
    x = features.detach().double().permute(0, 2, 3, 1).reshape(-1, c)
    x = x - x.mean(0)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    scores = (x @ vh[0]).view(n, h, w)
    border = torch.cat((scores[:, 0].flatten(), scores[:, -1].flatten(), scores[:, 1:-1, 0].flatten(),
                        scores[:, 1:-1, -1].flatten()))
    if border.mean() > 0:
        scores = -scores
    return scores.float()


def largest_component(mask) -> np.ndarray:
    """The largest 4-connected component of a boolean mask ``(h, w)`` (empty stays empty); ties: the first
    component in raster order. Uses ``scipy.ndimage.label``.

    Example:
        >>> largest_component(np.array([[1, 0, 1], [0, 0, 1]], bool)).astype(int).tolist()
        [[0, 0, 1], [0, 0, 1]]
    """
    mask = np.asarray(mask, dtype=bool)
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask.copy()
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return labels == (int(np.argmax(sizes)) + 1)


def prototype_scores(features: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``d_i(p) = cos(x_i(p), o) - cos(x_i(p), b_i)`` ``(N, h, w)``: o the set's object prototype (mean of the
    L2-normalised descriptors inside the masks), b_i image i's background prototype (outside its mask).

    features ``(N, C, h, w)``; masks ``(N, h, w)`` in [0, 1]. An image whose mask covers everything has no
    background prototype (b_i = 0), so its cells are scored by the object prototype alone.
    """
    x = F.normalize(features.detach().float(), dim=1)
    m = masks.float().unsqueeze(1)
    o = F.normalize((x * m).sum(dim=(0, 2, 3)), dim=0)
    b = F.normalize((x * (1 - m)).sum(dim=(2, 3)), dim=1)
    return torch.einsum("nchw,c->nhw", x, o) - torch.einsum("nchw,nc->nhw", x, b)


@dataclass
class CoLocalization:
    """The result of :func:`colocalize` for one image set: ``masks`` ``(N, h, w)`` bool on the feature grid,
    ``scores`` ``(N, h, w)`` the last round's signed evidence (DDT's ``P`` when ``rounds = 0``, else ``d``),
    ``foreground_fraction`` the masks' mean area."""

    masks: torch.Tensor
    scores: torch.Tensor

    @property
    def foreground_fraction(self) -> float:
        return float(self.masks.float().mean())

    def probabilities(self, size) -> torch.Tensor:
        """The masks as probabilities ``(N, 1, H, W)`` resized bilinearly to ``size``.

        A feature cell is an area (cell i of a stride-16 grid covers pixels 16 i .. 16 i + 15), so the grid is
        resized with cell centres aligned (``align_corners=False``), not corners: corner alignment would
        stretch the mask outwards by up to half a cell (-0.06 J on the horses).
        """
        size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        return F.interpolate(self.masks.float().unsqueeze(1), size=size, mode="bilinear", align_corners=False)


def colocalize_features(features: torch.Tensor, rounds: int = DEFAULT_ROUNDS) -> CoLocalization:
    """Co-localise one set (one category) from its stride-16 features ``(N, C, h, w)``: DDT, the largest
    component, then ``rounds`` rounds of prototype refinement (see the module docstring)."""
    if rounds < 0:
        raise ValueError(f"rounds must be >= 0, got {rounds}")
    scores = ddt_projection(features)
    masks = torch.from_numpy(np.stack([largest_component(p > 0) for p in scores.numpy()]))
    for _ in range(rounds):
        scores = prototype_scores(features, masks)
        masks = torch.from_numpy(np.stack([largest_component(d > 0) for d in scores.numpy()]))
    return CoLocalization(masks=masks, scores=scores)


def edge_refine(images: torch.Tensor, probabilities: torch.Tensor, radius: float = DEFAULT_EDGE_RADIUS,
                eps: float = DEFAULT_EDGE_EPS) -> torch.Tensor:
    """Snap coarse mask probabilities to the image's edges with a colour guided filter (He et al. 2010).

    images ``(N, 3, H, W)`` in [0, 1] (the guide); probabilities ``(N, 1, h, w)`` (resized to ``H x W``
    first); radius: the filter's window radius as a fraction of ``min(H, W)`` (>= 1 pixel); eps: the
    regulariser (larger: smoother, fewer edges followed). Returns ``(N, 1, H, W)`` clamped to [0, 1].
    """
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    size = tuple(images.shape[-2:])
    probs = G.resize(probabilities.float(), size)
    r = max(1, int(round(radius * min(size))))
    out = guided_filter(images, probs, min(r, min(size) - 1), eps).to(images.device)
    return out.clamp(0.0, 1.0)


@torch.no_grad()
def encode_set(encoder, images, batch_size: int = 16, device="cpu") -> torch.Tensor:
    """Stride-16 features ``(N, C, h, w)`` of images ``(N, 3, H, W)`` (or a list of ``(3, H, W)`` of one size)
    with ``encoder`` (a :mod:`macos_lite.backbones` encoder, in eval mode for the call)."""
    if isinstance(images, (list, tuple)):
        images = torch.stack(list(images))
    was_training = encoder.training
    encoder.eval()
    try:
        feats = [encoder(images[i:i + batch_size].to(device))[3].float().cpu() for i in range(0, len(images), batch_size)]
    finally:
        encoder.train(was_training)
    return torch.cat(feats)


def colocalize(images: torch.Tensor, labels, encoder, rounds: int = DEFAULT_ROUNDS, edges: bool = False,
               radius: float = DEFAULT_EDGE_RADIUS, eps: float = DEFAULT_EDGE_EPS, device="cpu") -> torch.Tensor:
    """Mask probabilities ``(N, 1, H, W)`` of images ``(N, 3, H, W)`` in [0, 1], co-localised per category.

    labels: the category of each image (length N); each category is one set. rounds: prototype
    refinement rounds; edges: follow the colour edges with :func:`edge_refine` (else the grid masks are
    resized bilinearly). No masks or keypoints are used: only the images and which images share a category.
    """
    labels = np.asarray(list(labels))
    if len(labels) != len(images):
        raise ValueError(f"labels has {len(labels)} entries for {len(images)} images")
    feats = encode_set(encoder, images, device=device)
    size = tuple(images.shape[-2:])
    out = torch.zeros(len(images), 1, *size)
    for c in np.unique(labels):
        idx = torch.from_numpy(np.flatnonzero(labels == c))
        result = colocalize_features(feats[idx], rounds)
        probs = result.probabilities(size)
        out[idx] = edge_refine(images[idx].cpu(), probs, radius, eps) if edges else probs
    return out
