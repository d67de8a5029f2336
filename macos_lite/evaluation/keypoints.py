"""Keypoint PCK (PF-PASCAL, PF-WILLOW, SPair-71k, synthetic).

Keypoints are transferred with the predicted map at the *original* resolution of the images: ``"B_to_A"``
sends the target's keypoints into the source (CNNGeo/WeakAlign/MaCoSNet), ``"A_to_B"`` sends the source's
keypoints into the target with the inverse map (SPair-71k as in dhpf). The normaliser always refers to the
image the comparison happens in (A for B_to_A, B for A_to_B), see :mod:`macos_lite.metrics`. PCK = mean
over pairs of each pair's fraction of correct keypoints; per class the same over the class's pairs. (dhpf
scores SPair-71k after resizing both images to 240 x 240, box included; for non-square images the
anisotropic resize weighs x and y errors differently, so its numbers can differ slightly from ours.)

Taught in notebook 09 (evaluation); notebook 01 computes PCK by hand.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from .. import geometry as G
from .. import metrics as M
from .common import _batches, _key, _naming, _pair_names

DIRECTIONS = ("B_to_A", "A_to_B")


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
                **self._unscored(), "warnings": _degenerate_warnings(self.records, self.direction)
                + self._unscored_warnings()}

    def _unscored(self) -> dict:
        """``num_without_keypoints`` / ``without_keypoints``: pairs none of whose keypoints could be scored (no
        keypoint annotated in both images, or a zero PCK normaliser, e.g. ``kp_bbox`` of one keypoint): they
        add nothing to PCK. ``num_duplicates`` / ``duplicates``: pairs listed again (scored each time they are
        listed, as the pair list says)."""
        key = (self.normalizers[0], self.alphas[0])
        empty = [r["pair"] for r in self.records if r["scores"][key][1] == 0]
        seen, dup = set(), []
        for r in self.records:
            if r["pair"] in seen:
                dup.append(r["pair"])
            seen.add(r["pair"])
        return {"num_without_keypoints": len(empty), "without_keypoints": empty, "num_duplicates": len(dup),
                "duplicates": dup}

    def _unscored_warnings(self) -> list[str]:
        u, n, out = self._unscored(), len(self.records), []
        if u["num_without_keypoints"]:
            out.append(f"{u['num_without_keypoints']} of {n} pair(s) have no keypoint that can be scored (none "
                       f"annotated in both images, or a zero {self.normalizers[0]} normaliser) and add nothing to "
                       f"PCK, which is over the other {n - u['num_without_keypoints']}: "
                       + ", ".join(u["without_keypoints"][:5]) + (" ..." if u["num_without_keypoints"] > 5 else ""))
        if u["num_duplicates"]:
            out.append(f"{u['num_duplicates']} of {n} pair(s) are listed more than once and are scored each time: "
                       + ", ".join(sorted(set(u["duplicates"]))[:5]))
        return out


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
        record["pair"] = names[i] if i < len(names) else f"pair {len(result.records)}"
        if degenerate[i]:
            record["degenerate"] = degenerate[i]
        result.records.append(record)


def _identity_like(theta: torch.Tensor, kind: str) -> torch.Tensor:
    return G.identity_theta(kind, theta.shape[0], G._grid_size(theta, kind), dtype=theta.dtype)
