"""Run a benchmark's protocol and summarise it as JSON (:func:`evaluate_dataset`, :func:`write_json`).

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset, Subset

from .. import paper
from ..data.registry import NAMES, get_images, get_pairs
from ..strict_json import dumps
from .common import _first
from .cosegmentation import evaluate_cosegmentation
from .keypoints import evaluate_matching
from .methods import DEFAULT_IMAGE_SIZE, _square, describe_method
from .protocols import PROTOCOLS, describe_coseg, describe_matching, describe_tss
from .tss import evaluate_tss


def evaluate_dataset(name: str, method, root=None, split: str | None = None, image_size=DEFAULT_IMAGE_SIZE,
                     alphas=None, normalizers=None, direction: str | None = None, batch_size: int = 8, device="cpu",
                     max_pairs: int | None = None, flow_out=None, partners: int = 1, empty_gt: str = "skip",
                     num_workers: int = 0, progress: bool = False, dataset=None, flow_overwrite: bool = False):
    """Run the protocol of benchmark ``name`` (see :data:`PROTOCOLS`) and return its JSON summary.

    ``method``: one method, or several as a dict ``{key: method}`` (returns ``{key: summary}``) or a list
    (returns a list of summaries); several methods read the same items, each decoded once.
    ``dataset``: the data already loaded -- the pair dataset of a keypoint or TSS benchmark, the image
    dataset of a co-segmentation one, or a :class:`torch.utils.data.Subset` of it (e.g.
    :func:`evenly_spread`); ``None`` loads benchmark ``name`` from ``root`` (``split``, ``image_size``).
    ``None`` arguments take the protocol's defaults. max_pairs: evaluate only the first N pairs
    (matching), directed items (TSS) or images (co-segmentation). Summary keys: ``dataset``, ``split``,
    ``num_pairs``, ``method``, ``protocol`` (a sentence per task), ``paper`` (the published tables),
    ``seconds``, and the task's results -- matching: :meth:`MatchingResult.summary`; co-segmentation:
    :meth:`CosegScores.summary` (iCoseg adds ``per_group``, the same table as ``per_class``, and
    ``num_groups``); TSS: :meth:`TSSResult.summary`; synthetic: matching keys plus
    ``precision``, ``jaccard`` and ``cosegmentation``. ``settings``: the values this evaluation actually used
    (image size, alphas, normalisers, direction, partners, ...). ``flow_out`` / ``flow_overwrite``: see
    :func:`~macos_lite.evaluation.tss.evaluate_tss`.
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; the datasets are: {', '.join(NAMES)}")
    proto = PROTOCOLS[name]
    split = split or proto.split
    if isinstance(method, (Mapping, list, tuple)):
        keys = list(method) if isinstance(method, Mapping) else range(len(method))
        shared = CachedItems(_load(name, root, split, image_size) if dataset is None else dataset)
        summaries = [evaluate_dataset(name, method[k], root, split, image_size, alphas, normalizers, direction,
                                      batch_size, device, max_pairs, flow_out, partners, empty_gt, num_workers,
                                      progress, dataset=shared, flow_overwrite=flow_overwrite) for k in keys]
        return dict(zip(keys, summaries, strict=True)) if isinstance(method, Mapping) else summaries
    alphas = tuple(alphas or proto.alphas)
    normalizers = tuple(normalizers or proto.normalizers)
    direction = direction or proto.direction
    run = {"batch_size": batch_size, "device": device, "num_workers": num_workers, "progress": progress}
    start = time.perf_counter()
    fallbacks_before = getattr(method, "num_fallback", None)
    replaced_before = getattr(method, "num_replaced", None)
    trusted_before = (getattr(method, "num_trusted", None), getattr(method, "num_checked", None))
    data = _load(name, root, split, image_size) if dataset is None else dataset
    out: dict = {"dataset": name, "split": split or "all", "method": describe_method(method, image_size)}
    if proto.task in ("matching", "matching+coseg"):
        result = evaluate_matching(method, _first(data, max_pairs), alphas, normalizers, direction, **run)
        out.update(result.summary())
        protocol = [describe_matching(direction, normalizers, alphas)]
        if proto.task == "matching+coseg":
            seg = evaluate_cosegmentation(method, _images_of(data), partners, empty_gt,
                                          max_images=len(data) if max_pairs is None else max_pairs, **run).summary()
            out.update(precision=seg["precision"], jaccard=seg["jaccard"], cosegmentation=seg)
            protocol.append(describe_coseg(partners, empty_gt, method))
    elif proto.task == "tss":
        result = evaluate_tss(method, _first(data, max_pairs), alphas[0], flow_out=flow_out, empty_gt=empty_gt,
                              flow_overwrite=flow_overwrite, **run)
        out.update(result.summary())
        protocol = [describe_tss(alphas[0], True), describe_coseg(None, empty_gt, method)]
    else:
        seg = evaluate_cosegmentation(method, data, partners, empty_gt, max_images=max_pairs, **run).summary()
        out.update(seg)
        if proto.unit == "group":  # iCoseg: the per-class table is the per-group one; named so as well
            out.update(per_group=seg["per_class"], num_groups=len(seg["per_class"]))
        protocol = [describe_coseg(partners, empty_gt, method, proto.unit)]
    out["protocol"] = " ".join(protocol)
    out["settings"] = {"image_size": list(_square(image_size)), "alphas": list(alphas),
                       "normalizers": list(normalizers), "direction": direction if proto.task != "tss" else None,
                       "partners": partners, "empty_gt": empty_gt, "max_pairs": max_pairs,
                       "batch_size": batch_size, "device": str(device)}
    out["warnings"] = list(out.get("warnings", []))
    if fallbacks_before is not None:  # a robust fit that found too few matches used the identity
        out["num_fallback"] = method.num_fallback - fallbacks_before
        if out["num_fallback"]:
            out["warnings"].append(f"{out['num_fallback']} pair(s) had too few mutual matches or inliers for "
                                   f"{method.name} and were scored with the identity transform")
    if replaced_before is not None:  # a checked learned matcher (evaluation.verified): how often the fit won
        out["num_replaced"] = method.num_replaced - replaced_before
    if trusted_before[0] is not None:  # a checked learned co-segmentation (evaluation.teacher_checked)
        out["num_trusted"] = method.num_trusted - trusted_before[0]
        out["num_checked"] = method.num_checked - trusted_before[1]
    out["paper"] = [t.to_dict() for t in paper.tables_for(name)]
    out["seconds"] = time.perf_counter() - start
    return out


def _load(name: str, root, split, image_size):
    """The dataset the protocol of ``name`` reads: pairs (keypoints, TSS) or images (co-segmentation)."""
    if name == "synthetic":
        return get_pairs(name, split=split, image_size=_square(image_size)[0])
    if PROTOCOLS[name].task == "coseg":
        return get_images(name, root=root, split=split, image_size=image_size)
    return get_pairs(name, root=root, split=split, image_size=image_size)


def _images_of(pairs):
    """The image dataset behind a synthetic pair dataset (through :class:`CachedItems` and subsets)."""
    while not hasattr(pairs, "images") and hasattr(pairs, "dataset"):
        pairs = pairs.dataset
    return pairs.images


class CachedItems(Dataset):
    """A dataset whose items are kept after the first access, so that several methods evaluated on it read
    the same decoded images. Attributes of the wrapped dataset (``labels``, ``images`` ...) show through."""

    def __init__(self, dataset):
        self.dataset, self.items = dataset, {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        if i not in self.items:
            self.items[i] = self.dataset[i]
        return self.items[i]

    def __getattr__(self, name: str):
        if name in ("dataset", "items"):  # not set yet (unpickling): never recurse
            raise AttributeError(name)
        return getattr(self.dataset, name)


def evenly_spread(dataset, n: int | None):
    """``n`` items evenly spread over ``dataset`` (all of it when ``n`` is None or at least its length), so
    that every class of a dataset ordered by class is represented -- unlike its first ``n`` items.

    Example:
        >>> list(evenly_spread(list(range(10)), 4).indices)
        [0, 3, 6, 9]
    """
    if n is None or n >= len(dataset):
        return dataset
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return Subset(dataset, np.linspace(0, len(dataset) - 1, n).round().astype(int).tolist())


def to_json(summary: dict) -> str:
    """The summary as strict JSON (NaN, e.g. a class without valid keypoints, becomes null)."""
    return dumps(summary)


def write_json(summary: dict, path, overwrite: bool = True) -> Path:
    """Write :func:`to_json` to ``path`` atomically (folders created; :func:`macos_lite.cli_common.atomic_write`).

    ``overwrite=False`` refuses an existing file (``FileExistsError``); a full disk raises
    :class:`~macos_lite.cli_common.NoSpaceError` naming the file, and an older file of that name stays intact.
    """
    from macos_lite.cli_common import atomic_write

    return atomic_write(path, to_json(summary) + "\n", overwrite=overwrite)
