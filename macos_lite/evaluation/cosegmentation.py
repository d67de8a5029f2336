"""Co-segmentation precision P and Jaccard J (Internet, Weizmann Horse, synthetic; TSS in :mod:`.tss`).

Predicted probabilities are resized bilinearly to the ground truth's size and thresholded at 0.5;
P = pixel accuracy, J = foreground IoU; mean over images per class (TSS: per subset), then over classes.
Images without foreground (the Internet set's "noise" images) count in P and are skipped in J by default
(``empty_gt="skip"``).

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict

import torch
from torch.utils.data import Dataset, Subset

from .. import geometry as G
from .. import metrics as M
from .common import _batches, _naming, _pair_names


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


def labels_of(images) -> list[int]:
    """The category of every image of an image dataset: its ``labels``, through ``Subset`` and other wrappers
    that hold a ``dataset`` (a subset keeps the labels of its ``indices``), else read from the items."""
    if hasattr(images, "labels"):
        return [int(c) for c in images.labels]
    if isinstance(images, Subset):
        labels = labels_of(images.dataset)
        return [labels[i] for i in images.indices]
    if "dataset" in vars(images):  # a wrapper of the whole dataset (e.g. CachedItems)
        return labels_of(images.dataset)
    return [int(images[i]["category"]) for i in range(len(images))]


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

    A method with ``cosegment_set(images (N, 3, S, S), labels)`` (e.g. the training-free DDT reference) is
    given all images of the dataset at once instead -- each category is one set -- and never their masks.
    """
    if hasattr(method, "cosegment_set"):
        return _evaluate_set_method(method, images, empty_gt, max_images)
    scores = CosegScores(empty_gt)
    average = _MaskAverage(scores)
    targets = range(len(images) if max_images is None else min(max_images, len(images)))
    pairs = _PartnerPairs(images, targets, partner_indices(labels_of(images), partners))
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


def _evaluate_set_method(method, images, empty_gt: str, max_images: int | None) -> CosegScores:
    """Score a set-level method: every image of the dataset co-segmented together with its category."""
    scores = CosegScores(empty_gt)
    items = [images[i] for i in range(len(images))]
    for i, item in enumerate(items):
        if "mask" not in item:
            raise ValueError(f"image {i} has no ground-truth mask; co-segmentation needs a dataset with masks")
    labels = labels_of(images)
    with _naming(f"the {len(items)} images of the set"):
        probs = method.cosegment_set(torch.stack([it["image"] for it in items]), labels)
    scores.num_pairs = 0
    for i in range(len(items) if max_images is None else min(max_images, len(items))):
        with _naming(_image_name(items[i])):
            scores.add(_image_name(items[i]), items[i]["category_name"], probs[i], items[i]["mask"])
    return scores


def pair_mask_jaccards(method, pairs, batch_size: int = 8, device="cpu", threshold: float = 0.5) -> list[float]:
    """The Jaccard index J of every mask of a pair dataset: ``method.masks`` of each pair, resized to the ground
    truth and thresholded (:func:`macos_lite.metrics.binarize_prediction`), scored with
    :func:`macos_lite.metrics.jaccard`.

    ``pairs``: items with ``image_A``/``image_B`` ``(3, S, S)`` and masks ``mask_A``/``mask_B`` ``(1, H, W)``
    (foreground > 0.5). ``method.masks(images_A, images_B)`` returns two ``(B, 1, h, w)`` probability maps.
    Returns one J per image, batch by batch: the A masks of a batch, then its B masks; NaN where the ground
    truth has no foreground (left out by :func:`macos_lite.metrics.nanmean`). Raises ``KeyError`` when the
    pairs carry no masks.
    """
    from torch.utils.data import DataLoader

    from ..data.registry import collate

    scores = []
    for batch in DataLoader(pairs, batch_size=batch_size, collate_fn=collate):
        probs = method.masks(batch["image_A"].to(device), batch["image_B"].to(device))
        for prob, gts in zip(probs, (batch["mask_A"], batch["mask_B"])):
            scores += [M.jaccard(M.binarize_prediction(p.cpu(), gt.shape[-2:], threshold), gt[0] > 0.5)
                       for p, gt in zip(prob, gts)]
    return scores
