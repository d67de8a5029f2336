"""Evaluation protocols of the paper's benchmarks (SPEC 3) and the ``macos-lite evaluate`` command.

What gets evaluated is a *method*: an object with a ``name``, a transform ``kind`` (``"affine"`` or
``"cascade"``, see :mod:`macos_lite.geometry`) and two functions of a batch of image pairs, images
``(b, 3, S, S)`` in [0, 1]:

* ``transforms(images_A, images_B)`` -> ``theta (b, D)`` mapping B's normalised points into A;
* ``masks(images_A, images_B)`` -> ``(prob_A, prob_B)``, foreground probabilities ``(b, 1, h, w)``.

:class:`IdentityMethod` is the trivial reference point (no motion, every pixel foreground);
:class:`ModelMethod` wraps a MaCoSNet; :func:`method_from_checkpoint` loads one from a checkpoint.

The protocols
-------------
* Keypoint PCK (:func:`evaluate_matching`; PF-PASCAL, PF-WILLOW, SPair-71k, synthetic). Keypoints are
  transferred with the predicted map at the *original* resolution of the images: ``"B_to_A"`` sends
  the target's keypoints into the source (CNNGeo/WeakAlign/MaCoSNet), ``"A_to_B"`` sends the source's
  keypoints into the target with the inverse map (SPair-71k as in dhpf). The normaliser always refers
  to the image the comparison happens in (A for B_to_A, B for A_to_B), see :mod:`macos_lite.metrics`.
  PCK = mean over pairs of each pair's fraction of correct keypoints; per class the same over the
  class's pairs. (dhpf scores SPair-71k after resizing both images to 240 x 240, box included; for
  non-square images the anisotropic resize weighs x and y errors differently, so its numbers can differ
  slightly from ours.)
* TSS flow PCK (:func:`evaluate_tss`). For a pair with the flip flag, A is mirrored before the method
  sees it, as in the reference; the flow is computed on B's grid at B's original size and its source
  x-coordinates are mapped back into the unmirrored A (the ground truth relates unmirrored images, see
  :mod:`macos_lite.data.tss`). Score: the kit's accuracy at 0.05 x max side of A; mean over directed
  pairs per subset, and the unweighted mean of the subset means ("avg", as the slides); the same
  without the flipped pairs.
* Co-segmentation P and J (:func:`evaluate_cosegmentation`, and inside :func:`evaluate_tss`).
  Predicted probabilities are resized bilinearly to the ground truth's size and thresholded at 0.5;
  P = pixel accuracy, J = foreground IoU; mean over images per class (TSS: per subset), then over
  classes. Images without foreground (the Internet set's "noise" images) count in P and are skipped
  in J by default (``empty_gt="skip"``).

:func:`evaluate_dataset` runs the protocol of a benchmark by name and returns its JSON summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import OrderedDict, defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from . import geometry as G
from . import metrics as M
from . import paper, report
from .checkpoints import model_from_checkpoint
from .data.imageio import DataError, write_flo
from .data.registry import NAMES, collate, get_images, get_pairs
from .device import cap_threads, resolve_device

DIRECTIONS = ("B_to_A", "A_to_B")
KINDS = ("cascade", "affine")
DEFAULT_IMAGE_SIZE = 240

# ----------------------------------------------------------------------------------------------
# Methods
# ----------------------------------------------------------------------------------------------


class IdentityMethod:
    """The reference point: ``theta = identity`` (no motion) and an all-foreground mask.

    The mask is a trivial baseline, "everything is the object": P and J both equal the foreground's
    share of each image (J over the images that have foreground).
    """

    name = "identity"
    kind = "affine"

    def transforms(self, images_A: torch.Tensor, images_B: torch.Tensor) -> torch.Tensor:
        images_A, images_B = _checked_pair(images_A, images_B, "IdentityMethod.transforms")
        return G.identity_theta("affine", images_A.shape[0], dtype=torch.float32, device=images_A.device)

    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images_A, images_B = _checked_pair(images_A, images_B, "IdentityMethod.masks")
        return torch.ones_like(images_A[:, :1]), torch.ones_like(images_B[:, :1])


def _checked_pair(images_A, images_B, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both image batches as float ``(b, 3, H, W)`` in [0, 1] (see :func:`macos_lite.geometry.as_image_batch`:
    uint8 and channels-last are converted; NaN and values outside [0, 1] raise ``ValueError`` naming the
    argument)."""
    a, _ = G.as_image_batch(images_A, "images_A", where=where)
    b, _ = G.as_image_batch(images_B, "images_B", where=where)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{where}: images_A holds {a.shape[0]} images but images_B {b.shape[0]}")
    return a, b


class ModelMethod:
    """A MaCoSNet in eval mode. ``kind``: ``"cascade"`` (affine -> TPS, the default) or ``"affine"``
    (stage 1 only). Images of any size are resized to the model's input size."""

    def __init__(self, model, kind: str = "cascade", name: str = "macosnet", checkpoint: str | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.model, self.kind, self.name, self.checkpoint = model, kind, name, checkpoint

    @property
    def image_size(self) -> tuple[int, int]:
        return self.model.image_size

    def _forward(self, images_A, images_B, pairs, tps: bool, masks: bool):
        images_A, images_B = _checked_pair(images_A, images_B, f"{type(self).__name__} ({self.name})")
        was_training = self.model.training  # evaluating mid-training must not leave the model in eval mode
        self.model.eval()
        try:
            x = torch.stack((G.resize(images_A, self.image_size), G.resize(images_B, self.image_size)), 1)
            return self.model(x, tps=tps, masks=masks, pairs=pairs)
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def transforms(self, images_A: torch.Tensor, images_B: torch.Tensor) -> torch.Tensor:
        out = self._forward(images_A, images_B, [(0, 1)], tps=self.kind == "cascade", masks=False)
        return out.theta(0, 1, self.kind).float()

    @torch.no_grad()
    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._forward(images_A, images_B, [(0, 1), (1, 0)], tps=False, masks=True)
        return torch.sigmoid(out.mask_logits_of(0).float()), torch.sigmoid(out.mask_logits_of(1).float())

    @torch.no_grad()
    def transforms_and_masks(self, images_A, images_B):
        """Both at once (one encoder pass fewer than calling the two): ``(theta, prob_A, prob_B)``."""
        out = self._forward(images_A, images_B, [(0, 1), (1, 0)], tps=self.kind == "cascade", masks=True)
        return (out.theta(0, 1, self.kind).float(), torch.sigmoid(out.mask_logits_of(0).float()),
                torch.sigmoid(out.mask_logits_of(1).float()))


def method_from_checkpoint(path, device="cpu", kind: str = "cascade") -> ModelMethod:
    """A :class:`ModelMethod` of the MaCoSNet saved in ``path`` (a ``macos-lite train`` checkpoint)."""
    model = model_from_checkpoint(path, device=resolve_device(device))
    return ModelMethod(model, kind=kind, name=Path(path).stem, checkpoint=str(path))


def _transforms_and_masks(method, images_A, images_B):
    if hasattr(method, "transforms_and_masks"):
        return method.transforms_and_masks(images_A, images_B)
    return (method.transforms(images_A, images_B), *method.masks(images_A, images_B))


def describe_method(method, image_size) -> dict:
    """``{"name", "kind", "image_size", "checkpoint"}`` of a method (for the JSON summary)."""
    size = getattr(method, "image_size", None) or _square(image_size)
    return {"name": method.name, "kind": method.kind, "image_size": [int(s) for s in size],
            "checkpoint": getattr(method, "checkpoint", None)}


# ----------------------------------------------------------------------------------------------
# Shared helpers: loaders, progress, errors that name the pair
# ----------------------------------------------------------------------------------------------


class EvaluationError(RuntimeError):
    """A method or a metric failed during an evaluation; the message names the pair or image."""


def _square(image_size) -> tuple[int, int]:
    return (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(image_size)


def _first(dataset, max_items: int | None):
    """The first ``max_items`` items of ``dataset`` (all when None)."""
    if max_items is None or max_items >= len(dataset):
        return dataset
    if max_items < 1:
        raise ValueError(f"max_pairs must be at least 1, got {max_items}")
    return Subset(dataset, range(max_items))


def _batches(dataset, batch_size: int, num_workers: int, progress: bool, desc: str):
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate)
    return tqdm(loader, desc=desc, unit="batch") if progress else loader


def _pair_names(batch: dict, i: int | None = None) -> str:
    names = [f"{a} -> {b}" for a, b in zip(batch.get("name_A", []), batch.get("name_B", []), strict=True)]
    index = batch.get("index")
    if i is not None:
        where = f"pair {int(index[i])} " if index is not None else ""
        return f"{where}({names[i] if names else '?'})"
    if not names:
        return "a batch"
    return f"the batch of pairs {names[0]} ... {names[-1]}" if len(names) > 1 else f"pair {names[0]}"


@contextmanager
def _naming(what: str):
    """Re-raise any failure inside the block as an :class:`EvaluationError` that says ``what`` failed."""
    try:
        yield
    except EvaluationError:
        raise
    except Exception as exc:
        raise EvaluationError(f"evaluation failed on {what}: {type(exc).__name__}: {exc}") from exc


def _item(batch: dict, i: int) -> dict:
    """The i-th item of a collated batch (tensors indexed, lists picked)."""
    return {k: v[i] for k, v in batch.items()}


def _key(alpha: float) -> str:
    return f"{alpha:g}"


# ----------------------------------------------------------------------------------------------
# Keypoint PCK
# ----------------------------------------------------------------------------------------------


@dataclass
class MatchingResult:
    """Per-pair PCK records and their summaries (see :meth:`summary`)."""

    alphas: tuple[float, ...]
    normalizers: tuple[str, ...]
    direction: str
    records: list[dict] = field(default_factory=list)  # one per pair: category, {(norm, alpha): (correct, counted)}

    def pck(self, normalizer: str | None = None, alpha: float | None = None, category: str | None = None,
            aggregate: str = "per_pair") -> float:
        """PCK of one normaliser and alpha (default: the first ones), over all pairs or one category."""
        norm = normalizer or self.normalizers[0]
        a = self.alphas[0] if alpha is None else float(alpha)
        recs = [r for r in self.records if category is None or r["category"] == category]
        if not recs:
            return math.nan
        correct = torch.tensor([r["scores"][(norm, a)][0] for r in recs], dtype=torch.float64)
        counted = torch.tensor([r["scores"][(norm, a)][1] for r in recs], dtype=torch.float64)
        return M.aggregate_pck(correct, counted, aggregate)

    @property
    def categories(self) -> list[str]:
        """Categories in the dataset's order (by category index)."""
        order = {}
        for r in self.records:
            order.setdefault(r["category"], r["category_index"])
        return sorted(order, key=order.get)

    def summary(self) -> dict:
        """``{"num_pairs", "direction", "alphas", "normalizer", "pck": {alpha: v}, "per_class": {class: {alpha: v}},
        "mean_over_classes": {alpha: v}, "pck_by_normalizer": {n: {alpha: v}}, "per_class_by_normalizer":
        {n: {class: {alpha: v}}}, "num_pairs_per_class", "num_degenerate", "warnings"}``; the first normaliser
        is the primary one. ``num_degenerate``: pairs whose predicted transform was non-finite, singular or
        folded (see :func:`_match_batch`); ``warnings``: one sentence per kind of problem."""
        by_norm = {n: {_key(a): self.pck(n, a) for a in self.alphas} for n in self.normalizers}
        per_class = {n: {c: {_key(a): self.pck(n, a, c) for a in self.alphas} for c in self.categories}
                     for n in self.normalizers}
        main = self.normalizers[0]
        class_mean = {_key(a): M.nanmean(v[_key(a)] for v in per_class[main].values()) for a in self.alphas}
        counts = defaultdict(int)
        for r in self.records:
            counts[r["category"]] += 1
        return {"num_pairs": len(self.records), "direction": self.direction, "alphas": list(self.alphas),
                "normalizer": main, "pck": by_norm[main], "per_class": per_class[main],
                "mean_over_classes": class_mean, "pck_by_normalizer": by_norm,
                "per_class_by_normalizer": per_class, "num_pairs_per_class": dict(counts),
                "num_degenerate": sum(bool(r.get("degenerate")) for r in self.records),
                "warnings": _degenerate_warnings(self.records, self.direction)}


def evaluate_matching(method, dataset, alphas=(0.1,), normalizers=("scnet",), direction: str = "B_to_A",
                      batch_size: int = 8, device="cpu", num_workers: int = 0, progress: bool = False) -> MatchingResult:
    """Keypoint PCK of ``method`` on a pair dataset (items with image_A/B, size_A/B, kps_A/B, kps_valid,
    bbox_A/B, category, category_name, name_A/B; see :mod:`macos_lite.data.registry`).

    direction ``"B_to_A"``: kps_B -> A with theta, judged in A (normalisers use A's size/box/keypoints);
    ``"A_to_B"``: kps_A -> B with the inverse map, judged in B. Everything at the original resolution.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    for n in normalizers:
        if n not in M.NORMALIZERS:
            raise ValueError(f"unknown PCK normalizer {n!r}; expected one of {M.NORMALIZERS}")
    result = MatchingResult(tuple(float(a) for a in alphas), tuple(normalizers), direction)
    for batch in _batches(dataset, batch_size, num_workers, progress, f"PCK {method.name}"):
        with _naming(_pair_names(batch)):
            _match_batch(method, batch, result, device)
    return result


def _degenerate_warnings(records: list[dict], direction: str) -> list[str]:
    counts = defaultdict(list)
    for r in records:
        if r.get("degenerate"):
            counts[r["degenerate"]].append(r.get("pair", "?"))
    out = []
    for why, pairs in sorted(counts.items()):
        scored = ("scored as the protocol scores them (the forward map is defined)"
                  if why == "folded" and direction == "B_to_A" else "scored as wrong (no keypoint correct)")
        out.append(f"{len(pairs)} of {len(records)} pair(s) got a {why} transform from the method, {scored}: "
                   + ", ".join(pairs[:5]) + (" ..." if len(pairs) > 5 else ""))
    return out


def _match_batch(method, batch: dict, result: MatchingResult, device) -> None:
    """Score one batch. A degenerate predicted transform (:func:`macos_lite.geometry.degenerate_transforms`)
    never crashes the evaluation nor puts NaN in a mean: a non-finite or singular one is scored as wrong
    (0 correct keypoints of the counted ones), a folded one too when its inverse is needed (A_to_B); each is
    recorded and counted in the summary's ``num_degenerate`` and ``warnings``."""
    theta = method.transforms(batch["image_A"].to(device), batch["image_B"].to(device)).double().cpu()
    degenerate = G.degenerate_transforms(theta, method.kind)
    wrong = torch.tensor([d in ("non-finite", "singular") or (d == "folded" and result.direction == "A_to_B")
                          for d in degenerate])
    if wrong.any():  # compute with the identity in their place, then score them as wrong
        theta = torch.where(wrong.unsqueeze(1), _identity_like(theta, method.kind), theta)
    size_A, size_B = batch["size_A"].double(), batch["size_B"].double()
    kps_A, kps_B = batch["kps_A"].double(), batch["kps_B"].double()
    if result.direction == "B_to_A":
        pred = G.transfer_keypoints(kps_B, theta, method.kind, size_A, size_B, "B_to_A")
        gt, size, bbox = kps_A, size_A, batch["bbox_A"]
    else:
        pred = G.transfer_keypoints(kps_A, theta, method.kind, size_A, size_B, "A_to_B")
        gt, size, bbox = kps_B, size_B, batch["bbox_B"]
    valid = batch["kps_valid"].bool()
    scores = {(n, a): M.pck_per_pair(pred, gt, a, n, valid, size, bbox.double())
              for n in result.normalizers for a in result.alphas}
    names = [f"{a} -> {b}" for a, b in zip(batch.get("name_A", []), batch.get("name_B", []))]
    for i in range(theta.shape[0]):
        record = {
            "category": batch["category_name"][i],
            "category_index": int(batch["category"][i]),
            "scores": {key: (0.0 if wrong[i] else float(c[i]), float(n[i])) for key, (c, n) in scores.items()},
        }
        if degenerate[i]:
            record.update(degenerate=degenerate[i], pair=names[i] if i < len(names) else f"pair {i}")
        result.records.append(record)


def _identity_like(theta: torch.Tensor, kind: str) -> torch.Tensor:
    return G.identity_theta(kind, theta.shape[0], G._grid_size(theta, kind), dtype=theta.dtype)


# ----------------------------------------------------------------------------------------------
# TSS: dense flow
# ----------------------------------------------------------------------------------------------


def tss_flow(theta: torch.Tensor, kind: str, size_A, size_B, mirrored: bool = False) -> torch.Tensor:
    """The flow of one directed TSS item from the method's transform, ``(H_B, W_B, 2)`` float32.

    theta ``(1, D)`` maps B's points into the image the method saw as A; size_A/size_B: original
    ``(H, W)``. Defined on B's grid at B's original size: ``flow[y, x] = (x_A - x, y_A - y)`` in pixels.
    ``mirrored``: the method saw A mirrored horizontally, so its x-coordinates are those of the mirror
    image and are mapped back, ``x_A = (W_A - 1) - x_mirrored``. Pixels sent outside A get 1e10 (as the
    reference's flow writer; the kit counts them as wrong).
    """
    (h_a, w_a), (h_b, w_b) = (tuple(int(s) for s in size_A), tuple(int(s) for s in size_B))
    flow = G.flow_field(theta.double(), kind, (h_b, w_b), (h_a, w_a))[0]
    if mirrored:
        x_b = torch.arange(w_b, dtype=flow.dtype, device=flow.device).view(1, w_b)
        inside = flow[..., 0] < M.FLOW_UNKNOWN
        x_mirrored = flow[..., 0] + x_b
        flow[..., 0] = torch.where(inside, (w_a - 1 - x_mirrored) - x_b, flow[..., 0])
    return flow.float()


class FlowScores:
    """Flow PCK of directed TSS items, summarised as the TSS evaluation kit and the slides do."""

    def __init__(self, alpha: float = 0.05):
        self.alpha = float(alpha)
        self.records: list[dict] = []

    def add(self, item: dict, flow: torch.Tensor) -> float:
        """Score ``flow (H_B, W_B, 2)`` for one item (keys flow_gt, size_A, subset, flip, name_A/B)."""
        value = M.flow_pck(flow.cpu(), item["flow_gt"], into_size=item["size_A"], alpha=self.alpha)
        self.records.append({"subset": item["subset"], "flip": int(item["flip"]), "pck": value,
                             "pair": f"{item['name_A']} -> {item['name_B']}"})
        return value

    def note_degenerate(self, reason: str | None) -> None:
        """Count a degenerate predicted transform of the last item added (its flow is scored as it is:
        NaN or out-of-image flow vectors count as wrong pixels)."""
        if reason and self.records:
            self.records[-1]["degenerate"] = reason

    def _summarize(self, records: list[dict]) -> dict:
        skipped = [r for r in records if not math.isfinite(r["pck"])]  # a .flo without any known pixel
        records = [r for r in records if math.isfinite(r["pck"])]
        subsets = [s for s in paper.TSS_SUBSETS if any(r["subset"] == s for r in records)]
        subsets += sorted({r["subset"] for r in records} - set(subsets))
        per = {s: M.nanmean(r["pck"] for r in records if r["subset"] == s) for s in subsets}
        return {"num_pairs": len(records), "pck": {_key(self.alpha): M.nanmean(per.values())}, "per_class": per,
                "pooled": M.nanmean(r["pck"] for r in records),
                "num_pairs_per_class": {s: sum(r["subset"] == s for r in records) for s in subsets},
                "num_without_ground_truth": len(skipped), "without_ground_truth": [r["pair"] for r in skipped]}

    def summary(self) -> dict:
        """``{"num_pairs", "alpha", "normalizer", "pck": {alpha: avg}, "per_class": {subset: mean},
        "pooled", "num_pairs_per_class", "num_without_ground_truth", "without_ground_truth", "num_degenerate",
        "warnings", "without_flip": {the same over the flip = 0 items}}``.

        ``avg`` is the unweighted mean of the subset means; ``pooled`` the mean over all directed items.
        ``num_pairs`` counts the scored items: an item whose ground-truth flow has no known pixel cannot be
        scored; it is left out of every mean and listed under ``without_ground_truth`` (with a warning).
        """
        out = self._summarize(self.records)
        warnings = []
        if out["num_without_ground_truth"]:
            warnings.append(f"{out['num_without_ground_truth']} of {len(self.records)} directed pair(s) have no "
                            "ground-truth pixel in their .flo file (every value marked unknown) and are not scored: "
                            + ", ".join(out["without_ground_truth"][:5]))
        bad = [r for r in self.records if r.get("degenerate")]
        if bad:
            warnings.append(f"{len(bad)} of {len(self.records)} directed pair(s) got a degenerate transform "
                            "(" + ", ".join(sorted({r['degenerate'] for r in bad})) + "); their flows are scored "
                            "as they are (non-finite vectors count as wrong): " + ", ".join(r["pair"] for r in bad[:5]))
        return {**out, "alpha": self.alpha, "normalizer": "tss-flow", "num_degenerate": len(bad),
                "warnings": warnings, "without_flip": self._summarize([r for r in self.records if not r["flip"]])}


# ----------------------------------------------------------------------------------------------
# Co-segmentation
# ----------------------------------------------------------------------------------------------


class CosegScores:
    """P and J of every image, grouped by class (TSS: by subset)."""

    def __init__(self, empty_gt: str = "skip", threshold: float = 0.5):
        if empty_gt not in M.EMPTY_GT_POLICIES:
            raise ValueError(f"empty_gt must be one of {M.EMPTY_GT_POLICIES}, got {empty_gt!r}")
        self.empty_gt, self.threshold = empty_gt, threshold
        self.records: list[dict] = []
        self.num_pairs = 0  # the pairs the method saw (set by the evaluators)

    def add(self, name: str, group: str, prob: torch.Tensor, gt: torch.Tensor) -> tuple[float, float]:
        """Score a probability map ``(1, h, w)`` against the ground truth ``(1, H, W)``; returns (P, J)."""
        gt = gt.reshape(gt.shape[-2:]) > 0.5
        pred = M.binarize_prediction(prob.float().cpu(), gt.shape, self.threshold)
        p, j = M.precision(pred, gt), M.jaccard(pred, gt, self.empty_gt)
        self.records.append({"name": name, "group": group, "precision": p, "jaccard": j, "empty": not bool(gt.any())})
        return p, j

    def summary(self) -> dict:
        """``{"num_pairs", "num_images", "precision", "jaccard", "per_class": {class: {"precision", "jaccard",
        "num_images", "num_jaccard"}}, "pooled": {"precision", "jaccard"}, "empty_gt", "num_empty_gt",
        "threshold"}``: precision/jaccard are means over classes of the per-class means over images."""
        groups = list(dict.fromkeys(r["group"] for r in self.records))
        per = {}
        for g in groups:
            recs = [r for r in self.records if r["group"] == g]
            per[g] = {"precision": M.nanmean(r["precision"] for r in recs),
                      "jaccard": M.nanmean(r["jaccard"] for r in recs),
                      "num_images": len(recs), "num_jaccard": sum(not math.isnan(r["jaccard"]) for r in recs)}
        return {"num_pairs": self.num_pairs, "num_images": len(self.records),
                "precision": M.nanmean(v["precision"] for v in per.values()),
                "jaccard": M.nanmean(v["jaccard"] for v in per.values()),
                "per_class": per,
                "pooled": {"precision": M.nanmean(r["precision"] for r in self.records),
                           "jaccard": M.nanmean(r["jaccard"] for r in self.records)},
                "empty_gt": self.empty_gt, "num_empty_gt": sum(r["empty"] for r in self.records),
                "threshold": self.threshold}


class _MaskAverage:
    """Averages the probability maps an image gets from several predictions, then scores it.

    Sums are kept at the prediction's resolution (resizing is linear, so averaging before or after
    the resize to the ground truth is the same) until ``expected`` maps have arrived; :meth:`flush`
    scores the images still waiting (e.g. when ``max_pairs`` cut a group short).
    """

    def __init__(self, scores: CosegScores):
        self.scores = scores
        self.pending: dict[str, list] = {}

    def add(self, name: str, group: str, prob: torch.Tensor, gt: torch.Tensor, expected: int) -> None:
        prob = prob.detach().float().cpu()
        entry = self.pending.setdefault(name, [torch.zeros_like(prob), 0, group, gt])
        if entry[0].shape != prob.shape:
            prob = G.resize(prob, entry[0].shape[-2:])
        entry[0] += prob
        entry[1] += 1
        if entry[1] >= expected:
            self._score(name)

    def _score(self, name: str) -> None:
        total, count, group, gt = self.pending.pop(name)
        self.scores.add(name, group, total / count, gt)

    def flush(self) -> None:
        for name in list(self.pending):
            self._score(name)


def partner_indices(labels, partners: int = 1) -> list[list[int]]:
    """For every image, the ``partners`` images it is co-segmented with: the next images of its category
    in dataset order, cyclically (image k of a category with members m_0..m_{n-1} gets m_{k+1}, ...,
    m_{k+partners}, indices mod n). Deterministic; never the image itself unless it is alone in its
    category; at most n - 1 partners."""
    if partners < 1:
        raise ValueError(f"partners must be at least 1, got {partners}")
    members = defaultdict(list)
    for i, c in enumerate(labels):
        members[int(c)].append(i)
    out = []
    for i, c in enumerate(labels):
        group = members[int(c)]
        if len(group) == 1:
            out.append([i])
            continue
        k = group.index(i)
        out.append([group[(k + s) % len(group)] for s in range(1, min(partners, len(group) - 1) + 1)])
    return out


class _PartnerPairs(Dataset):
    """(partner as A, target as B) pairs of an image dataset, targets in order, partners contiguous.

    The partners of a target are the next images, which are the next targets: a few recently loaded
    images are kept so that each image is decoded about once.
    """

    def __init__(self, images, targets, partners: list[list[int]]):
        self.images = images
        self.pairs = [(p, t, len(partners[t])) for t in targets for p in partners[t]]
        self.keep = max(len(p) for p in partners) + 2 if partners else 0
        self.recent: OrderedDict[int, dict] = OrderedDict()

    def __len__(self) -> int:
        return len(self.pairs)

    def _image(self, i: int) -> dict:
        if i not in self.recent:
            self.recent[i] = self.images[i]
            if len(self.recent) > self.keep:
                self.recent.popitem(last=False)
        return self.recent[i]

    def __getitem__(self, index: int) -> dict:
        p, t, expected = self.pairs[index]
        partner, target = self._image(p), self._image(t)
        if "mask" not in target:
            raise ValueError(f"image {t} has no ground-truth mask; co-segmentation needs a dataset with masks")
        return {"image_A": partner["image"], "image_B": target["image"], "mask_B": target["mask"],
                "name_A": _image_name(partner), "name_B": _image_name(target), "group": target["category_name"],
                "expected": expected, "index": index}


def _image_name(item: dict) -> str:
    return item.get("name") or f"{item['category_name']}/{item['index']}"


def evaluate_cosegmentation(method, images, partners: int = 1, empty_gt: str = "skip", batch_size: int = 8,
                            device="cpu", num_workers: int = 0, max_images: int | None = None,
                            progress: bool = False) -> CosegScores:
    """P and J of ``method`` on an image dataset with masks (items: image, mask, category_name, name;
    ``images.labels`` the category of every image).

    A co-segmentation method needs a partner of the same category: each image is the target B of
    ``partners`` pairs whose source A is chosen by :func:`partner_indices` (from the whole dataset, also
    when ``max_images`` evaluates only the first images); its probability map is the mean over its
    partners. Scores are grouped by category.
    """
    scores = CosegScores(empty_gt)
    average = _MaskAverage(scores)
    targets = range(len(images) if max_images is None else min(max_images, len(images)))
    pairs = _PartnerPairs(images, targets, partner_indices(images.labels, partners))
    scores.num_pairs = len(pairs)
    for batch in _batches(pairs, batch_size, num_workers, progress, f"P/J {method.name}"):
        with _naming(_pair_names(batch)):
            _, prob_B = method.masks(batch["image_A"].to(device), batch["image_B"].to(device))
        for i in range(prob_B.shape[0]):
            with _naming(_pair_names(batch, i)):
                average.add(batch["name_B"][i], batch["group"][i], prob_B[i], batch["mask_B"][i],
                            int(batch["expected"][i]))
    average.flush()
    return scores


# ----------------------------------------------------------------------------------------------
# TSS: flow PCK and co-segmentation in one pass
# ----------------------------------------------------------------------------------------------


@dataclass
class TSSResult:
    """Flow PCK and (optionally) co-segmentation scores of a TSS evaluation."""

    flow: FlowScores
    coseg: CosegScores | None = None

    def summary(self) -> dict:
        """The flow summary (:meth:`FlowScores.summary`) plus ``precision``, ``jaccard`` and the whole
        co-segmentation summary under ``"cosegmentation"`` (per subset)."""
        out = self.flow.summary()
        if self.coseg is not None:
            seg = self.coseg.summary()
            out.update(precision=seg["precision"], jaccard=seg["jaccard"], cosegmentation=seg)
        return out


def evaluate_tss(method, dataset, alpha: float = 0.05, masks: bool = True, mirror_flipped: bool = True,
                 flow_out=None, empty_gt: str = "skip", batch_size: int = 8, device="cpu", num_workers: int = 0,
                 progress: bool = False) -> TSSResult:
    """Flow PCK and co-segmentation P/J on TSS directed items (see :mod:`macos_lite.data.tss`).

    mirror_flipped: mirror A before the method when the item's flip flag is 1 (the reference protocol)
    and map the result back (:func:`tss_flow`); False gives the method the images as they are.
    flow_out: also write every flow to ``<flow_out>/<pair_name>/flow<flow_dir>.flo``, the layout the
    official evaluation kit reads. masks: score co-segmentation too -- each image of a pair folder gets
    the mean of the probability maps of the directed items it appears in (as B, and as A mirrored back
    when A was mirrored), grouped by subset.
    """
    result = TSSResult(FlowScores(alpha), CosegScores(empty_gt) if masks else None)
    if masks:
        result.coseg.num_pairs = len(dataset)
    average = _MaskAverage(result.coseg) if masks else None
    for batch in _batches(dataset, batch_size, num_workers, progress, f"TSS {method.name}"):
        mirrored = batch["flip"].bool() & mirror_flipped
        images_A = batch["image_A"].clone()
        images_A[mirrored] = images_A[mirrored].flip(-1)
        with _naming(_pair_names(batch)):
            images_A, images_B = images_A.to(device), batch["image_B"].to(device)
            if masks:
                theta, prob_A, prob_B = _transforms_and_masks(method, images_A, images_B)
            else:
                theta = method.transforms(images_A, images_B)
        for i in range(theta.shape[0]):
            item = _item(batch, i)
            with _naming(_pair_names(batch, i)):
                flow = tss_flow(theta[i : i + 1].cpu(), method.kind, item["size_A"], item["size_B"], bool(mirrored[i]))
                if flow_out is not None:
                    write_flo(Path(flow_out) / item["pair_name"] / f"flow{int(item['flow_dir'])}.flo", flow)
                result.flow.add(item, flow)
                result.flow.note_degenerate(G.degenerate_transforms(theta[i : i + 1].detach().cpu().double(),
                                                                    method.kind)[0])
                if masks:  # each image is B of one direction of its pair folder and A of the other
                    mask_A = prob_A[i].flip(-1) if mirrored[i] else prob_A[i]
                    average.add(item["name_A"], item["subset"], mask_A, item["mask_A"], expected=2)
                    average.add(item["name_B"], item["subset"], prob_B[i], item["mask_B"], expected=2)
    if masks:
        average.flush()
    return result


# ----------------------------------------------------------------------------------------------
# Benchmarks by name
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """The default protocol of a benchmark. task: ``"matching"``, ``"tss"`` (flow + co-segmentation),
    ``"coseg"`` or ``"matching+coseg"`` (synthetic: keypoints and masks)."""

    task: str
    split: str | None = None
    alphas: tuple[float, ...] = ()
    normalizers: tuple[str, ...] = ()
    direction: str = "B_to_A"


PROTOCOLS = {
    "pf-pascal": Protocol("matching", "test", (0.1,), ("scnet",), "B_to_A"),
    "pf-willow": Protocol("matching", None, (0.05, 0.1, 0.15), ("kp_bbox", "scnet"), "B_to_A"),
    "spair": Protocol("matching", "test", (0.1,), ("bbox",), "A_to_B"),
    "synthetic": Protocol("matching+coseg", "test", (0.05, 0.1, 0.15), ("kp_bbox", "image"), "B_to_A"),
    "tss": Protocol("tss", None, (0.05,)),
    "internet": Protocol("coseg"),
    "weizmann-horse": Protocol("coseg"),
}

_NORMALIZER_TEXT = {
    "scnet": "within alpha x 224 after resizing the {img} image to 224 x 224 (SCNet/WeakAlign/MaCoSNet code)",
    "image": "within alpha x max(H, W) of the {img} image",
    "kp_bbox": "within alpha x the longer side of the box of the {img} image's ground-truth keypoints (PF/CNNGeo)",
    "bbox": "within alpha x the longer side of the {img} image's object box (SPair-71k)",
}


def describe_matching(direction: str, normalizers, alphas) -> str:
    """One sentence saying exactly how the keypoint PCK was computed."""
    moved, judged = ("target (B)", "source A") if direction == "B_to_A" else ("source (A)", "target B")
    how = "predicted map" if direction == "B_to_A" else "inverse of the predicted map"
    img = "source" if direction == "B_to_A" else "target"
    norms = "; ".join(f"'{n}': {_NORMALIZER_TEXT[n].format(img=img)}" for n in normalizers)
    return (f"Keypoint PCK at alpha {', '.join(_key(a) for a in alphas)}: {moved} keypoints transferred into the "
            f"{judged} with the {how} ({direction}), distances at the images' original resolution; a keypoint is "
            f"correct by normaliser {norms}; only keypoints visible in both images count; PCK is the mean over "
            f"pairs of each pair's fraction of correct keypoints (per class: over that class's pairs).")


def describe_tss(alpha: float, mirror_flipped: bool) -> str:
    flip = ("for pairs with flip = 1 the source is mirrored before matching and the source x-coordinates are "
            "mapped back to the unmirrored image" if mirror_flipped else "the flip flag is ignored")
    return (f"TSS flow PCK at alpha {_key(alpha)}: the flow is computed on the target's grid at its original "
            f"resolution ({flip}); a pixel with ground truth is correct when its end-point error is at most "
            f"alpha x max(H, W) of the source; mean over directed pairs per subset, 'avg' = unweighted mean of the "
            f"subset means; also reported without the flipped pairs.")


def describe_coseg(partners: int | None, empty_gt: str) -> str:
    skip = "skipped in J" if empty_gt == "skip" else "scored in J (1 if the prediction is empty too, else 0)"
    who = ("each image of a pair folder gets the mean of the probability maps of the directed pairs it appears in"
           if partners is None else
           f"each image is co-segmented with the next {partners} image(s) of its category in dataset order "
           f"(cyclic) and its probability map is the mean over these partners")
    return (f"Co-segmentation: {who}; probabilities resized bilinearly to the ground truth's resolution and "
            f"thresholded at 0.5; P = pixel accuracy, J = foreground IoU; mean over images per class, then over "
            f"classes; images with empty ground truth count in P and are {skip}.")


def evaluate_dataset(name: str, method, root=None, split: str | None = None, image_size=DEFAULT_IMAGE_SIZE,
                     alphas=None, normalizers=None, direction: str | None = None, batch_size: int = 8, device="cpu",
                     max_pairs: int | None = None, flow_out=None, partners: int = 1, empty_gt: str = "skip",
                     num_workers: int = 0, progress: bool = False) -> dict:
    """Run the protocol of benchmark ``name`` (see :data:`PROTOCOLS`) and return its JSON summary.

    ``None`` arguments take the protocol's defaults. max_pairs: evaluate only the first N pairs
    (matching), directed items (TSS) or images (co-segmentation). Summary keys: ``dataset``, ``split``,
    ``num_pairs``, ``method``, ``protocol`` (a sentence per task), ``paper`` (the published tables),
    ``seconds``, and the task's results -- matching: :meth:`MatchingResult.summary`; co-segmentation:
    :meth:`CosegScores.summary`; TSS: :meth:`TSSResult.summary`; synthetic: matching keys plus
    ``precision``, ``jaccard`` and ``cosegmentation``.
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; the datasets are: {', '.join(NAMES)}")
    proto = PROTOCOLS[name]
    split = split or proto.split
    alphas = tuple(alphas or proto.alphas)
    normalizers = tuple(normalizers or proto.normalizers)
    direction = direction or proto.direction
    run = {"batch_size": batch_size, "device": device, "num_workers": num_workers, "progress": progress}
    start = time.perf_counter()
    out: dict = {"dataset": name, "split": split or "all", "method": describe_method(method, image_size)}
    if proto.task in ("matching", "matching+coseg"):
        if name == "synthetic":
            pairs = get_pairs(name, split=split, image_size=_square(image_size)[0])
        else:
            pairs = get_pairs(name, root=root, split=split, image_size=image_size)
        result = evaluate_matching(method, _first(pairs, max_pairs), alphas, normalizers, direction, **run)
        out.update(result.summary())
        protocol = [describe_matching(direction, normalizers, alphas)]
        if proto.task == "matching+coseg":
            seg = evaluate_cosegmentation(method, pairs.images, partners, empty_gt, max_images=max_pairs,
                                          **run).summary()
            out.update(precision=seg["precision"], jaccard=seg["jaccard"], cosegmentation=seg)
            protocol.append(describe_coseg(partners, empty_gt))
    elif proto.task == "tss":
        pairs = get_pairs(name, root=root, split=split, image_size=image_size)
        result = evaluate_tss(method, _first(pairs, max_pairs), alphas[0], flow_out=flow_out, empty_gt=empty_gt,
                              **run)
        out.update(result.summary())
        protocol = [describe_tss(alphas[0], True), describe_coseg(None, empty_gt)]
    else:
        images = get_images(name, root=root, split=split, image_size=image_size)
        seg = evaluate_cosegmentation(method, images, partners, empty_gt, max_images=max_pairs, **run)
        out.update(seg.summary())
        protocol = [describe_coseg(partners, empty_gt)]
    out["protocol"] = " ".join(protocol)
    out["warnings"] = list(out.get("warnings", []))
    out["paper"] = [t.to_dict() for t in paper.tables_for(name)]
    out["seconds"] = time.perf_counter() - start
    return out


def to_json(summary: dict) -> str:
    """The summary as strict JSON (NaN, e.g. a class without valid keypoints, becomes null)."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(summary), indent=2, allow_nan=False)


def write_json(summary: dict, path) -> Path:
    """Write :func:`to_json` to ``path`` atomically (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(to_json(summary) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# ----------------------------------------------------------------------------------------------
# Command line: `macos-lite evaluate --dataset NAME (--checkpoint FILE | --method identity) ...`
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser`` (a subcommand parser of ``macos-lite``)."""
    parser.add_argument("--dataset", required=True, choices=NAMES, metavar="NAME",
                        help=f"benchmark: {', '.join(NAMES)}")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="the dataset's folder (default: $MACOS_LITE_DATA/NAME, where `macos-lite download` puts it)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--checkpoint", type=Path, metavar="FILE", help="a checkpoint written by `macos-lite train`")
    who.add_argument("--method", choices=("identity",), help="a baseline instead of a model")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the summary to this JSON file")
    parser.add_argument("--split", default=None, help="pf-pascal: train/val/test; spair: trn/val/test (default: test)")
    parser.add_argument("--alpha", type=float, nargs="+", default=None, metavar="A",
                        help="PCK thresholds (default: the benchmark's, e.g. 0.05 0.1 0.15 for PF-WILLOW)")
    parser.add_argument("--normalizer", nargs="+", default=None, choices=M.NORMALIZERS,
                        help="PCK normalisers, the first is primary (default: the benchmark's)")
    parser.add_argument("--direction", choices=DIRECTIONS, default=None,
                        help="keypoint transfer: B_to_A (PF) or A_to_B (SPair); default: the benchmark's")
    parser.add_argument("--kind", choices=KINDS, default="cascade", help="transform of a model (default: cascade)")
    parser.add_argument("--batch-size", type=int, default=8, metavar="N")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument("--max-pairs", type=int, default=None, metavar="N",
                        help="evaluate only the first N pairs / directed TSS items / images")
    parser.add_argument("--flow-out", type=Path, default=None, metavar="DIR",
                        help="tss: also write the flows as <DIR>/<subset>/<pair>/flow<d>.flo for the official kit")
    parser.add_argument("--partners", type=int, default=1, metavar="K",
                        help="co-segmentation: partners per image, same category (default: 1)")
    parser.add_argument("--image-size", type=int, default=None, metavar="S",
                        help=f"resize images to S x S (default: the model's, {DEFAULT_IMAGE_SIZE} for a baseline)")
    parser.add_argument("--empty-gt", choices=M.EMPTY_GT_POLICIES, default="skip",
                        help="images with empty ground truth in J: skip (default) or score")
    parser.add_argument("--num-workers", type=int, default=0, metavar="N", help="data-loading processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_output_path(path, option: str = "--json") -> Path:
    """Make sure ``path`` can be written *before* a long evaluation: its folder is created and a probe file
    written and removed there. Raises ``PermissionError``/``IsADirectoryError`` naming ``option`` and the path."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a folder; give a file name, e.g. {path / 'results.json'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"{option} {path}: cannot write there ({exc.strerror or exc}); choose a path you "
                              "can write. Nothing was evaluated.") from exc
    return path


def _write_somewhere_safe(summary: dict, wanted: Path, exc: BaseException) -> str:
    """Write the summary next to the current folder or in the temporary folder when ``wanted`` failed late;
    returns a sentence saying where it went."""
    name = f"{wanted.stem or 'results'}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            return f"the results were written to {write_json(summary, folder / name)} instead"
        except OSError:
            continue
    return "the results could not be written anywhere; they are printed above"


def run(args: argparse.Namespace) -> int:
    """Carry out parsed ``evaluate`` arguments: print the table, write the JSON; returns the exit code.

    Exit codes: 0 done; 2 an input or option is wrong (message on stderr, nothing evaluated); 1 the
    evaluation ran but the JSON could not be written where asked (it is written elsewhere and the message
    says where).
    """
    cap_threads()
    if args.flow_out is not None and args.dataset != "tss":
        print("error: --flow-out is for --dataset tss only", file=sys.stderr)
        return 2
    try:
        if args.json is not None:  # before the long work: a bad path must not cost an evaluation
            check_output_path(args.json, "--json")
        if args.flow_out is not None:
            check_output_path(Path(args.flow_out) / "probe.flo", "--flow-out")
        for option in ("batch_size", "max_pairs", "partners", "image_size"):
            value = getattr(args, option)
            if value is not None and value < 1:
                raise ValueError(f"--{option.replace('_', '-')} must be at least 1, got {value}")
        if args.num_workers < 0:
            raise ValueError(f"--num-workers must be at least 0, got {args.num_workers}")
        device = resolve_device(args.device)
        if args.checkpoint is not None:
            method = method_from_checkpoint(args.checkpoint, device, args.kind)
        else:
            method = IdentityMethod()
        image_size = args.image_size or getattr(method, "image_size", (DEFAULT_IMAGE_SIZE,))[0]
        summary = evaluate_dataset(
            args.dataset, method, root=args.data_root, split=args.split, image_size=image_size,
            alphas=args.alpha, normalizers=args.normalizer, direction=args.direction, batch_size=args.batch_size,
            device=device, max_pairs=args.max_pairs, flow_out=args.flow_out, partners=args.partners,
            empty_gt=args.empty_gt, num_workers=args.num_workers, progress=not args.quiet)
    except (DataError, FileNotFoundError, EvaluationError, ValueError, RuntimeError, PermissionError,
            IsADirectoryError) as exc:
        from macos_lite.cli import debug_enabled

        if debug_enabled():
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.format_text(summary))
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if args.json is not None:
        try:
            print(f"wrote {write_json(summary, args.json)}")
        except OSError as exc:
            where = _write_somewhere_safe(summary, Path(args.json), exc)
            print(f"error: --json {args.json}: could not write it ({exc.strerror or exc}); {where}",
                  file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m macos_lite.evaluate ...``: the same as ``macos-lite evaluate ...``."""
    parser = argparse.ArgumentParser(prog="macos-lite evaluate",
                                     description="Evaluate a checkpoint or a baseline on a benchmark.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
