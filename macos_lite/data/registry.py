"""Dataset names -> datasets, and :func:`collate`, which batches their items.

Names: ``synthetic``, ``pf-pascal``, ``pf-willow``, ``spair``, ``tss``, ``internet``, ``weizmann-horse``, ``icoseg``.
``get_pairs(name, ...)`` gives a *pair* dataset (matching / flow evaluation), ``get_images(name, ...)`` an
*image* dataset (co-segmentation evaluation, weak-supervision training through :mod:`.views`). Without a
``root``, a dataset is looked up by :mod:`macos_lite.data.locate`.

The item format every dataset shares (keys, shapes, units) and the base classes the loaders build on are
in :mod:`.items`. Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import importlib
import numbers

import numpy as np
import torch
from torch.utils.data import Dataset

from macos_lite.data.items import annotated, keypoint_box, pad_keypoints, square_size
from macos_lite.geometry import resize

NAMES = ("synthetic", "pf-pascal", "pf-willow", "spair", "tss", "internet", "weizmann-horse", "icoseg")

# name -> (module, class); modules are imported on first use
_PAIR_DATASETS = {
    "pf-pascal": ("pf_pascal", "PFPascalPairs"),
    "pf-willow": ("pf_willow", "PFWillowPairs"),
    "spair": ("spair", "SPairPairs"),
    "tss": ("tss", "TSSPairs"),
}
_IMAGE_DATASETS = {
    "pf-pascal": ("pf_pascal", "PFPascalImages"),
    "pf-willow": ("pf_willow", "PFWillowImages"),
    "spair": ("spair", "SPairImages"),
    "tss": ("tss", "TSSImages"),
    "internet": ("internet", "InternetImages"),
    "weizmann-horse": ("weizmann", "WeizmannHorseImages"),
    "icoseg": ("icoseg", "ICosegImages"),
}
# datasets with official splits; the others are one set (split None, "all", "train" or "test")
# (icoseg: a stated group rule, see macos_lite.data.icoseg; "all" = every group)
SPLITS = {"pf-pascal": ("train", "val", "test"), "spair": ("trn", "val", "test"), "icoseg": ("all", "train", "test")}
_DEFAULT_IMAGE_SPLIT = {"pf-pascal": "train", "spair": "trn", "synthetic": "train", "icoseg": "train"}
_NO_SPLIT = (None, "all", "train", "test")


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; the datasets are: {', '.join(NAMES)}")


def _split_kwargs(name: str, split) -> dict:
    if name in SPLITS:
        return {"split": split}
    if split not in _NO_SPLIT:
        raise ValueError(f"{name} has no splits (it is one evaluation set); pass split=None, got {split!r}")
    return {}


def _load(table: dict, name: str):
    module, cls = table[name]
    return getattr(importlib.import_module(f"macos_lite.data.{module}"), cls)


def get_pairs(name: str, root=None, split: str | None = "test", image_size=240, **kw):
    """Pair dataset of benchmark ``name`` (pair items, see the module docstring).

    ``kw`` go to the dataset class (e.g. ``clean=True`` for PF-PASCAL, ``pair_csv=`` for PF-WILLOW/TSS). For
    ``synthetic``: ``num_pairs`` and ``seed`` choose the pairs, the other ``kw`` go to ``SyntheticImages``.
    """
    _check_name(name)
    if name == "synthetic":
        num_pairs = kw.pop("num_pairs", None)
        images = get_images("synthetic", split=split or "test", image_size=image_size, **kw)
        return SyntheticPairs(images, num_pairs=num_pairs, seed=kw.get("seed", 0))
    if name not in _PAIR_DATASETS:
        raise ValueError(
            f"{name} has no keypoint or flow pairs (it is a co-segmentation set); use get_images({name!r})"
        )
    split_kw = _split_kwargs(name, split or "test")
    return _load(_PAIR_DATASETS, name)(root=root, image_size=image_size, **split_kw, **kw)


def get_images(name: str, root=None, split: str | None = None, image_size=240, **kw):
    """Image dataset of benchmark ``name`` (image items, with ``labels``).

    ``split=None`` takes the training split where there is one (PF-PASCAL ``train``, SPair ``trn``, iCoseg
    ``train`` groups; ``"all"`` for every group) and the whole set elsewhere. For ``synthetic``, ``kw`` go to ``SyntheticImages`` (``num_images``, ``seed``).
    """
    _check_name(name)
    split = split or _DEFAULT_IMAGE_SPLIT.get(name)
    if name == "synthetic":
        from macos_lite.data.synthetic import SyntheticImages  # imported on use, like the benchmarks

        return SyntheticImages(image_size=image_size, split=split, **kw)
    return _load(_IMAGE_DATASETS, name)(root=root, image_size=image_size, **_split_kwargs(name, split), **kw)


def collate(batch: list[dict]) -> dict:
    """Batch items: tensors of equal shape are stacked, numbers become tensors, the rest stay lists
    (masks and flows at their original, different sizes; names)."""
    out = {}
    for key in batch[0]:
        values = [item[key] for item in batch]
        first = values[0]
        if torch.is_tensor(first) and all(torch.is_tensor(v) and v.shape == first.shape for v in values):
            out[key] = torch.stack(values)
        elif all(isinstance(v, numbers.Number) for v in values):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


# ---------------------------------------------------------------------------------------------------------
# Synthetic pairs
# ---------------------------------------------------------------------------------------------------------

class SyntheticPairs(Dataset):
    """Same-category pairs of a synthetic image dataset, as pair items (plus ``mask_A``, ``mask_B``).

    ``images`` yields ``{"image" (3, S, S), "mask" (1, S, S), "keypoints" (K, 2) 0-based px, "visible" (K,),
    "category", "category_name", "index", "size"}`` and has ``labels``. Pair i takes image ``i % N`` as B
    (target) and a random other image of its category as A (source), drawn from ``seed`` and i only, so
    the list is deterministic. Boxes are keypoint boxes of the visible keypoints.
    """

    name = "synthetic"
    bbox_source = "keypoints"

    def __init__(self, images, num_pairs: int | None = None, seed: int = 0, image_size=None):
        self.images = images
        self.seed = seed
        self.image_size = None if image_size is None else square_size(image_size)
        labels = np.asarray(images.labels)
        members = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
        self.pairs = []
        for i in range(len(labels) if num_pairs is None else num_pairs):
            b = i % len(labels)
            others = members[labels[b]][members[labels[b]] != b]
            rng = np.random.default_rng([seed, i])
            a = int(rng.choice(others)) if len(others) else b
            self.pairs.append((a, b))
        self.categories = tuple(getattr(images, "categories", None) or getattr(images, "category_names", ()))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        index = range(len(self.pairs))[index]
        a, b = self.pairs[index]
        A, B = self.images[a], self.images[b]
        size = self.image_size

        def kps(item):  # NaN marks invisible keypoints, as in the benchmarks' annotations
            k = item["keypoints"].double().clone()
            k[~item["visible"].bool()] = float("nan")
            return k.numpy()

        kps_A, kps_B = kps(A), kps(B)
        K = len(kps_A)
        return {
            "image_A": A["image"] if size is None else resize(A["image"], size),
            "image_B": B["image"] if size is None else resize(B["image"], size),
            "size_A": torch.as_tensor(A["size"]).long(),
            "size_B": torch.as_tensor(B["size"]).long(),
            "kps_A": pad_keypoints(kps_A, K),
            "kps_B": pad_keypoints(kps_B, K),
            "kps_valid": annotated(kps_A, K) & annotated(kps_B, K),
            "bbox_A": keypoint_box(kps_A, A["size"].tolist()),
            "bbox_B": keypoint_box(kps_B, B["size"].tolist()),
            "category": int(B["category"]),
            "category_name": B["category_name"],
            "name_A": f"synthetic/{a}",
            "name_B": f"synthetic/{b}",
            "index": index,
            "mask_A": A["mask"],
            "mask_B": B["mask"],
        }
