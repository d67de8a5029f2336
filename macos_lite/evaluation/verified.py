"""A learned matcher checked, pair by pair, against the robust fit of its own features.

The learned regressor G and the training-free robust fit (:mod:`macos_lite.robust_fit`) fail on different
pairs: G gives a smooth map everywhere but can be far off on a pair unlike its training; RANSAC is exact where
many mutual nearest neighbours agree on one affine map and poor where few do. The check asks the matches
themselves which map to trust:

1. the mutual nearest neighbours of the model's own correlation features (``model.encode``): by default on the
   grid G sees; with ``image_size`` on the finer grid of the same encoder at a larger input (a frozen encoder's
   features do not depend on the input size, only their grid does);
2. ``n_G``: how many of them the learned map (the cascade, or the affine stage with ``kind="affine"``) sends
   within ``threshold`` cells of their match; ``n_R``: the same for the RANSAC affine fit of those matches;
3. the pair keeps the learned map unless ``n_R > n_G + margin * (cells of B's grid)``; then the fit replaces
   it (with the identity TPS when the kind is a cascade).

RANSAC maximises ``n_R`` by construction, so ``n_R >= n_G`` on most pairs even where G is closer to the truth:
the margin asks for a clear majority. :data:`MARGIN` (6 of the 64 cells of the ``demo`` grid) was chosen on the
*training* sub-classes of the two PF-WILLOW folds, among 0, 2, 4, 6 and 9 matches (docs/results.md, "Matching on
unseen sub-classes"). On a finer grid than G's (``image_size`` larger than the model's: the fit sees more cells
than G was trained on) the fit is the stronger of the two and :data:`FINE_MARGIN` (0: a bare majority) applies,
chosen the same way for the 15 x 15 grid of 240 px among 0, 2, 4, 6, 9 and 12.

:class:`VerifiedMethod` wraps a :class:`~macos_lite.evaluation.ModelMethod` (``macos-lite evaluate --checkpoint
RUN/best.pt --verify ransac``); masks are the wrapped method's. ``num_replaced`` counts the pairs whose map
the fit replaced. Taught in notebook 09 (evaluation), beside the robust fit it is checked against.
"""

from __future__ import annotations

import math

import torch

from .. import geometry as G
from ..robust_fit import (ITERATIONS, SEED, THRESHOLD_CELLS, RansacMethod, agreeing_matches, matched_points,
                          robust_fit)

MARGIN = 6 / 64  # of B's grid cells: the fit must agree with this many more matches than G to replace it
FINE_MARGIN = 0.0  # the same when the check's grid is finer than G's (``image_size`` above the model's)
MIN_CHECK_SIZE = 32  # pixels: one cell of the coarsest (stride-32) stage


class VerifiedMethod:
    """``method``'s maps, replaced by the robust fit of its model's features where the matches clearly prefer it.

    method: a :class:`~macos_lite.evaluation.ModelMethod` (anything with ``model``, ``kind``, ``image_size`` and
    ``transforms``); margin: a fraction of B's grid cells (see the module; default ``None``: :data:`MARGIN` on
    the model's grid, :data:`FINE_MARGIN` on a finer one); threshold: the agreement radius in
    cells; iterations, seed: the RANSAC fit's (pair ``i`` of the evaluation uses ``seed + i``, as
    :class:`~macos_lite.robust_fit.RansacMethod`); image_size: the square input size, in pixels, of the check's
    features (default ``None``: the model's own, its correlation grid); 240 gives the 15 x 15 grid of the
    training-free fit at 240 px. Images are resized to it, so pass images at least that large (``macos-lite
    evaluate --verify-size S`` loads them so). Raises ``ValueError`` for a negative margin or threshold or an
    image size below 32.

    Example:
        >>> method = VerifiedMethod(method_from_checkpoint("RUN/best.pt"))   # doctest: +SKIP
        >>> theta = method.transforms(images_A, images_B)                    # doctest: +SKIP
        >>> method.num_replaced, method.num_pairs                            # doctest: +SKIP
    """

    def __init__(self, method, margin: float | None = None, threshold: float = THRESHOLD_CELLS,
                 iterations: int = ITERATIONS, seed: int = SEED, image_size: int | None = None):
        if image_size is not None and not int(image_size) >= MIN_CHECK_SIZE:
            raise ValueError(f"image_size must be at least {MIN_CHECK_SIZE} pixels (one stride-32 cell), "
                             f"got {image_size}")
        self.check_size = tuple(method.image_size) if image_size is None else (int(image_size),) * 2
        if margin is None:
            finer = self.check_size[0] * self.check_size[1] > method.image_size[0] * method.image_size[1]
            margin = FINE_MARGIN if finer else MARGIN
        if not margin >= 0 or not threshold > 0:
            raise ValueError(f"margin must be >= 0 and threshold > 0, got {margin} and {threshold}")
        self.method, self.margin, self.threshold = method, float(margin), float(threshold)
        self.iterations, self.seed = int(iterations), int(seed)
        self.name, self.kind = f"{method.name}+verify", method.kind
        self.num_pairs, self.num_replaced = 0, 0
        self._encode = RansacMethod.of_model(method.model).features  # the grid G correlates, in eval mode

    def __getattr__(self, name):  # image_size, model, checkpoint, refine, masks, cosegment_set: the wrapped one's
        if name == "method":
            raise AttributeError(name)
        return getattr(self.method, name)

    def _features(self, images: torch.Tensor) -> torch.Tensor:
        return self._encode(G.resize(images, self.check_size)).float().cpu()

    def check(self, theta: torch.Tensor, feat_A: torch.Tensor, feat_B: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """One pair: ``(theta to use, replaced)`` for the learned ``theta`` ``(D,)`` and the features ``(C, h, w)``."""
        size = self.check_size
        points_B, points_A, cell = matches = matched_points(feat_A, feat_B, size)
        fit = robust_fit(feat_A, feat_B, iterations=self.iterations, threshold=self.threshold,
                         seed=self.seed + self.num_pairs, image_size=size, matches=matches)
        self.num_pairs += 1
        if fit.fallback:
            return theta, False
        n_G = agreeing_matches(theta, self.kind, points_B, points_A, cell, self.threshold)
        need = math.ceil(self.margin * feat_B.shape[-2] * feat_B.shape[-1] - 1e-9)
        if fit.inliers <= n_G + need:
            return theta, False
        replaced = fit.theta.to(theta)
        if self.kind == "cascade":  # the learned TPS's lattice (2 n^2 values after the 6 affine ones)
            n = round(math.sqrt((theta.numel() - 6) / 2))
            replaced = torch.cat((replaced, G.identity_theta("tps", 1, n, dtype=theta.dtype)[0].to(theta.device)))
        self.num_replaced += 1
        return replaced, True

    @torch.no_grad()
    def transforms(self, images_A: torch.Tensor, images_B: torch.Tensor) -> torch.Tensor:
        """theta ``(b, D)`` mapping B's normalised points into A: the learned map or the fit, pair by pair."""
        theta = self.method.transforms(images_A, images_B)
        fa, fb = self._features(images_A), self._features(images_B)
        checked = [self.check(theta[i].detach().cpu().double(), fa[i], fb[i])[0] for i in range(theta.shape[0])]
        return torch.stack(checked).to(theta)

    @torch.no_grad()
    def transforms_and_masks(self, images_A, images_B):
        """``(theta, prob_A, prob_B)``: the checked maps and the wrapped method's masks."""
        return (self.transforms(images_A, images_B), *self.method.masks(images_A, images_B))
