"""Geometry: coordinates, affine and thin-plate-spline (TPS) transforms, warping, flows.

Conventions (shared by the whole package):

* Points are ``(x, y)``. *Normalised* coordinates lie in ``[-1, 1]`` and are corner-aligned,
  i.e. ``align_corners=True``: pixel 0 maps to -1 and pixel ``W - 1`` to +1. Pixel coordinates
  are 0-based (subtract 1 from MATLAB annotations before using them).
* Direction: ``theta_AB`` maps normalised points of the *target* B into the *source* A,
  ``p_A = T_AB(p_B)`` (backward warping). ``warp_image(A, theta_AB, kind)`` therefore resamples A
  into B's frame, aligning A onto B.
* Kinds: ``"affine"`` -- theta ``(B, 6)``, row-major 2x3, identity ``(1, 0, 0, 0, 1, 0)``;
  ``"tps"`` -- theta ``(B, 2 n^2)``, the absolute source positions ``(Q_X, Q_Y)`` of an ``n x n``
  control lattice in X-major order (identity: the lattice itself); ``"cascade"`` -- theta
  ``(B, 6 + 2 n^2)``, the concatenation ``[theta_aff, theta_tps]`` of the affine->TPS cascade,
  applied as ``p_A = T_aff(T_tps(p_B))``.

Taught in notebook 02 (affine and TPS geometry).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Size = tuple[int, int]  # (H, W)


def _check_points(points: torch.Tensor, name: str = "points") -> None:
    if not torch.is_tensor(points):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., 2), got {type(points).__name__}")
    if points.shape[-1] != 2:
        raise ValueError(f"{name} must have a last dimension of 2 (x, y), got shape {tuple(points.shape)}")
    if not points.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {points.dtype}")


_RANGE_TOLERANCE = 1e-2  # resampling may overshoot [0, 1] slightly; 0..255 or ImageNet-normalised values do not fit


def as_image_batch(images, name: str = "image", channels: int | None = 3, check_range: bool = True,
                   where: str = "this function") -> tuple[torch.Tensor, bool]:
    """Bring an image argument of the public API into the package's convention, or refuse it.

    Returns ``(x, single)``: ``x`` a float tensor ``(B, C, H, W)`` with values in [0, 1] and ``single``
    True when a single image (``(C, H, W)``, ``(H, W, C)`` or ``(H, W)``) was given. Converted, because
    unambiguous (as :func:`macos_lite.data.imageio.load_image` does for files): uint8 -> float / 255, bool ->
    float, a numpy array -> tensor, channels-last ``(B, H, W, C)`` / ``(H, W, C)`` -> channels-first, and, for
    ``channels=3``, grayscale (1 channel, or ``(H, W)``) repeated to RGB and a 4th (alpha) channel dropped.
    ``channels=None`` keeps any channel count (masks, feature maps) and only turns a last dimension of 3 into
    channels-first when the second dimension is not a plausible channel count.

    Raises ``ValueError`` naming ``name`` for: a non-tensor, other integer dtypes, a shape that is not an
    image, NaN/inf values, and (``check_range``) float values outside [0, 1] (e.g. 0..255 floats or
    ImageNet-normalised images).
    """
    hint = "expects float images in [0, 1], (3, H, W) or (B, 3, H, W)"
    if not torch.is_tensor(images):
        try:
            import numpy as np

            if isinstance(images, np.ndarray):
                images = torch.from_numpy(np.ascontiguousarray(images))
        except ImportError:  # pragma: no cover
            pass
    if not torch.is_tensor(images):
        raise ValueError(f"{name} must be a torch.Tensor image, got {type(images).__name__}; {where} {hint}")
    x = images
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    elif x.dtype == torch.bool:
        x = x.float()
    elif not x.is_floating_point():
        raise ValueError(f"{name} has dtype {x.dtype}; {where} {hint}: convert it, e.g. x.float() / 255 for "
                         "8-bit values or x.float() / 65535 for 16-bit ones")
    single = x.dim() in (2, 3)
    if x.dim() == 2:
        x = x[None]  # (H, W): one grayscale image
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or min(x.shape) == 0:
        raise ValueError(f"{name} has shape {tuple(images.shape)}, not an image; {where} {hint}")
    plausible = (1, 3, 4) if channels == 3 else (1, 2, 3, 4)
    if x.shape[1] not in plausible and x.shape[-1] in ((1, 3, 4) if channels == 3 else (3,)):
        x = x.permute(0, 3, 1, 2)  # channels-last (B, H, W, C), as numpy/PIL/matplotlib store images
    if channels == 3:
        c = x.shape[1]
        if c == 1:
            x = x.expand(-1, 3, -1, -1)
        elif c == 4:
            x = x[:, :3]  # alpha dropped, not composited (as load_image)
        elif c != 3:
            raise ValueError(f"{name} has shape {tuple(images.shape)} with {c} channels; {where} {hint} (RGB; "
                             "grayscale (1, H, W) and RGBA (4, H, W) are converted)")
    x = x.contiguous()
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite value(s) of {x.numel()}; {where} needs finite pixels: "
                         "fix the image, or replace them (torch.nan_to_num(x, nan=0.0))")
    if check_range and x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -_RANGE_TOLERANCE or hi > 1 + _RANGE_TOLERANCE:
            fix = ("divide by 255" if hi > 1 + _RANGE_TOLERANCE and lo >= -_RANGE_TOLERANCE and hi <= 255.5 else
                   "undo the normalisation (x * std + mean) or rescale to [0, 1]")
            raise ValueError(f"{name} has values in [{lo:.3g}, {hi:.3g}]; {where} {hint}: {fix}")
    return x, single


def _size(size) -> Size:
    h, w = (int(s) for s in size)
    if h < 2 or w < 2:
        raise ValueError(f"image size must be at least 2x2 to define normalised coordinates, got (H, W) = ({h}, {w})")
    return h, w


def pixel_to_normalized(points: torch.Tensor, size) -> torch.Tensor:
    """0-based pixel ``(x, y)`` -> corner-aligned normalised coordinates.

    points: ``(..., 2)``; size: ``(H, W)`` of the image the points live in, or a tensor ``(..., 2)``
    of sizes broadcastable against ``points[..., 0]`` (per-sample sizes). ``x_n = 2 x / (W - 1) - 1``.

    Example:
        >>> pixel_to_normalized(torch.tensor([[0.0, 0.0], [4.0, 2.0], [2.0, 1.0]]), (3, 5)).tolist()
        [[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]
    """
    _check_points(points)
    h, w = _hw(size, points)
    x = points[..., 0] * 2.0 / (w - 1) - 1.0
    y = points[..., 1] * 2.0 / (h - 1) - 1.0
    return torch.stack((x, y), dim=-1)


def normalized_to_pixel(points: torch.Tensor, size) -> torch.Tensor:
    """Inverse of :func:`pixel_to_normalized`: ``x = (x_n + 1) (W - 1) / 2``."""
    _check_points(points)
    h, w = _hw(size, points)
    x = (points[..., 0] + 1.0) * (w - 1) / 2.0
    y = (points[..., 1] + 1.0) * (h - 1) / 2.0
    return torch.stack((x, y), dim=-1)


def rescale_keypoints(points: torch.Tensor, from_size, to_size) -> torch.Tensor:
    """Pixel points of an image of ``from_size`` ``(H, W)`` -> the same points in that image resized to
    ``to_size`` (e.g. original annotations -> the S x S frame the network sees), as float64.

    Corner-aligned like the rest of the package: pixel 0 stays 0 and pixel ``W - 1`` becomes ``W' - 1``.
    ``from_size`` may be a tensor ``(2,)`` or per-sample sizes ``(..., 2)``.

    Example:
        >>> rescale_keypoints(torch.tensor([[0.0, 0.0], [99.0, 49.0]]), (50, 100), (11, 11)).tolist()
        [[0.0, 0.0], [10.0, 10.0]]
    """
    if torch.is_tensor(from_size) and from_size.dim() == 1:
        from_size = from_size.tolist()
    if torch.is_tensor(to_size) and to_size.dim() == 1:
        to_size = to_size.tolist()
    return normalized_to_pixel(pixel_to_normalized(points.double(), from_size), to_size)


def _hw(size, points: torch.Tensor):
    """(H, W) as python numbers, or as tensors broadcastable against ``points[..., 0]``."""
    if torch.is_tensor(size) and size.dim() > 1:
        if size.shape[-1] != 2:
            raise ValueError(f"per-sample sizes must have shape (..., 2) as (H, W), got {tuple(size.shape)}")
        size = size.to(points.dtype)
        if bool((size < 2).any()):
            small = size[(size < 2).any(-1)][0].tolist()
            raise ValueError(f"image size must be at least 2x2 to define normalised coordinates, got (H, W) = "
                             f"({small[0]:g}, {small[1]:g}) in the per-sample sizes")
        h, w = size[..., 0], size[..., 1]
        while h.dim() < points.dim() - 1:
            h, w = h.unsqueeze(-1), w.unsqueeze(-1)
        return h, w
    return _size(size)


def resize(image: torch.Tensor, size, mode: str = "bilinear") -> torch.Tensor:
    """Anisotropic resize of ``(B, C, H, W)`` (or ``(C, H, W)``) to ``size = (H', W')``.

    Corner-aligned (``align_corners=True``), so normalised coordinates are preserved exactly: a
    point at ``x_n`` in the input is at ``x_n`` in the output. Bilinear resizing antialiases when
    shrinking; ``mode="nearest"`` is for label maps.
    """
    squeeze = image.dim() == 3
    x = image.unsqueeze(0) if squeeze else image
    if x.dim() != 4:
        raise ValueError(f"image must be (C, H, W) or (B, C, H, W), got shape {tuple(image.shape)}")
    out_h, out_w = _size(size)
    if (x.shape[-2], x.shape[-1]) == (out_h, out_w):
        out = x
    elif mode == "nearest":
        # nearest with corner alignment: sample the closest pixel of the corner-aligned grid
        ys = torch.linspace(0, x.shape[-2] - 1, out_h, device=x.device).round().long()
        xs = torch.linspace(0, x.shape[-1] - 1, out_w, device=x.device).round().long()
        out = x[..., ys[:, None], xs[None, :]]
    else:
        shrink = out_h < x.shape[-2] or out_w < x.shape[-1]
        dtype = x.dtype
        xf = x if x.is_floating_point() else x.float()
        out = F.interpolate(xf, size=(out_h, out_w), mode=mode, align_corners=True, antialias=shrink)
        out = out.to(dtype) if dtype.is_floating_point else out
    return out.squeeze(0) if squeeze else out


# ----------------------------------------------------------------------------------------------
# Transform parameters
# ----------------------------------------------------------------------------------------------

KINDS = ("affine", "tps", "cascade")
AFFINE_DIM = 6


def tps_control_points(grid_size: int = 3, dtype=torch.float32, device=None) -> torch.Tensor:
    """The regular ``n x n`` TPS control lattice in ``[-1, 1]^2``, X-major order, shape ``(n^2, 2)``.

    X-major: for n = 3, ``P_X = (-1,-1,-1, 0,0,0, 1,1,1)`` and ``P_Y = (-1,0,1, -1,0,1, -1,0,1)``,
    the order of the published CNNGeo/WeakAlign regression weights.
    """
    if int(grid_size) < 2:
        raise ValueError(f"a TPS control lattice needs at least 2x2 points, got grid_size={grid_size}")
    axis = torch.linspace(-1.0, 1.0, int(grid_size), dtype=dtype, device=device)
    px, py = torch.meshgrid(axis, axis, indexing="ij")  # first index runs over X -> X-major
    return torch.stack((px.reshape(-1), py.reshape(-1)), dim=-1)


def tps_grid_size(num_params: int) -> int:
    """The lattice size n of a TPS theta with ``2 n^2`` numbers (error for anything else)."""
    n = int(round((num_params / 2) ** 0.5))
    if n < 2 or 2 * n * n != num_params:
        raise ValueError(
            f"a TPS theta holds 2*n*n numbers for an n x n control lattice (n >= 2: 8, 18, 32, ...), "
            f"got {num_params}; non-square lattices are not supported"
        )
    return n


def identity_theta(kind: str, batch_size: int = 1, grid_size: int = 3, dtype=torch.float32, device=None):
    """Parameters of the identity transform, shape ``(batch_size, D)``.

    affine: ``(1, 0, 0, 0, 1, 0)``; tps: the control lattice ``(P_X, P_Y)``; cascade: both concatenated.
    """
    _check_kind(kind)
    aff = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], dtype=dtype, device=device)
    tps = tps_control_points(grid_size, dtype, device).t().reshape(-1)  # (Q_X..., Q_Y...)
    theta = {"affine": aff, "tps": tps, "cascade": torch.cat((aff, tps))}[kind]
    return theta.unsqueeze(0).repeat(int(batch_size), 1)


def cascade_theta(theta_aff: torch.Tensor, theta_tps: torch.Tensor) -> torch.Tensor:
    """Concatenate ``(B, 6)`` and ``(B, 2 n^2)`` into the cascade theta of ``p_A = T_aff(T_tps(p_B))``."""
    _check_theta(theta_aff, "affine")
    _check_theta(theta_tps, "tps")
    return torch.cat((theta_aff, theta_tps), dim=1)


def split_cascade(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`cascade_theta`: ``(theta_aff (B, 6), theta_tps (B, 2 n^2))``."""
    _check_theta(theta, "cascade")
    return theta[:, :AFFINE_DIM], theta[:, AFFINE_DIM:]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown transform kind {kind!r}; expected one of {KINDS}")


def _check_theta(theta: torch.Tensor, kind: str) -> torch.Tensor:
    _check_kind(kind)
    if not torch.is_tensor(theta) or not theta.is_floating_point():
        raise TypeError(f"theta must be a floating-point tensor, got {getattr(theta, 'dtype', type(theta))}")
    if theta.dim() != 2:
        raise ValueError(f"theta must have shape (B, D), got {tuple(theta.shape)}")
    d = theta.shape[1]
    if kind == "affine" and d != AFFINE_DIM:
        raise ValueError(f"an affine theta has 6 numbers (row-major 2x3), got shape {tuple(theta.shape)}")
    if kind == "tps":
        tps_grid_size(d)
    if kind == "cascade":
        if d <= AFFINE_DIM:
            raise ValueError(f"a cascade theta is [affine (6), tps (2 n^2)], got shape {tuple(theta.shape)}")
        tps_grid_size(d - AFFINE_DIM)
    return theta


def affine_theta(scale: float = 1.0, rotation: float = 0.0, shear: float = 0.0, tx: float = 0.0,
                 ty: float = 0.0, aspect: float = 1.0, degrees: bool = True) -> torch.Tensor:
    """Affine theta ``(6,)`` (float64, row-major 2 x 3) from interpretable parameters.

    The map is ``p -> L p + (tx, ty)`` with ``L = R(rotation) Sh(shear) diag(scale, scale * aspect)``,
    ``R`` a rotation (in degrees, or radians with ``degrees=False``), ``Sh = [[1, shear], [0, 1]]``; in
    normalised coordinates, from the target into the source like every theta. Add ``[None]`` for a batch.

    Example:
        >>> affine_theta(rotation=90).round(decimals=6).tolist()
        [0.0, -1.0, 0.0, 1.0, 0.0, 0.0]
        >>> affine_theta(scale=0.5, tx=0.25).tolist()
        [0.5, 0.0, 0.25, 0.0, 0.5, 0.0]
    """
    a = math.radians(rotation) if degrees else float(rotation)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    shear_m = torch.tensor([[1.0, shear], [0.0, 1.0]], dtype=torch.float64)
    lin = rot @ shear_m @ torch.diag(torch.tensor([scale, scale * aspect], dtype=torch.float64))
    return torch.tensor([lin[0, 0], lin[0, 1], tx, lin[1, 0], lin[1, 1], ty], dtype=torch.float64)


def affine_matrix(theta: torch.Tensor) -> torch.Tensor:
    """Affine theta ``(B, 6)`` -> homogeneous matrices ``(B, 3, 3)``."""
    _check_theta(theta, "affine")
    last = theta.new_tensor([0.0, 0.0, 1.0]).expand(theta.shape[0], 1, 3)
    return torch.cat((theta.view(-1, 2, 3), last), dim=1)


def invert_affine(theta: torch.Tensor) -> torch.Tensor:
    """The affine theta of the inverse map, ``(B, 6)``: if ``theta`` maps B -> A, the result maps A -> B.

    Example:
        >>> invert_affine(torch.tensor([[2.0, 0.0, 1.0, 0.0, 2.0, 0.0]])).tolist()  # p -> 2p + (1, 0)
        [[0.5, 0.0, -0.5, 0.0, 0.5, 0.0]]
    """
    return torch.linalg.inv(affine_matrix(theta))[:, :2, :].reshape(-1, 6)


def compose_affine(theta_outer: torch.Tensor, theta_inner: torch.Tensor) -> torch.Tensor:
    """``theta`` of ``p -> T_outer(T_inner(p))`` for two affine maps, ``(B, 6)``.

    Example:
        >>> shift = torch.tensor([[1.0, 0.0, 0.5, 0.0, 1.0, 0.0]])
        >>> compose_affine(shift, shift).tolist()  # two shifts by 0.5: one by 1
        [[1.0, 0.0, 1.0, 0.0, 1.0, 0.0]]
    """
    return (affine_matrix(theta_outer) @ affine_matrix(theta_inner))[:, :2, :].reshape(-1, 6)


# ----------------------------------------------------------------------------------------------
# Point maps
# ----------------------------------------------------------------------------------------------


def _tps_radial(d2: torch.Tensor) -> torch.Tensor:
    """TPS kernel ``U(r^2) = r^2 log(r^2)`` with ``U(0) = 0`` (finite gradient at 0)."""
    return d2 * torch.log(d2.clamp_min(torch.finfo(d2.dtype).tiny))


_TPS_SYSTEM_CACHE: dict = {}


def tps_system_inverse(grid_size: int = 3, lam: float = 0.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """Inverse of the TPS system matrix ``L = [[K + lam I, P], [P^T, 0]]``, shape ``(n^2 + 3, n^2 + 3)``.

    ``K_ij = U(|P_i - P_j|^2)`` and ``P = [1, x_i, y_i]`` for the control lattice. The lattice is fixed,
    so the inverse is computed once (in float64) per (n, lam, dtype, device) and cached.
    """
    key = (int(grid_size), float(lam), dtype, str(device))
    if key not in _TPS_SYSTEM_CACHE:
        ctrl = tps_control_points(grid_size, torch.float64)
        k = ctrl.shape[0]
        d2 = ((ctrl[:, None, :] - ctrl[None, :, :]) ** 2).sum(-1)
        p = torch.cat((torch.ones(k, 1, dtype=torch.float64), ctrl), dim=1)
        top = torch.cat((_tps_radial(d2) + float(lam) * torch.eye(k, dtype=torch.float64), p), dim=1)
        bottom = torch.cat((p.t(), torch.zeros(3, 3, dtype=torch.float64)), dim=1)
        system = torch.cat((top, bottom), dim=0)
        _TPS_SYSTEM_CACHE[key] = torch.linalg.inv(system).to(dtype=dtype, device=device)
    return _TPS_SYSTEM_CACHE[key]


def tps_coefficients(theta: torch.Tensor, lam: float = 0.0) -> torch.Tensor:
    """Solve for the TPS weights ``[w_1..w_K, a0, a1, a2]`` per output coordinate, ``(B, K + 3, 2)``.

    The right-hand side of the system is ``[Q; 0]`` with ``Q`` the target positions of the control
    points, so only the first K columns of ``L^{-1}`` are needed.
    """
    _check_theta(theta, "tps")
    n = tps_grid_size(theta.shape[1])
    k = n * n
    q = theta.view(-1, 2, k).transpose(1, 2)  # (B, K, 2): (Q_X, Q_Y) per control point
    l_inv = tps_system_inverse(n, lam, theta.dtype, theta.device)
    return l_inv[:, :k] @ q


def _tps_points(points: torch.Tensor, theta: torch.Tensor, lam: float) -> torch.Tensor:
    n = tps_grid_size(theta.shape[1])
    coef = tps_coefficients(theta, lam)  # (B, K+3, 2)
    ctrl = tps_control_points(n, points.dtype, points.device)  # (K, 2)
    d2 = ((points.unsqueeze(2) - ctrl) ** 2).sum(-1)  # (B, N, K)
    basis = torch.cat((_tps_radial(d2), torch.ones_like(points[..., :1]), points), dim=-1)  # (B, N, K+3)
    return basis @ coef


def _affine_points(points: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    m = theta.view(-1, 2, 3)
    return points @ m[:, :, :2].transpose(1, 2) + m[:, :, 2].unsqueeze(1)


def transform_points(points: torch.Tensor, theta: torch.Tensor, kind: str, lam: float = 0.0) -> torch.Tensor:
    """Map normalised target-frame points into the source frame: ``p_A = T(p_B)``.

    points: ``(B, N, 2)`` (or ``(N, 2)``, shared by every sample); theta: ``(B, D)`` for ``kind`` in
    ``{"affine", "tps", "cascade"}``; lam: TPS regulariser (0 interpolates the control points exactly).
    Returns ``(B, N, 2)``. Differentiable in ``points`` and ``theta``.

    Example:
        >>> theta = affine_theta(rotation=90)[None]         # B's x axis lands on A's y axis
        >>> x_axis = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> transform_points(x_axis, theta, "affine").round().tolist()
        [[[0.0, 1.0]]]
        >>> identity = identity_theta("tps", dtype=torch.float64)  # the 3 x 3 lattice itself: no motion
        >>> point = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
        >>> transform_points(point, identity, "tps").round(decimals=6).tolist()
        [[[0.3, -0.2]]]
    """
    _check_theta(theta, kind)
    _check_points(points)
    if points.dim() == 2:
        points = points.unsqueeze(0).expand(theta.shape[0], -1, -1)
    if points.dim() != 3:
        raise ValueError(f"points must have shape (B, N, 2) or (N, 2), got {tuple(points.shape)}")
    if points.shape[0] != theta.shape[0]:
        raise ValueError(f"points hold {points.shape[0]} samples but theta holds {theta.shape[0]}")
    if points.dtype != theta.dtype:
        raise TypeError(f"points ({points.dtype}) and theta ({theta.dtype}) must share a dtype")
    if kind == "affine":
        return _affine_points(points, theta)
    if kind == "tps":
        return _tps_points(points, theta, lam)
    theta_aff, theta_tps = split_cascade(theta)
    return _affine_points(_tps_points(points, theta_tps, lam), theta_aff)


def normalized_grid(size, dtype=torch.float32, device=None) -> torch.Tensor:
    """Corner-aligned normalised coordinates of every pixel of an ``(H, W)`` image, ``(H, W, 2)``."""
    h, w = _size(size)
    ys = torch.linspace(-1.0, 1.0, h, dtype=dtype, device=device)
    xs = torch.linspace(-1.0, 1.0, w, dtype=dtype, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((gx, gy), dim=-1)


def sampling_grid(theta: torch.Tensor, kind: str, size, lam: float = 0.0) -> torch.Tensor:
    """For every pixel of the target frame (size ``(H, W)``), its source position: ``(B, H, W, 2)``.

    For ``kind="affine"`` this equals ``F.affine_grid(theta.view(B, 2, 3), (B, C, H, W), align_corners=True)``.
    """
    _check_theta(theta, kind)
    h, w = _size(size)
    grid = normalized_grid((h, w), theta.dtype, theta.device).reshape(1, h * w, 2)
    return transform_points(grid.expand(theta.shape[0], -1, -1), theta, kind, lam).view(-1, h, w, 2)


def warp_image(image: torch.Tensor, theta: torch.Tensor, kind: str, out_size=None, lam: float = 0.0,
               mode: str = "bilinear", padding_mode: str = "zeros", check: bool = True) -> torch.Tensor:
    """Resample the source image into the target frame: ``out(p_B) = image(T(p_B))``.

    image: ``(B, C, H, W)`` (images or masks); theta ``(B, D)``; out_size ``(H', W')`` (default the
    input size). Bilinear, zero padding, ``align_corners=True``. With ``theta_AB`` this aligns A onto B.
    Returns ``(B, C, H', W')`` float.

    Example:
        >>> image = torch.arange(9.0).view(1, 1, 3, 3)
        >>> half_turn = affine_theta(scale=-1.0)[None].float()
        >>> warp_image(image, half_turn, "affine")[0, 0].tolist()
        [[8.0, 7.0, 6.0], [5.0, 4.0, 3.0], [2.0, 1.0, 0.0]]

    ``check`` (default): uint8 images are converted to float / 255 and channels-last ``(B, H, W, 3)`` ones to
    channels-first (see :func:`as_image_batch`); NaN/inf pixels or theta raise ``ValueError`` naming the
    argument. ``check=False`` skips this (the model's own calls on the GPU, where a check costs a sync).
    """
    if check:
        if not torch.is_tensor(image) or image.dim() != 4:
            if torch.is_tensor(image) and image.dim() == 3:
                raise ValueError(f"image must be a (B, C, H, W) tensor, got {tuple(image.shape)}: add the batch "
                                 "dimension with image[None]")
            if not torch.is_tensor(image) or image.dim() != 3:
                raise ValueError(f"image must be a (B, C, H, W) tensor, got {tuple(getattr(image, 'shape', ()))}")
        dtype = image.dtype
        image, _ = as_image_batch(image, "image", channels=None, check_range=False, where="warp_image")
        if dtype == torch.float64:
            image = image.double()
    elif not torch.is_tensor(image) or image.dim() != 4:
        raise ValueError(f"image must be a (B, C, H, W) tensor, got {tuple(getattr(image, 'shape', ()))}")
    if image.shape[0] != theta.shape[0]:
        raise ValueError(f"image holds {image.shape[0]} samples but theta holds {theta.shape[0]}")
    if check and not bool(torch.isfinite(theta).all()):
        raise ValueError(f"theta holds NaN or infinite values ({tuple(theta.shape)}); warp_image needs a finite "
                         "transform")
    size = image.shape[-2:] if out_size is None else out_size
    grid = sampling_grid(theta.to(image.dtype) if image.is_floating_point() else theta, kind, size, lam)
    return F.grid_sample(image, grid.to(image.dtype), mode=mode, padding_mode=padding_mode, align_corners=True)


def inside_mask(points: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """True where normalised points lie inside the image ``[-1, 1]^2``; ``(..., 2) -> (...)``."""
    return (points.abs() <= 1.0 + eps).all(dim=-1)


# ----------------------------------------------------------------------------------------------
# Inverse maps, flows and keypoint transfer
# ----------------------------------------------------------------------------------------------


def _tps_jacobian(points: torch.Tensor, theta: torch.Tensor, lam: float) -> torch.Tensor:
    """d T_tps / d p at ``points (B, N, 2)`` -> ``(B, N, 2, 2)`` (rows: output x/y, columns: d/dx, d/dy)."""
    n = tps_grid_size(theta.shape[1])
    coef = tps_coefficients(theta, lam)
    ctrl = tps_control_points(n, points.dtype, points.device)
    diff = points.unsqueeze(2) - ctrl  # (B, N, K, 2)
    d2 = (diff**2).sum(-1)
    # dU/dp = (log r^2 + 1) * 2 (p - P_i); zero at the control point itself
    du = torch.where(d2 > 0, torch.log(d2.clamp_min(torch.finfo(d2.dtype).tiny)) + 1.0, torch.zeros_like(d2))
    grad_basis = 2.0 * du.unsqueeze(-1) * diff  # (B, N, K, 2)
    k = n * n
    jac = torch.einsum("bnkj,bki->bnij", grad_basis, coef[:, :k, :])
    return jac + coef[:, k + 1 : k + 3, :].transpose(1, 2).unsqueeze(1)  # + [[a1x, a2x], [a1y, a2y]]


def jacobian(points: torch.Tensor, theta: torch.Tensor, kind: str, lam: float = 0.0) -> torch.Tensor:
    """Jacobian of ``transform_points`` with respect to the points, ``(B, N, 2, 2)``."""
    _check_theta(theta, kind)
    if kind == "affine":
        return theta.view(-1, 1, 2, 3)[..., :2].expand(-1, points.shape[1], -1, -1)
    if kind == "tps":
        return _tps_jacobian(points, theta, lam)
    theta_aff, theta_tps = split_cascade(theta)
    return theta_aff.view(-1, 1, 2, 3)[..., :2] @ _tps_jacobian(points, theta_tps, lam)


def inverse_transform_points(points: torch.Tensor, theta: torch.Tensor, kind: str, lam: float = 0.0,
                             iterations: int = 20, init_resolution: int = 64) -> torch.Tensor:
    """Map normalised *source*-frame points back into the target frame: find ``q`` with ``T(q) = p``.

    points: ``(B, N, 2)`` in A's frame; returns ``(B, N, 2)`` in B's frame. Exact for affine maps;
    for TPS and cascades: nearest point of a dense ``init_resolution^2`` grid of T, then Newton steps
    with the analytic Jacobian. Points outside the range of T get the closest preimage found.
    """
    _check_theta(theta, kind)
    _check_points(points)
    if points.dim() == 2:
        points = points.unsqueeze(0).expand(theta.shape[0], -1, -1)
    if kind == "affine":
        return transform_points(points, invert_affine(theta), "affine")
    with torch.no_grad():
        grid = normalized_grid((init_resolution, init_resolution), points.dtype, points.device).view(1, -1, 2)
        grid = grid.expand(theta.shape[0], -1, -1)
        mapped = transform_points(grid, theta, kind, lam)
        nearest = torch.cdist(points, mapped).argmin(dim=2)  # (B, N)
        q = torch.gather(grid, 1, nearest.unsqueeze(-1).expand(-1, -1, 2)).clone()
        for _ in range(iterations):
            residual = transform_points(q, theta, kind, lam) - points
            step = torch.linalg.solve(jacobian(q, theta, kind, lam), residual.unsqueeze(-1)).squeeze(-1)
            q = q - step.clamp(-0.5, 0.5)  # damped: far from the solution Newton may overshoot
            if residual.abs().max() < 1e-7:
                break
    return q


def degenerate_transforms(theta: torch.Tensor, kind: str, resolution: int = 16, eps: float = 1e-6) -> list:
    """Why each transform of a batch cannot be trusted, or None: ``"non-finite"`` (NaN/inf in theta),
    ``"singular"`` (the map squeezes some region to (almost) nothing: ``|det J| < eps`` in normalised units)
    or ``"folded"`` (det J changes sign over the image: the map folds the image over itself).

    theta ``(B, D)``; J is evaluated on a ``resolution x resolution`` grid of the target frame. A map whose
    det J is negative everywhere (a mirror image) is not degenerate. Returns a list of B entries.
    """
    _check_theta(theta, kind)
    theta = theta.detach().double().cpu()
    finite = torch.isfinite(theta).all(dim=1)
    safe = torch.where(finite.unsqueeze(1), theta, identity_theta(kind, theta.shape[0], _grid_size(theta, kind),
                                                                  dtype=torch.float64))
    grid = normalized_grid((resolution, resolution), torch.float64).view(1, -1, 2).expand(theta.shape[0], -1, -1)
    det = torch.linalg.det(jacobian(grid, safe, kind))  # (B, N)
    out = []
    for i in range(theta.shape[0]):
        d = det[i]
        if not bool(finite[i]) or not bool(torch.isfinite(d).all()):
            out.append("non-finite")
        elif float(d.abs().min()) < eps:
            out.append("singular")
        elif bool((d > 0).any()) and bool((d < 0).any()):
            out.append("folded")
        else:
            out.append(None)
    return out


def _grid_size(theta: torch.Tensor, kind: str) -> int:
    if kind == "affine":
        return 3
    return tps_grid_size(theta.shape[1] - (AFFINE_DIM if kind == "cascade" else 0))


def flow_field(theta: torch.Tensor, kind: str, target_size, source_size, lam: float = 0.0,
               outside_value: float | None = 1e10) -> torch.Tensor:
    """Dense pixel flow from the target B to the source A, defined on B: ``(B, H_B, W_B, 2)``.

    ``flow[y, x] = (x_A - x, y_A - y)`` in pixels, where ``(x_A, y_A)`` is where ``T`` sends the pixel
    ``(x, y)`` of B, un-normalised with A's size (TSS convention: the flow is defined on the image it
    starts from). Pixels mapped outside A get ``outside_value`` (unless None).
    """
    grid = sampling_grid(theta, kind, target_size, lam)  # normalised A positions of B's pixels
    src = normalized_to_pixel(grid, source_size)
    h, w = _size(target_size)
    tgt = normalized_to_pixel(normalized_grid((h, w), theta.dtype, theta.device), (h, w))
    flow = src - tgt
    if outside_value is not None:
        flow = torch.where(inside_mask(grid).unsqueeze(-1), flow, torch.full_like(flow, outside_value))
    return flow


def transfer_keypoints(keypoints: torch.Tensor, theta: torch.Tensor, kind: str, size_A, size_B,
                       direction: str = "B_to_A", lam: float = 0.0) -> torch.Tensor:
    """Transfer pixel keypoints between the images of a pair with ``theta_AB`` (which maps B -> A).

    keypoints: ``(B, N, 2)`` 0-based pixels; size_A/size_B: original ``(H, W)`` (or per-sample
    ``(B, 2)`` tensors). ``direction="B_to_A"`` maps target keypoints into the source with T (the
    protocol of PF-PASCAL/PF-WILLOW in the CNNGeo family); ``"A_to_B"`` maps source keypoints into
    the target with the inverse of T (the SPair-71k / dhpf family). Returns ``(B, N, 2)`` pixels.
    """
    if direction == "B_to_A":
        return normalized_to_pixel(transform_points(pixel_to_normalized(keypoints, size_B), theta, kind, lam), size_A)
    if direction == "A_to_B":
        pts = pixel_to_normalized(keypoints, size_A)
        return normalized_to_pixel(inverse_transform_points(pts, theta, kind, lam), size_B)
    raise ValueError(f"direction must be 'B_to_A' or 'A_to_B', got {direction!r}")


def cell_centers(grid_size, image_size) -> torch.Tensor:
    """Normalised image coordinates of the centres of an ``(h, w)`` feature grid's cells, ``(h, w, 2)``.

    A stride-s feature cell i covers pixels ``[s i, s (i + 1))`` of the image it was computed from,
    so its centre is the pixel ``s (i + 1/2) - 1/2`` (at 240 px with 15 cells: +-0.937, not +-1).
    """
    h, w = (int(s) for s in grid_size)
    img_h, img_w = _size(image_size)
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) * img_h / h - 0.5
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) * img_w / w - 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return pixel_to_normalized(torch.stack((gx, gy), dim=-1), (img_h, img_w)).float()


def normalized_to_cell(points: torch.Tensor, grid_size, image_size) -> torch.Tensor:
    """Normalised image points -> continuous feature-cell coordinates (cell i's centre is at i)."""
    h, w = (int(s) for s in grid_size)
    img_h, img_w = _size(image_size)
    px = normalized_to_pixel(points, (img_h, img_w))
    return torch.stack(((px[..., 0] + 0.5) * w / img_w - 0.5, (px[..., 1] + 0.5) * h / img_h - 0.5), dim=-1)
