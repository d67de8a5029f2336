"""Evaluation metrics: keypoint PCK, TSS flow PCK, co-segmentation precision P and Jaccard J.

PCK (percentage of correct keypoints): a transferred keypoint is correct when its distance to the
ground truth is at most ``alpha * L``. The normaliser L depends on the protocol (docs/differences.md D18):

| normalizer | L                                                                  | used by                  |
|------------|--------------------------------------------------------------------|--------------------------|
| `"scnet"`  | both point sets rescaled to a 224 x 224 frame, L = 224            | PF-PASCAL (SCNet/WeakAlign), PF-WILLOW (MaCoSNet code) |
| `"image"`  | max(H, W) of the image the comparison happens in                  | image-size variants      |
| `"kp_bbox"`| max side of the box around the valid ground-truth keypoints       | PF-WILLOW (PF/CNNGeo)    |
| `"bbox"`   | max side of the object bounding box                               | SPair-71k                |

Everything refers to the image the comparison happens in (the frame of ``gt``). PCK is reported
per pair (mean over pairs of each pair's fraction; the published convention) or pooled over all
keypoints.

Taught in notebook 09 (evaluation); notebook 01 computes PCK by hand.
"""

from __future__ import annotations

import math

import torch

NORMALIZERS = ("scnet", "image", "kp_bbox", "bbox")
SCNET_FRAME = 224
FLOW_UNKNOWN = 1e9  # ground-truth flow values above this mark pixels without ground truth (TSS)


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.is_tensor(x):
        x = torch.as_tensor(x, dtype=torch.float64)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[-1] != 2:
        raise ValueError(f"{name} must have shape (B, N, 2) or (N, 2), got {tuple(x.shape)}")
    return x.double()


def _per_sample(x, b: int, name: str, width: int) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=torch.float64)
    if t.dim() == 1:
        t = t.unsqueeze(0).expand(b, -1)
    if t.shape != (b, width):
        raise ValueError(f"{name} must have shape ({b}, {width}) or ({width},), got {tuple(t.shape)}")
    return t


def pck_normalizer(normalizer: str, gt: torch.Tensor, valid: torch.Tensor, size=None, bbox=None) -> torch.Tensor:
    """L per pair ``(B,)`` for ``normalizer`` in NORMALIZERS (``"scnet"`` gives 224, see :func:`pck_per_pair`)."""
    b = gt.shape[0]
    if normalizer == "scnet":
        return torch.full((b,), float(SCNET_FRAME), dtype=torch.float64)
    if normalizer == "image":
        if size is None:
            raise ValueError("normalizer='image' needs size=(H, W) of the image the comparison happens in")
        return _per_sample(size, b, "size", 2).max(dim=1).values
    if normalizer == "kp_bbox":
        big = torch.tensor(float("inf"), dtype=torch.float64)
        lo = torch.where(valid.unsqueeze(-1), gt, big).amin(dim=1)
        hi = torch.where(valid.unsqueeze(-1), gt, -big).amax(dim=1)
        return (hi - lo).max(dim=1).values  # -inf for pairs without valid keypoints, excluded later
    if normalizer == "bbox":
        if bbox is None:
            raise ValueError("normalizer='bbox' needs bbox=(x1, y1, x2, y2) of the object in the comparison image")
        box = _per_sample(bbox, b, "bbox", 4)
        return torch.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    raise ValueError(f"unknown PCK normalizer {normalizer!r}; expected one of {NORMALIZERS}")


def pck_per_pair(pred: torch.Tensor, gt: torch.Tensor, alpha: float = 0.1, normalizer: str = "image",
                 valid: torch.Tensor | None = None, size=None, bbox=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Correct and counted keypoints per pair: ``(correct (B,), counted (B,))`` as float64.

    pred, gt: ``(B, N, 2)`` pixel coordinates in the comparison image; valid ``(B, N)`` bool (padding
    and invisible keypoints False: they are skipped); size ``(H, W)`` or ``(B, 2)`` of that image
    (needed by ``"scnet"`` and ``"image"``); bbox ``(4,)`` or ``(B, 4)`` for ``"bbox"``. ``alpha`` must be
    above 0 (else ``ValueError``: no distance is below 0 times the normaliser).
    """
    if not (isinstance(alpha, (int, float)) or torch.is_tensor(alpha)) or not math.isfinite(float(alpha)) \
            or float(alpha) <= 0:
        raise ValueError(f"alpha must be a number above 0 (a fraction of the normaliser, e.g. 0.1), got {alpha!r}")
    pred, gt = _as_batch(pred, "pred"), _as_batch(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must have the same shape")
    b, n = gt.shape[:2]
    valid = torch.ones(b, n, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool().reshape(b, n)
    valid = valid & torch.isfinite(gt).all(-1)
    diff = pred - gt
    if normalizer == "scnet":  # distances measured after an anisotropic resize to 224 x 224
        if size is None:
            raise ValueError("normalizer='scnet' needs size=(H, W) of the image the comparison happens in")
        hw = _per_sample(size, b, "size", 2)
        diff = diff * (SCNET_FRAME / hw.flip(-1)).unsqueeze(1)  # (x * 224 / W, y * 224 / H)
    dist = diff.norm(dim=-1)
    threshold = alpha * pck_normalizer(normalizer, gt, valid, size, bbox)
    correct = (dist <= threshold.unsqueeze(1)) & valid  # a NaN prediction is never correct
    counted = valid & (threshold > 0).unsqueeze(1)
    return correct.double().sum(1), counted.double().sum(1)


def aggregate_pck(correct: torch.Tensor, counted: torch.Tensor, aggregate: str = "per_pair") -> float:
    """Mean over pairs of each pair's fraction (``"per_pair"``), or pooled over keypoints (``"pooled"``).

    Pairs without a counted keypoint are left out; NaN when nothing is left.
    """
    keep = counted > 0
    if not bool(keep.any()):
        return math.nan
    if aggregate == "per_pair":
        return float((correct[keep] / counted[keep]).mean())
    if aggregate == "pooled":
        return float(correct[keep].sum() / counted[keep].sum())
    raise ValueError(f"aggregate must be 'per_pair' or 'pooled', got {aggregate!r}")


def pck(pred, gt, alpha: float = 0.1, normalizer: str = "image", valid=None, size=None, bbox=None,
        aggregate: str = "per_pair") -> float:
    """PCK@alpha of a batch of pairs (see :func:`pck_per_pair` for the arguments).

    Example:
        >>> gt = torch.tensor([[[10.0, 10.0], [50.0, 50.0]]])          # 1 pair, 2 keypoints (pixels)
        >>> pred = gt + torch.tensor([[[3.0, 4.0], [30.0, 0.0]]])      # errors of 5 px and 30 px
        >>> pck(pred, gt, alpha=0.1, normalizer="image", size=torch.tensor([[100, 100]]))  # L = 100
        0.5
    """
    return aggregate_pck(*pck_per_pair(pred, gt, alpha, normalizer, valid, size, bbox), aggregate=aggregate)


# ----------------------------------------------------------------------------------------------
# Dense flow (TSS)
# ----------------------------------------------------------------------------------------------


def flow_pck(pred_flow: torch.Tensor, gt_flow: torch.Tensor, into_size, alpha: float = 0.05) -> float:
    """Flow accuracy of the TSS evaluation kit for one directed pair.

    pred_flow, gt_flow: ``(H, W, 2)`` pixel displacements defined on the same image; into_size: (H', W')
    of the image the flow points into. Valid pixels are those with ground truth (``|gt| < 1e9``); a pixel
    is wrong when its end-point error exceeds ``alpha * max(H', W')``. Returns
    ``1 - #wrong / #valid`` (NaN without valid pixels).

    Example:
        >>> gt = torch.zeros(2, 2, 2)
        >>> pred = gt.clone(); pred[0, 0] = torch.tensor([9.0, 0.0])  # one pixel 9 px off
        >>> flow_pck(pred, gt, into_size=(100, 100), alpha=0.05)      # wrong beyond 5 px: 1 of 4
        0.75
    """
    pred_flow, gt_flow = torch.as_tensor(pred_flow).double(), torch.as_tensor(gt_flow).double()
    if pred_flow.shape != gt_flow.shape or pred_flow.dim() != 3 or pred_flow.shape[-1] != 2:
        raise ValueError(f"flows must both be (H, W, 2), got {tuple(pred_flow.shape)} and {tuple(gt_flow.shape)}")
    valid = (gt_flow.abs() < FLOW_UNKNOWN).all(-1)
    n = int(valid.sum())
    if n == 0:
        return math.nan
    err = (pred_flow - gt_flow).norm(dim=-1)
    err = torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))
    wrong = (err > alpha * max(int(s) for s in into_size)) & valid
    return 1.0 - float(wrong.sum()) / n


# ----------------------------------------------------------------------------------------------
# Co-segmentation
# ----------------------------------------------------------------------------------------------

EMPTY_GT_POLICIES = ("skip", "score")


def _binary(mask, name: str) -> torch.Tensor:
    """``mask`` as bool: a bool or integer mask (nonzero = foreground, so 0/255 masks work) as it is, a float
    mask only when every value is 0 or 1. A float mask holding other values (a probability map) raises
    ``ValueError`` naming ``name``: ``.bool()`` would count every value above 0 as foreground."""
    mask = torch.as_tensor(mask)
    if mask.is_floating_point() and not bool(((mask == 0) | (mask == 1)).all()):
        values = mask[~((mask == 0) | (mask == 1))]
        raise ValueError(f"{name} holds values other than 0 and 1 (e.g. {float(values.flatten()[0]):.4g}): it looks "
                         "like a probability map. Threshold it first, as the protocol does: "
                         f"binarize_prediction({name}, size) or {name} > 0.5")
    return mask.bool()


def _masks(pred, gt) -> tuple[torch.Tensor, torch.Tensor]:
    pred, gt = _binary(pred, "pred"), _binary(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} must be the same size; "
                         "resize the prediction to the ground truth first (binarize_prediction)")
    return pred, gt


def precision(pred, gt) -> float:
    """Co-segmentation "precision" P of the benchmarks: pixel accuracy ``#(pred == gt) / #pixels``.

    ``pred``, ``gt``: binary masks of one size -- bool, integer (nonzero = foreground) or float holding only 0
    and 1. A float mask with other values (``predict()``'s probabilities) raises ``ValueError``: threshold it
    with :func:`binarize_prediction` (0.5, the benchmarks' protocol) first.

    Example:
        >>> precision(torch.tensor([[1, 1], [0, 0]]), torch.tensor([[1, 0], [0, 0]]))
        0.75
    """
    pred, gt = _masks(pred, gt)
    return float((pred == gt).double().mean())


def jaccard(pred, gt, empty_gt: str = "skip") -> float:
    """Foreground Jaccard index J = |pred & gt| / |pred | gt|.

    ``pred``, ``gt``: binary masks as for :func:`precision` (a probability map raises ``ValueError``:
    threshold it with :func:`binarize_prediction` first).

    empty_gt: what to do when the ground truth has no foreground ("noise" images of the Internet set):
    ``"skip"`` returns NaN so that the image is left out of the mean (the common protocol);
    ``"score"`` gives 1 when the prediction is empty too and 0 otherwise.

    Example:
        >>> jaccard(torch.tensor([[1, 1], [0, 0]]), torch.tensor([[1, 0], [0, 0]]))  # 1 shared of 2 marked
        0.5
        >>> jaccard(torch.zeros(2, 2), torch.zeros(2, 2))  # no foreground: left out of the mean
        nan
    """
    if empty_gt not in EMPTY_GT_POLICIES:
        raise ValueError(f"empty_gt must be one of {EMPTY_GT_POLICIES}, got {empty_gt!r}")
    pred, gt = _masks(pred, gt)
    if not bool(gt.any()):
        if empty_gt == "skip":
            return math.nan
        return 1.0 if not bool(pred.any()) else 0.0
    return float((pred & gt).sum()) / float((pred | gt).sum())


def binarize_prediction(prob: torch.Tensor, size, threshold: float = 0.5) -> torch.Tensor:
    """Resize a probability map ``(1, h, w)`` or ``(h, w)`` bilinearly to the ground truth's ``(H, W)``
    and threshold it: ``(H, W)`` bool (the benchmarks' protocol)."""
    from .geometry import resize

    p = prob if prob.dim() == 3 else prob.unsqueeze(0)
    return resize(p.float(), size)[0] > threshold


def nanmean(values) -> float:
    """Mean of the finite values (NaN when there are none)."""
    t = torch.as_tensor(list(values), dtype=torch.float64)
    t = t[torch.isfinite(t)]
    return float(t.mean()) if t.numel() else math.nan
