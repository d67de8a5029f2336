"""TSS: dense flow PCK and co-segmentation in one pass.

For a pair with the flip flag, A is mirrored before the method sees it, as in the official code; the flow is
computed on B's grid at B's original size and its source x-coordinates are mapped back into the
unmirrored A (the ground truth relates unmirrored images, see :mod:`macos_lite.data.tss`). Score: the
kit's accuracy at 0.05 x max side of A; mean over directed pairs per subset, and the unweighted mean of
the subset means ("avg", as the slides); the same without the flipped pairs.

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import geometry as G
from .. import metrics as M
from .. import paper
from ..cli_common import NoSpaceError
from ..data.imageio import write_flo
from .common import EvaluationError, _batches, _item, _key, _naming, _pair_names
from .cosegmentation import CosegScores, _MaskAverage
from .methods import _transforms_and_masks


def tss_flow(theta: torch.Tensor, kind: str, size_A, size_B, mirrored: bool = False) -> torch.Tensor:
    """The flow of one directed TSS item from the method's transform, ``(H_B, W_B, 2)`` float32.

    theta ``(1, D)`` maps B's points into the image the method saw as A; size_A/size_B: original
    ``(H, W)``. Defined on B's grid at B's original size: ``flow[y, x] = (x_A - x, y_A - y)`` in pixels.
    ``mirrored``: the method saw A mirrored horizontally, so its x-coordinates are those of the mirror
    image and are mapped back, ``x_A = (W_A - 1) - x_mirrored``. Pixels sent outside A get 1e10 (as the
    official code's flow writer; the kit counts them as wrong).
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
        self.write_error: str | None = None  # set when --flow-out could not be written (a full disk)

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
        if self.write_error:
            warnings.append(self.write_error)
        return {**out, "alpha": self.alpha, "normalizer": "tss-flow", "num_degenerate": len(bad),
                **({"flow_out_error": self.write_error} if self.write_error else {}), "warnings": warnings, "without_flip": self._summarize([r for r in self.records if not r["flip"]])}



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


def _dataset_base(dataset):
    """The TSS dataset behind subsets and caches (the object with the ``base`` folder), or None."""
    seen = 0
    while dataset is not None and not hasattr(dataset, "base") and seen < 10:
        dataset, seen = getattr(dataset, "dataset", None), seen + 1
    return getattr(dataset, "base", None)


def _flo_files(folder: Path) -> list[Path]:
    """Every ``.flo`` file under ``folder``, links to folders followed (the flows would be written through them)."""
    import os

    return [Path(d) / f for d, _, files in os.walk(folder, followlinks=True) for f in files if f.endswith(".flo")]


def _guarded(target: Path, root: Path | None) -> Path:
    """``target`` when writing it cannot touch the dataset under ``root`` (a link met on the way is followed)."""
    if root is not None:
        where = target.resolve()
        if root == where or root in where.parents:
            raise EvaluationError(f"--flow-out: {target} leads into the dataset's folder {root} (through a link); "
                                  "nothing there was written. Choose a folder outside the dataset")
    return target


def check_flow_out(flow_out, dataset=None, overwrite: bool = False) -> Path:
    """Refuse a flow folder that would destroy data, before anything is computed.

    Refused (:class:`EvaluationError` naming ``--flow-out``): the dataset's root folder or a folder inside it
    (the flows' layout ``<pair>/flow<d>.flo`` is the ground truth's own); a folder whose ``.flo`` files are
    ground-truth files (the same file through a link); and, unless ``overwrite``, a folder that already holds
    ``.flo`` files. Returns ``Path(flow_out)``.
    """
    out = Path(flow_out)
    base = _dataset_base(dataset)
    if base is not None:
        root = Path(base).resolve().parent  # <root>/TSS_CVPR2016
        where = out.resolve()
        if where == root or root in where.parents:
            raise EvaluationError(f"--flow-out {out} lies inside the dataset's folder {root}: the flows would be "
                                  "written over the ground truth (same layout, flow1.flo / flow2.flo). Choose a "
                                  "folder outside it, e.g. --flow-out runs/tss-flows")
        if where.is_dir():
            truth = {}
            for gt in Path(base).rglob("flow*.flo"):
                try:
                    st = gt.stat()
                except OSError:
                    continue
                truth[(st.st_dev, st.st_ino)] = gt
            for f in _flo_files(where):
                try:
                    st = f.stat()
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) in truth:
                    raise EvaluationError(f"--flow-out {out}: {f} is the ground-truth file {truth[st.st_dev, st.st_ino]} "
                                          "(a link); choose an empty folder outside the dataset")
    if out.is_dir() and not overwrite:
        existing = sorted(_flo_files(out))
        if existing:
            raise EvaluationError(f"--flow-out {out} already holds {len(existing)} .flo file(s) (e.g. {existing[0]}) "
                                  "and they are left as they are; choose an empty folder, or add --overwrite to "
                                  "replace them")
    return out


def evaluate_tss(method, dataset, alpha: float = 0.05, masks: bool = True, mirror_flipped: bool = True,
                 flow_out=None, empty_gt: str = "skip", batch_size: int = 8, device="cpu", num_workers: int = 0,
                 progress: bool = False, flow_overwrite: bool = False) -> TSSResult:
    """Flow PCK and co-segmentation P/J on TSS directed items (see :mod:`macos_lite.data.tss`).

    mirror_flipped: mirror A before the method when the item's flip flag is 1 (the official protocol)
    and map the result back (:func:`tss_flow`); False gives the method the images as they are.
    flow_out: also write every flow to ``<flow_out>/<pair_name>/flow<flow_dir>.flo``, the layout the
    official evaluation kit reads (:func:`check_flow_out` first: never inside the dataset, never over a
    ground-truth flow, and over an earlier estimate only with ``flow_overwrite``; a full disk stops the writing,
    not the scoring, and the summary's ``warnings`` and ``flow_out_error`` say so). masks: score co-segmentation too -- each image of a pair folder gets
    the mean of the probability maps of the directed items it appears in (as B, and as A mirrored back
    when A was mirrored), grouped by subset.
    """
    data_root = None
    if flow_out is not None:
        check_flow_out(flow_out, dataset, overwrite=flow_overwrite)
        base = _dataset_base(dataset)
        data_root = Path(base).resolve().parent if base is not None else None
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
                    try:
                        target = Path(flow_out) / item["pair_name"] / f"flow{int(item['flow_dir'])}.flo"
                        write_flo(_guarded(target, data_root), flow, overwrite=flow_overwrite)
                    except NoSpaceError as exc:  # the scores are still computed; the summary says what failed
                        result.flow.write_error = f"--flow-out {flow_out}: {exc}; the flows written before it are kept"
                        flow_out = None
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
