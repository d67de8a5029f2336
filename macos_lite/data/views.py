"""Weak-supervision training views: tuples of images that show the same category, and nothing else.

Weak supervision means that the network learns from images and, at most, the knowledge that they show
one category. Training items therefore carry only

* ``images``: ``(T, 3, S, S)`` float in [0, 1] -- a pair (T = 2) or a triplet (T = 3);
* ``category``: int, the tuple's category;
* ``indices``: LongTensor ``(T,)``, which images of the view were used --

never keypoints, masks, flows or boxes.

:class:`WeakTuples` draws tuples from any image dataset with ``labels`` (the synthetic set, Internet,
Weizmann Horse, PF-WILLOW, ...); :class:`PairList` replays a benchmark's training pair list (PF-PASCAL's
train CSV, the TSS list) and adds a random third image of the class for triplets.

Randomness: item i of epoch e draws from ``numpy.random.default_rng([seed, e, i, ...])`` only, never
from a global generator, so an item is the same whatever the access order and the number of DataLoader
workers. Call ``set_epoch(e)`` before each epoch to get new draws. (With ``persistent_workers=True`` the
workers keep the copy they started with: call ``set_epoch`` before creating the DataLoader iterator.)

Augmentation (``augment=True``, as in the official training script, docs/differences.md D16): every image is
cropped at random by :func:`random_crop_box` -- the top edge in ``[0, h/4)``, the bottom edge in ``[3h/4, h)``, the same for
the width -- and resized back. The official script then mirrors both images of a pair when the pair list's flip
flag is 1; :class:`PairList` applies the list's flags (``use_flip``), :class:`WeakTuples`, which has no list,
mirrors all images of a tuple together with probability 1/2.

Taught in notebook 07 (the full objective) and notebook 08 (training).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from macos_lite.data.imageio import DataError
from macos_lite.data.items import square_size
from macos_lite.geometry import resize


def random_crop_box(height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Random crop ``(top, bottom, left, right)`` with exclusive ends, the official script's rule:
    ``top`` in ``[0, ceil(h/4))``, ``bottom`` in ``[ceil(3h/4), h)``, and the same for left and right."""

    def edges(n: int) -> tuple[int, int]:
        low = int(rng.integers(0, math.ceil(n / 4)))
        start = math.ceil(3 * n / 4)
        high = int(rng.integers(start, n)) if start < n else n
        return low, high

    top, bottom = edges(height)
    left, right = edges(width)
    return top, bottom, left, right


def crop_and_resize(image: torch.Tensor, box: tuple[int, int, int, int], size) -> torch.Tensor:
    """Crop ``(3, H, W)`` to ``box`` (from :func:`random_crop_box`) and resize to ``size``."""
    top, bottom, left, right = box
    return resize(image[:, top:bottom, left:right], size)


# random streams of an item: 0 = which images, 1 = augmentation; 2 = the visiting order of an epoch
_TUPLE, _AUGMENT, _ORDER = 0, 1, 2


class _View(Dataset):
    def __init__(self, seed: int, augment: bool):
        self.seed = int(seed)
        self.augment = bool(augment)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the draws of ``epoch`` (deterministic given seed, epoch and item index)."""
        self.epoch = int(epoch)

    def rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index, stream])


class WeakTuples(_View):
    """Tuples of ``tuple_size`` images of one category from an image dataset with ``labels``.

    Each epoch visits the images in a random order (a permutation drawn from seed and epoch); item i takes
    the i-th visited image as the first of its tuple and adds images of the same category, distinct when
    the category has at least ``tuple_size`` images (repeated otherwise). ``num_tuples`` defaults to the
    number of images (larger values visit the images several times per epoch).
    """

    def __init__(self, images, tuple_size: int = 2, num_tuples: int | None = None, seed: int = 0,
                 augment: bool = False):
        super().__init__(seed, augment)
        if not hasattr(images, "labels"):
            raise TypeError(f"{type(images).__name__} has no `labels` (the category of each image)")
        if tuple_size < 2:
            raise ValueError(f"tuple_size must be 2 (pairs) or more (3: triplets), got {tuple_size}")
        self.images = images
        self.tuple_size = int(tuple_size)
        self.labels = np.asarray(list(images.labels), dtype=np.int64)
        if len(self.labels) == 0:
            raise ValueError(f"{type(images).__name__} is empty")
        self.num_tuples = len(self.labels) if num_tuples is None else int(num_tuples)
        self.members = {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}

    def __len__(self) -> int:
        return self.num_tuples

    def tuple_indices(self, index: int) -> list[int]:
        """The image indices of tuple ``index`` in the current epoch."""
        index = range(self.num_tuples)[index]
        n = len(self.labels)
        cycle, position = divmod(index, n)
        order = self.rng(cycle, _ORDER).permutation(n)
        first = int(order[position])
        others = self.members[int(self.labels[first])]
        others = others[others != first]
        rng = self.rng(index, _TUPLE)
        need = self.tuple_size - 1
        if len(others) >= need:
            rest = rng.choice(others, size=need, replace=False)
        elif len(others):  # too few images: use them all, then repeat
            rest = np.concatenate([rng.permutation(others), rng.choice(others, size=need - len(others))])
        else:
            rest = np.full(need, first)
        return [first, *(int(j) for j in rest)]

    def __getitem__(self, index: int) -> dict:
        indices = self.tuple_indices(index)
        category = int(self.labels[indices[0]])
        images = []
        for j in indices:
            item = self.images[j]
            if int(item["category"]) != category:
                raise DataError(
                    f"{type(self.images).__name__} item {j}: category {int(item['category'])} differs from "
                    f"its label {category}; `labels` must list each image's category"
                )
            images.append(item["image"])
        if self.augment:
            rng = self.rng(index, _AUGMENT)
            size = tuple(images[0].shape[-2:])
            images = [crop_and_resize(im, random_crop_box(*im.shape[-2:], rng), size) for im in images]
            if rng.random() < 0.5:
                images = [im.flip(-1) for im in images]
        return {"images": torch.stack(images), "category": category, "indices": torch.tensor(indices)}


class PairList(_View):
    """The training pairs of a pair dataset (its ``records``), as weak-supervision tuples.

    Item i is pair i of the list: ``images[0]`` the source A, ``images[1]`` the target B and, for
    ``tuple_size=3``, a random third image of the class among the list's images (other than A and B when
    there is one). The pair's flip flag is applied when ``use_flip`` (``pairs.flip_mode``: ``"both"``
    mirrors every image of the tuple, PF-PASCAL; ``"source"`` mirrors A, TSS; ``flips`` says which images
    were mirrored). ``indices`` refer to ``self.image_paths``. Images are read at full resolution, cropped when ``augment``, then resized to
    ``image_size`` (default: the pair dataset's).
    """

    def __init__(self, pairs, tuple_size: int = 2, seed: int = 0, augment: bool = False, image_size=None,
                 use_flip: bool = True):
        super().__init__(seed, augment)
        if tuple_size not in (2, 3):
            raise ValueError(f"tuple_size must be 2 (pairs) or 3 (triplets), got {tuple_size}")
        self.pairs = pairs
        self.tuple_size = tuple_size
        self.use_flip = use_flip
        self.image_size = square_size(image_size if image_size is not None else pairs.image_size)
        self.image_paths, self.image_labels, position = [], [], {}
        for rec in pairs.records:
            for path in (rec.path_A, rec.path_B):
                if path not in position:
                    position[path] = len(self.image_paths)
                    self.image_paths.append(path)
                    self.image_labels.append(rec.category)
        self.pair_indices = [(position[r.path_A], position[r.path_B]) for r in pairs.records]
        labels = np.asarray(self.image_labels)
        self.members = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}

    def __len__(self) -> int:
        return len(self.pair_indices)

    def __getitem__(self, index: int) -> dict:
        index = range(len(self))[index]
        rec = self.pairs.records[index]
        indices = list(self.pair_indices[index])
        rng = self.rng(index, _TUPLE)
        if self.tuple_size == 3:
            pool = self.members[rec.category]
            others = pool[~np.isin(pool, indices)]
            indices.append(int(rng.choice(others if len(others) else pool)))
        try:
            images = [self.pairs.read_image(self.image_paths[j]) for j in indices]
        except DataError as err:
            raise type(err)(f"training pair {index} ({rec.name_A} -> {rec.name_B}): {err}") from err
        size = self.image_size
        if self.augment:
            images = [crop_and_resize(im, random_crop_box(*im.shape[-2:], rng), size) for im in images]
        else:
            images = [resize(im, size) for im in images]
        flips = [False] * len(images)
        if self.use_flip and rec.flip:  # mirroring commutes with the (corner-aligned) resize
            if self.pairs.flip_mode == "both":
                flips = [True] * len(images)
            elif self.pairs.flip_mode == "source":
                flips[0] = True
            images = [im.flip(-1) if f else im for im, f in zip(images, flips)]
        return {"images": torch.stack(images), "category": rec.category, "indices": torch.tensor(indices),
                "flips": torch.tensor(flips)}
