"""Hold-out splits of a training set: validation pairs that training never sees.

A benchmark without an official validation split (PF-WILLOW) is split by *images*: in every category a
fixed share of the images is held out, training (weak tuples and pre-training) uses only the others, and
validation uses the annotated pairs whose two images are both held out. A pair of held-out images shares no
image with any training tuple, so the validation PCK measures matching on unseen photographs.

A co-segmentation set of many groups (iCoseg) is split by *categories* instead (:func:`holdout_categories`):
whole groups are held out, so that validation measures co-segmentation of categories training never saw.

The choice depends only on the image names and ``seed`` (default 0, independent of the training seed), so
runs with different training seeds validate on the same pairs.

Taught in notebook 08 (training).
"""

from __future__ import annotations

import copy
import zlib

import numpy as np


def holdout_names(images, fraction: float = 0.3, min_images: int = 2, seed: int = 0) -> set[str]:
    """Names of the images to hold out: ``max(min_images, round(fraction * n))`` of each category's n images.

    images: an image dataset with ``records`` (:class:`~macos_lite.data.items.ImageRecord`: ``name`` and
    ``category``). Categories with fewer than ``2 * min_images`` images are kept whole for training (they
    could not give both training tuples and a validation pair). Raises ValueError for a fraction outside
    ``[0, 1)``.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must lie in [0, 1), got {fraction}")
    if fraction == 0:
        return set()
    by_category: dict[int, list[str]] = {}
    for rec in images.records:
        by_category.setdefault(int(rec.category), []).append(rec.name)
    held = set()
    for category, names in sorted(by_category.items()):
        names = sorted(names)
        if len(names) < 2 * min_images:
            continue
        k = max(min_images, int(round(fraction * len(names))))
        # a stable per-category stream: the same names on every machine and for every training seed
        rng = np.random.default_rng([seed, zlib.crc32(names[0].encode())])
        held.update(names[i] for i in rng.choice(len(names), size=k, replace=False))
    return held


def holdout_categories(images, fraction: float = 0.3) -> set[str]:
    """Names of the images of whole categories held out: ``max(1, round(fraction * n))`` of the n categories,
    evenly spread over the categories sorted by name (positions ``linspace(0, n - 1, k)`` rounded), so the
    choice depends only on the category names. Fewer than two categories: nothing is held out (training
    needs one). Raises ValueError for a fraction outside ``[0, 1)``."""
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must lie in [0, 1), got {fraction}")
    names = sorted({rec.category_name for rec in images.records})
    if fraction == 0 or len(names) < 2:
        return set()
    k = min(len(names) - 1, max(1, int(round(fraction * len(names)))))
    chosen = {names[i] for i in np.linspace(0, len(names) - 1, k).round().astype(int)}
    return {rec.name for rec in images.records if rec.category_name in chosen}


def only_images(images, names: set[str]):
    """A shallow copy of an image dataset with only the images called ``names`` (``labels`` follow)."""
    out = copy.copy(images)
    out.records = [rec for rec in images.records if rec.name in names]
    return out


def without_images(images, names: set[str]):
    """A shallow copy of an image dataset without the images called ``names`` (``labels`` follow)."""
    out = copy.copy(images)
    out.records = [rec for rec in images.records if rec.name not in names]
    return out


def pairs_among(pairs, names: set[str]):
    """A shallow copy of a pair dataset keeping only the pairs whose two images are both in ``names``."""
    out = copy.copy(pairs)
    out.records = [rec for rec in pairs.records if rec.name_A in names and rec.name_B in names]
    return out
