"""A training-free matcher: mutual nearest neighbours of frozen features, a RANSAC affine fit, a TPS refinement.

This is the hand-crafted baseline a *learned* transformation predictor G must beat on the same features:

1. **Mutual nearest neighbours** on the correlation grid: cell ``i`` of B and cell ``k`` of A match when ``k``
   is the most similar A cell to ``i`` (cosine of the L2-normalised descriptors) *and* ``i`` the most similar B
   cell to ``k`` (the "mutual NN" filter of classical descriptor matching). Matches whose cosine is not
   above ``min_similarity`` are dropped (an all-zero, featureless map yields none).
2. **RANSAC** (Fischler & Bolles, 1981) of an affine map ``p_A = T(p_B)``: ``iterations`` random minimal
   samples of 3 matches (a seeded generator: the same pair always gives the same fit), each giving the exact
   affine map through them; the one with the most inliers (residual below ``threshold`` grid cells) wins and
   is refitted by least squares on its inliers (twice: inliers re-counted after the first refit).
3. Optionally (``tps=True``) a **TPS** on the n x n lattice of :mod:`macos_lite.geometry` fitted to the affine
   inliers: the lattice's positions ``Q`` minimise ``sum_i |T_aff(T_tps(p_B,i)) - p_A,i|^2 + lam |Q - P|^2``
   (ridge towards the identity lattice P; the TPS map is linear in ``Q``), giving a cascade theta.

Too few mutual matches (fewer than ``min_matches``) or too few inliers (fewer than ``min_inliers``): the
identity transform, flagged as a fallback (:class:`RansacMethod` counts and warns about them).

All points are in the corner-aligned normalised coordinates of :mod:`macos_lite.geometry`; theta maps B's
points into A like every theta of the package.

Taught in notebook 09, as the baseline a learned G must beat.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from . import geometry as G
from .backbones import build_encoder, l2_normalize

ITERATIONS = 500  # RANSAC hypotheses per pair
THRESHOLD_CELLS = 1.0  # inlier residual, in cells of the correlation grid
MIN_MATCHES = 6  # fewer mutual matches than this: the identity
MIN_INLIERS = 4  # a best hypothesis with fewer inliers: the identity
TPS_RIDGE = 1.0  # lam of the TPS refinement (in units of one squared residual per lattice point)
SEED = 0


def mutual_nearest_neighbours(feat_A: torch.Tensor, feat_B: torch.Tensor, min_similarity: float = 0.0):
    """Mutual nearest neighbours of two L2-normalised feature grids of one pair.

    feat_A ``(C, h_A, w_A)``, feat_B ``(C, h_B, w_B)``. Returns ``(index_A, index_B, similarity)``, each ``(M,)``:
    row-major cell indices (``row * w + col``) and the cosine of each match; only matches with cosine above
    ``min_similarity``. Ties are broken towards the lowest index (``torch.argmax``), so a constant map has at
    most one match.

    Example:
        >>> f = torch.eye(4).view(4, 2, 2)            # four distinct unit descriptors
        >>> a, b, s = mutual_nearest_neighbours(f, f)
        >>> a.tolist(), b.tolist()
        ([0, 1, 2, 3], [0, 1, 2, 3])
    """
    if feat_A.dim() != 3 or feat_B.dim() != 3 or feat_A.shape[0] != feat_B.shape[0]:
        raise ValueError(f"features must be (C, h, w) with the same C, got {tuple(feat_A.shape)} and "
                         f"{tuple(feat_B.shape)}")
    a = feat_A.reshape(feat_A.shape[0], -1).float()
    b = feat_B.reshape(feat_B.shape[0], -1).float()
    sim = a.t() @ b  # (n_A, n_B)
    best_A = sim.argmax(0)  # for every B cell, its most similar A cell
    best_B = sim.argmax(1)  # for every A cell, its most similar B cell
    index_B = torch.arange(b.shape[1], device=sim.device)
    mutual = best_B[best_A] == index_B
    s = sim[best_A, index_B]
    keep = mutual & (s > min_similarity)
    return best_A[keep], index_B[keep], s[keep]


def fit_affine(points_B: torch.Tensor, points_A: torch.Tensor) -> torch.Tensor:
    """Least-squares affine theta ``(6,)`` with ``points_A ≈ T(points_B)``: ``[x y 1] @ M = [x' y']``.

    points ``(N, 2)``, N >= 3 and not collinear (else the solution is the minimum-norm one of
    ``torch.linalg.lstsq``'s "gelsd" driver, which may be degenerate). Float64 inside.
    """
    if points_B.shape != points_A.shape or points_B.dim() != 2 or points_B.shape[1] != 2:
        raise ValueError(f"points must both be (N, 2), got {tuple(points_B.shape)} and {tuple(points_A.shape)}")
    if points_B.shape[0] < 3:
        raise ValueError(f"an affine fit needs at least 3 correspondences, got {points_B.shape[0]}")
    X = torch.cat((points_B.double(), torch.ones(points_B.shape[0], 1, dtype=torch.float64,
                                                 device=points_B.device)), 1)
    sol = torch.linalg.lstsq(X.cpu(), points_A.double().cpu(), driver="gelsd").solution  # (3, 2)
    return sol.t().reshape(6).to(points_B.device)


def _minimal_affines(points_B: torch.Tensor, points_A: torch.Tensor, samples: torch.Tensor):
    """The exact affine maps through each triple of ``samples`` ``(I, 3)``: ``(theta (I, 6), ok (I,))``
    (``ok`` False for collinear triples)."""
    pb, pa = points_B[samples], points_A[samples]  # (I, 3, 2)
    X = torch.cat((pb, torch.ones_like(pb[..., :1])), -1)  # (I, 3, 3)
    det = torch.linalg.det(X)
    ok = det.abs() > 1e-6
    X = torch.where(ok[:, None, None], X, torch.eye(3, dtype=X.dtype, device=X.device))
    sol = torch.linalg.solve(X, pa)  # (I, 3, 2)
    return sol.transpose(1, 2).reshape(-1, 6), ok


def _residual_cells(theta: torch.Tensor, points_B: torch.Tensor, points_A: torch.Tensor, cell: torch.Tensor):
    """Distances ``(I, N)`` between ``T(points_B)`` and ``points_A`` in grid cells (``cell``: the normalised
    size of a cell along x and y, ``(2,)``)."""
    mapped = G.transform_points(points_B.expand(theta.shape[0], -1, -1), theta, "affine")
    return ((mapped - points_A) / cell).norm(dim=-1)


def ransac_affine(points_B: torch.Tensor, points_A: torch.Tensor, cell_size, iterations: int = ITERATIONS,
                  threshold: float = THRESHOLD_CELLS, generator: torch.Generator | None = None):
    """RANSAC affine fit of correspondences ``points_B[i] -> points_A[i]`` (normalised, ``(N, 2)``, N >= 3).

    cell_size: the normalised size ``(x, y)`` of one grid cell (residuals are measured in cells);
    threshold: the inlier residual in cells; generator: the random source (seeded by the caller).
    Returns ``(theta (6,) float64, inliers (N,) bool)``: the least-squares refit on the inliers of the best
    hypothesis (most inliers; the first of equals), inliers re-counted and refitted once more.
    """
    pb, pa = points_B.double(), points_A.double()
    n = pb.shape[0]
    if n < 3:
        raise ValueError(f"RANSAC of an affine map needs at least 3 correspondences, got {n}")
    cell = torch.as_tensor(cell_size, dtype=torch.float64)
    # three distinct indices per hypothesis: the first 3 of a random permutation (argsort of uniform noise)
    noise = torch.rand(int(iterations), n, generator=generator, dtype=torch.float64)
    samples = noise.argsort(dim=1)[:, :3]
    thetas, ok = _minimal_affines(pb, pa, samples)
    counts = (_residual_cells(thetas, pb, pa, cell) < threshold).sum(1)
    counts = torch.where(ok, counts, torch.full_like(counts, -1))
    best = int(counts.argmax())
    theta = thetas[best]
    inliers = _residual_cells(theta[None], pb, pa, cell)[0] < threshold
    for _ in range(2):
        if int(inliers.sum()) < 3:
            break
        theta = fit_affine(pb[inliers], pa[inliers])
        inliers = _residual_cells(theta[None], pb, pa, cell)[0] < threshold
    return theta, inliers


def fit_tps(points_B: torch.Tensor, points_A: torch.Tensor, theta_aff: torch.Tensor, grid_size: int = 3,
            ridge: float = TPS_RIDGE) -> torch.Tensor:
    """TPS theta ``(2 n^2,)`` refining ``theta_aff`` so that ``T_aff(T_tps(points_B)) ≈ points_A``.

    Minimises ``|M Q - T_aff^{-1}(points_A)|^2 + ridge |Q - P|^2`` over the lattice positions ``Q`` (``M``: the
    TPS basis at points_B times the first columns of the inverse TPS system, so the map is ``M Q``; ``P``: the
    identity lattice). Closed form: ``Q = (M^T M + ridge I)^{-1} (M^T y + ridge P)``. float64.
    """
    pb = points_B.double().cpu()
    target = G.transform_points(points_A.double().cpu()[None], G.invert_affine(theta_aff.double().cpu()[None]),
                                "affine")[0]
    n = int(grid_size)
    ctrl = G.tps_control_points(n, torch.float64)  # (K, 2)
    k = ctrl.shape[0]
    d2 = ((pb[:, None, :] - ctrl[None]) ** 2).sum(-1)
    basis = torch.cat((G._tps_radial(d2), torch.ones(pb.shape[0], 1, dtype=torch.float64), pb), 1)  # (N, K+3)
    M = basis @ G.tps_system_inverse(n, 0.0, torch.float64)[:, :k]  # (N, K)
    lhs = M.t() @ M + float(ridge) * torch.eye(k, dtype=torch.float64)
    Q = torch.linalg.solve(lhs, M.t() @ target + float(ridge) * ctrl)  # (K, 2)
    return Q.t().reshape(-1).to(points_B.device)


def matched_points(feat_A: torch.Tensor, feat_B: torch.Tensor, image_size=None):
    """The mutual nearest neighbours of two feature grids ``(C, h, w)`` as normalised points.

    Returns ``(points_B (M, 2), points_A (M, 2), cell (2,))`` in float64: the centres of the matched cells
    (:func:`macos_lite.geometry.cell_centers` at ``image_size`` ``(H, W)``, default 16 pixels a cell) and the
    normalised size ``(x, y)`` of one cell of A, the unit residuals are measured in.
    """
    h_A, w_A = feat_A.shape[-2:]
    h_B, w_B = feat_B.shape[-2:]
    size_A = tuple(image_size) if image_size is not None else (16 * h_A, 16 * w_A)
    size_B = tuple(image_size) if image_size is not None else (16 * h_B, 16 * w_B)
    index_A, index_B, _ = mutual_nearest_neighbours(feat_A, feat_B)
    pa = G.cell_centers((h_A, w_A), size_A).reshape(-1, 2).double()[index_A.cpu()]
    pb = G.cell_centers((h_B, w_B), size_B).reshape(-1, 2).double()[index_B.cpu()]
    cell = torch.tensor([2.0 * size_A[1] / (w_A * (size_A[1] - 1)), 2.0 * size_A[0] / (h_A * (size_A[0] - 1))],
                        dtype=torch.float64)
    return pb, pa, cell


def agreeing_matches(theta: torch.Tensor, kind: str, points_B: torch.Tensor, points_A: torch.Tensor,
                     cell: torch.Tensor, threshold: float = THRESHOLD_CELLS) -> int:
    """How many correspondences ``points_B[i] -> points_A[i]`` the map ``theta`` (B -> A, of ``kind`` affine,
    tps or cascade) sends within ``threshold`` cells of their match: the inlier count of any map, learned or
    fitted."""
    if points_B.shape[0] == 0:
        return 0
    mapped = G.transform_points(points_B.double(), theta.double().reshape(1, -1), kind)[0]
    return int((((mapped - points_A.double()) / cell).norm(dim=-1) < threshold).sum())


@dataclass
class RobustFit:
    """One pair's fit: ``theta`` (affine ``(6,)`` or cascade), the numbers of mutual ``matches`` and ``inliers``,
    and ``fallback`` (True when the identity was returned for lack of matches or inliers)."""

    theta: torch.Tensor
    matches: int
    inliers: int
    fallback: bool


def robust_fit(feat_A: torch.Tensor, feat_B: torch.Tensor, tps: bool = False, iterations: int = ITERATIONS,
               threshold: float = THRESHOLD_CELLS, min_matches: int = MIN_MATCHES, min_inliers: int = MIN_INLIERS,
               tps_grid_size: int = 3, seed: int = SEED, image_size=None, matches=None) -> RobustFit:
    """Fit theta (B -> A) of one pair from its L2-normalised feature grids ``(C, h, w)`` (see the module).

    image_size: the ``(H, W)`` the features were computed at (cell centres follow
    :func:`macos_lite.geometry.cell_centers`; default: 16 pixels a cell); matches: their
    :func:`matched_points`, when the caller has them already. Returns a :class:`RobustFit`; theta is
    affine, or a cascade (affine then TPS on a ``tps_grid_size`` lattice) when ``tps=True``.

    Example (a grid matched to itself shifted by one column: the fit is a shift by one 16-px cell, 2 * 16 / 79):
        >>> f = l2_normalize(torch.randn(16, 6, 6, generator=torch.Generator().manual_seed(0)))
        >>> fit = robust_fit(f[:, :, 1:], f[:, :, :-1], image_size=(96, 80))
        >>> [round(v, 3) + 0.0 for v in fit.theta.tolist()], fit.fallback
        ([1.0, 0.0, -0.405, 0.0, 1.0, 0.0], False)
    """
    kind = "cascade" if tps else "affine"
    identity = G.identity_theta(kind, 1, tps_grid_size, dtype=torch.float64)[0]
    pb, pa, cell = matched_points(feat_A, feat_B, image_size) if matches is None else matches
    m = int(pa.shape[0])
    if m < max(3, int(min_matches)):
        return RobustFit(identity, m, 0, True)
    gen = torch.Generator().manual_seed(int(seed))
    theta, inliers = ransac_affine(pb, pa, cell, iterations, threshold, gen)
    count = int(inliers.sum())
    if count < max(3, int(min_inliers)) or not torch.isfinite(theta).all():
        return RobustFit(identity, m, count, True)
    if tps:
        theta = torch.cat((theta, fit_tps(pb[inliers], pa[inliers], theta, tps_grid_size)))
    return RobustFit(theta, m, count, False)


def _encoder_features(encoder, stages=(16,)):
    from .hyperpixel import hyperpixel, stage_maps

    def features(images: torch.Tensor) -> torch.Tensor:
        maps = stage_maps(encoder, images, stages)
        return hyperpixel(maps, encoder(images)[3].shape[-2:]) if len(maps) > 1 else l2_normalize(maps[0])

    return features


class RansacMethod:
    """The robust-fit reference as an evaluation method (see :mod:`macos_lite.evaluation.methods`).

    features: a function ``images (b, 3, S, S) -> L2-normalised grids (b, C, h, w)`` (default: the frozen
    ImageNet ``backbone`` encoder's correlation features, or those of a model, see :meth:`of_model`);
    feature_stages: the encoder stages (strides, :mod:`macos_lite.hyperpixel`) of the default features, e.g.
    ``(16, 32)``; image_size: the square size images are resized to before encoding; tps: refine by a TPS (``kind`` becomes
    ``"cascade"``). ``num_fallback`` counts the pairs that got the identity (too few mutual matches/inliers);
    each is warned about once per call of :meth:`transforms` (``warnings.warn``) and listed in ``fallbacks``.

    Example:
        >>> method = RansacMethod(image_size=128)               # doctest: +SKIP
        >>> theta = method.transforms(images_A, images_B)       # doctest: +SKIP
    """

    name = "ransac"

    def __init__(self, features=None, image_size: int = 240, tps: bool = False, backbone: str = "lite",
                 device="cpu", iterations: int = ITERATIONS, threshold: float = THRESHOLD_CELLS,
                 min_matches: int = MIN_MATCHES, seed: int = SEED, feature_stages=(16,)):
        self.feature_stages = None  # None: features given by the caller
        if features is None:
            from .hyperpixel import check_stages

            stages = check_stages(feature_stages)
            encoder = build_encoder(backbone, pretrained=True, mode="frozen", deep=32 in stages).eval().to(device)
            features = _encoder_features(encoder, stages)
            self.feature_stages, self.backbone = stages, backbone
        self.features, self.tps, self.device = features, bool(tps), device
        self.size = (int(image_size), int(image_size))
        self.kind = "cascade" if tps else "affine"
        if tps:
            self.name = "ransac+tps"
        self.iterations, self.threshold, self.min_matches, self.seed = int(iterations), float(threshold), \
            int(min_matches), int(seed)
        self.num_fallback, self.num_pairs, self.fallbacks = 0, 0, []

    @classmethod
    def of_model(cls, model, tps: bool = False, **options) -> "RansacMethod":
        """The reference on a MaCoSNet's own correlation features (``model.encode``) at its input size."""

        def features(images: torch.Tensor) -> torch.Tensor:
            was_training = model.training
            model.eval()
            try:
                return model.encode(images)[0]
            finally:
                model.train(was_training)

        return cls(features, image_size=model.image_size[0], tps=tps, **options)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.size

    @torch.no_grad()
    def transforms(self, images_A: torch.Tensor, images_B: torch.Tensor) -> torch.Tensor:
        """theta ``(b, 6)`` (or cascade) mapping B's normalised points into A, one robust fit per pair."""
        from .evaluation.methods import _checked_pair

        images_A, images_B = _checked_pair(images_A, images_B, "RansacMethod.transforms")
        fa = self.features(G.resize(images_A, self.size).to(self.device)).float().cpu()
        fb = self.features(G.resize(images_B, self.size).to(self.device)).float().cpu()
        thetas, fell = [], []
        for i in range(fa.shape[0]):
            fit = robust_fit(fa[i], fb[i], tps=self.tps, iterations=self.iterations, threshold=self.threshold,
                             min_matches=self.min_matches, seed=self.seed + self.num_pairs, image_size=self.size)
            self.num_pairs += 1
            thetas.append(fit.theta)
            if fit.fallback:
                fell.append(f"pair {self.num_pairs - 1} ({fit.matches} mutual matches, {fit.inliers} inliers)")
        if fell:
            self.num_fallback += len(fell)
            self.fallbacks.extend(fell)
            warnings.warn(f"ransac: {len(fell)} pair(s) of this batch had too few mutual matches or inliers and "
                          f"got the identity transform: {', '.join(fell[:3])}", stacklevel=2)
        return torch.stack(thetas).float().to(images_A.device)

    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """No segmentation: every pixel foreground (as :class:`~macos_lite.evaluation.IdentityMethod`)."""
        return torch.ones_like(images_A[:, :1]), torch.ones_like(images_B[:, :1])
