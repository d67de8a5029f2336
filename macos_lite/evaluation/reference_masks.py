"""Training-free co-segmentation references: what any learned mask must beat.

* :class:`EllipseMethod` -- a centred ellipse filling ``fill`` of the frame's half-width and half-height: a
  pure shape prior (objects tend to be centred), no image content at all.
* :class:`DDTMethod` -- co-localisation of the evaluated images with the encoder's ImageNet features
  (:mod:`macos_lite.colocalization`: DDT, largest component, prototype refinement; optionally the guided
  filter). Co-segmentation is defined on a *set* of images of one category: this method sees all evaluated
  images of a category at once (``cosegment_set``), never their masks; on a pair dataset (TSS) the set is
  the pair (``masks``).

Neither method estimates a transformation: ``transforms`` is the identity (``kind = "affine"``).

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import geometry as G
from ..backbones import build_encoder
from ..colocalization import DEFAULT_ROUNDS, colocalize
from .methods import _checked_pair

REFINES = ("none", "edges")


def ellipse_mask(height: int, width: int, fill: float = 0.7) -> torch.Tensor:
    """A centred ellipse ``(1, H, W)`` in {0, 1}: pixel centres with ``(dx / a)^2 + (dy / b)^2 <= 1``, semi-axes
    ``a = fill * W / 2``, ``b = fill * H / 2`` around the image centre.

    Example:
        >>> ellipse_mask(5, 5, 0.8)[0].int().tolist()
        [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0]]
    """
    y = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2) / (fill * height / 2)
    x = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2) / (fill * width / 2)
    return ((y[:, None] ** 2 + x[None, :] ** 2) <= 1.0).float().unsqueeze(0)


class _NoMotion:
    kind = "affine"

    def transforms(self, images_A: torch.Tensor, images_B: torch.Tensor) -> torch.Tensor:
        images_A, _ = _checked_pair(images_A, images_B, f"{type(self).__name__}.transforms")
        return G.identity_theta("affine", images_A.shape[0], dtype=torch.float32, device=images_A.device)


class EllipseMethod(_NoMotion):
    """The centred-ellipse reference (see :func:`ellipse_mask`)."""

    name = "ellipse"

    def __init__(self, fill: float = 0.7):
        self.fill = float(fill)

    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images_A, images_B = _checked_pair(images_A, images_B, "EllipseMethod.masks")
        m = ellipse_mask(*images_A.shape[-2:], self.fill).to(images_A.device)
        return m.expand(len(images_A), -1, -1, -1), m.expand(len(images_B), -1, -1, -1)


class DDTMethod(_NoMotion):
    """Co-localisation of the evaluated set (no training, no masks): see the module docstring.

    backbone: the encoder whose ImageNet features are used (``"lite"``); rounds: prototype refinement
    rounds; refine: ``"none"`` (the grid masks resized bilinearly) or ``"edges"`` (the guided filter);
    encoder: an encoder to use instead of building ``backbone``'s (e.g. a trained model's ``model.encoder``,
    the one its pseudo-masks were computed with).
    """

    name = "ddt"

    def __init__(self, backbone: str = "lite", rounds: int = DEFAULT_ROUNDS, refine: str = "none", device="cpu",
                 encoder=None):
        if refine not in REFINES:
            raise ValueError(f"refine must be one of {REFINES}, got {refine!r}")
        if encoder is None:
            encoder = build_encoder(backbone, pretrained=True, mode="frozen").eval().to(device)
        self.encoder = encoder
        self.rounds, self.refine, self.device = int(rounds), refine, device
        if refine != "none":
            self.name = f"ddt+{refine}"

    @torch.no_grad()
    def cosegment_set(self, images: torch.Tensor, labels) -> torch.Tensor:
        """Probabilities ``(N, 1, H, W)`` of images ``(N, 3, H, W)`` co-localised per category (``labels``)."""
        images, _ = G.as_image_batch(images, "images", where="DDTMethod.cosegment_set")
        return colocalize(images, labels, self.encoder, rounds=self.rounds, edges=self.refine == "edges",
                          device=self.device).to(images.device)

    @torch.no_grad()
    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each pair ``(A_i, B_i)`` co-localised as a set of two images."""
        images_A, images_B = _checked_pair(images_A, images_B, "DDTMethod.masks")
        b = len(images_A)
        labels = np.repeat(np.arange(b), 2)
        both = torch.stack((images_A, images_B), 1).flatten(0, 1)
        probs = self.cosegment_set(both, labels).view(b, 2, 1, *images_A.shape[-2:])
        return probs[:, 0], probs[:, 1]
