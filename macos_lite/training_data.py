"""Which images train, pre-train and validate a run: the data side of :mod:`macos_lite.training`.

Taught in notebook 08. A run's data, from its :class:`~macos_lite.train_config.TrainConfig`:

* :func:`holdout` -- for a real set without an official validation split (PF-WILLOW), the images held out
  of training (``val_fraction`` of each category, :func:`macos_lite.data.split.holdout_names`);
* :func:`training_data` -- the pre-training pool and the weak tuples (same-category tuples of the
  *training images*, or the official pair list of PF-PASCAL);
* :class:`TrainingImages` -- the training images by the index the weak batches carry, at any size (the
  co-localisation prior and the pseudo-masks are computed on them);
* :func:`validation_data` -- the validation pairs and their PCK normaliser (the benchmark's own
  protocol, :data:`macos_lite.evaluation.protocols.PROTOCOLS`).
* :func:`step_loader` -- the batches of global steps ``start..stop-1`` (:class:`StepBatches`: each step's
  indices are a function of the step, this process's share of them).
"""

from __future__ import annotations

import numpy as np
import torch

from . import geometry as G
from .data.locate import find_dataset
from .evaluation.protocols import PROTOCOLS
from .train_config import TrainConfig


def validation_normalizer(dataset: str) -> str:
    """The PCK normaliser that validates a run on ``dataset``: its benchmark protocol's first one."""
    protocol = PROTOCOLS.get(dataset)
    return protocol.normalizers[0] if protocol is not None and protocol.normalizers else "image"


# real sets with keypoint pairs but no official validation split: validation holds out some of their images
HOLDOUT_DATASETS = ("pf-willow",)
# co-segmentation sets of many groups: validation holds out whole groups (categories never trained on)
HOLDOUT_GROUP_DATASETS = ("icoseg",)
# the split of a part that trains (the others are read whole): the official one, or iCoseg's training groups
TRAIN_SPLITS = {"pf-pascal": "train", "icoseg": "train"}


def _part_root(cfg: TrainConfig, name: str, names: list[str]):
    return cfg.data_root if len(names) == 1 else find_dataset(name, cfg.data_root)


def holdout(cfg: TrainConfig) -> tuple[str | None, set[str]]:
    """(dataset part whose images are held out for validation, their names); (None, set()) when the run
    validates elsewhere (synthetic, an official val split, ``val_dataset``) or ``val_fraction`` is 0."""
    from .data.registry import get_images
    from .data.split import holdout_categories, holdout_names

    names = cfg.dataset.split("+")
    part = next((n for n in names if n in HOLDOUT_DATASETS + HOLDOUT_GROUP_DATASETS), None)
    if part is None or cfg.val_dataset is not None or not cfg.val_fraction:
        return None, set()
    images = get_images(part, root=_part_root(cfg, part, names), split=TRAIN_SPLITS.get(part),
                        image_size=cfg.image_size)
    if part in HOLDOUT_GROUP_DATASETS:
        return part, holdout_categories(images, cfg.val_fraction)
    return part, holdout_names(images, cfg.val_fraction)


def training_data(cfg: TrainConfig, held_part: str | None = None, held: set[str] = frozenset()):
    """(pre-training pool, weak tuple view, pool description) of the training set.

    ``dataset`` may join several image sets with '+' (e.g. ``pf-willow+weizmann-horse``); each is looked up
    with :func:`macos_lite.data.locate.find_dataset` under ``data_root``. The images ``held`` out of part
    ``held_part`` (validation) are left out of both the weak tuples and the pool. The pool follows
    ``pretrain_images`` (:func:`macos_lite.data.pool.pool_sources`). Benchmark images are decoded once and
    cached in memory (:class:`~macos_lite.data.cache.CachedImages`).
    """
    from .data.cache import CachedImages, JoinedImages
    from .data.pool import FolderImages, pool_sources
    from .data.registry import get_images, get_pairs
    from .data.views import PairList, WeakTuples

    names = cfg.dataset.split("+")
    parts = training_image_parts(cfg, cfg.image_size, held_part, held)
    images = parts[names[0]] if len(names) == 1 else JoinedImages([parts[n] for n in names])
    if names == ["pf-pascal"]:  # replay the official training pair list (with its flip flags)
        view = PairList(get_pairs("pf-pascal", root=cfg.data_root, split="train", image_size=cfg.image_size),
                        tuple_size=cfg.tuple_size, seed=cfg.seed, augment=cfg.augment)
    else:
        n = None if cfg.steps_per_epoch is None else cfg.steps_per_epoch * cfg.batch_size
        view = WeakTuples(images, tuple_size=cfg.tuple_size, num_tuples=n, seed=cfg.seed, augment=cfg.augment)

    sources = pool_sources(cfg.pretrain_images, names, cfg.data_root)
    pool, described = [], []
    for name, root in sources:
        if root is None:
            part = parts[name]
        elif name == "folder":
            part = CachedImages(FolderImages(root, image_size=cfg.image_size), progress=cfg.progress)
        else:
            part = CachedImages(get_images(name, root=root, image_size=cfg.image_size), progress=cfg.progress)
        pool.append(part)
        described.append({"source": name, "root": None if root is None else str(root), "images": len(part)})
    if [n for n, r in sources if r is None] == names and len(sources) == len(names):
        pool_images = images  # the training set itself
    else:
        pool_images = pool[0] if len(pool) == 1 else JoinedImages(pool)
    return pool_images, view, described


def training_image_parts(cfg: TrainConfig, image_size: int, held_part: str | None = None,
                 held: set[str] = frozenset()) -> dict:
    """The weak training images of each part of a '+'-joined dataset at ``image_size`` (benchmark images
    cached; the ``held`` images of ``held_part`` left out)."""
    from .data.cache import CachedImages
    from .data.registry import get_images
    from .data.split import without_images

    names = cfg.dataset.split("+")
    parts = {}
    for name in names:
        if name == "synthetic":
            parts[name] = get_images("synthetic", split="train", image_size=image_size,
                                     num_images=cfg.num_train_images, seed=cfg.seed)
        else:
            raw = get_images(name, root=_part_root(cfg, name, names), split=TRAIN_SPLITS.get(name),
                             image_size=image_size)
            if name == held_part:
                raw = without_images(raw, held)
            parts[name] = CachedImages(raw, progress=cfg.progress)
    return parts


def training_images(cfg: TrainConfig, image_size: int, held_part: str | None = None, held: set[str] = frozenset()):
    """The weak training images (all parts joined) at ``image_size``, in the order the tuples index them."""
    from .data.cache import JoinedImages

    names = cfg.dataset.split("+")
    parts = training_image_parts(cfg, image_size, held_part, held)
    return parts[names[0]] if len(names) == 1 else JoinedImages([parts[n] for n in names])


class TrainingImages:
    """The images the weak phase draws tuples from, by the index the batches carry: ``image(i)`` at a size,
    ``labels``. For an image dataset (WeakTuples) the dataset itself; for a pair list its images."""

    def __init__(self, cfg: TrainConfig, images, view, held_part=None, held=frozenset()):
        from .data.views import PairList

        self.cfg, self.view, self.held_part, self.held = cfg, view, held_part, held
        if isinstance(view, PairList):
            self.labels = list(view.image_labels)
            self._sets = {}
        else:
            self.labels = list(images.labels)
            self._sets = {cfg.image_size: images}

    def __len__(self) -> int:
        return len(self.labels)

    def stack(self, size: int) -> torch.Tensor:
        """Every image at ``size x size`` as ``uint8`` ``(N, 3, size, size)``."""
        from .data.views import PairList

        if isinstance(self.view, PairList):
            read = lambda i: G.resize(self.view.pairs.read_image(self.view.image_paths[i]), (size, size))  # noqa: E731
        else:
            if size not in self._sets:
                self._sets[size] = training_images(self.cfg, size, self.held_part, self.held)
            read = lambda i: self._sets[size][i]["image"]  # noqa: E731
        return torch.stack([(read(i).clamp(0, 1) * 255).round().to(torch.uint8) for i in range(len(self))])


def validation_images(cfg: TrainConfig, held_part: str | None = None, held: set[str] = frozenset()):
    """(the held-out groups' images with masks, a description) when whole groups of a co-segmentation set are
    held out (:data:`HOLDOUT_GROUP_DATASETS`), else (None, None)."""
    from .data.registry import get_images
    from .data.split import only_images

    if held_part not in HOLDOUT_GROUP_DATASETS or not held:
        return None, None
    names = cfg.dataset.split("+")
    images = only_images(get_images(held_part, root=_part_root(cfg, held_part, names),
                                    split=TRAIN_SPLITS.get(held_part), image_size=cfg.image_size), held)
    groups = sorted({rec.category_name for rec in images.records})
    return images, f"{held_part}: the {len(groups)} groups held out of training ({', '.join(groups)})"


def validation_data(cfg: TrainConfig, held_part: str | None = None, held: set[str] = frozenset()):
    """(validation pairs or None, their PCK normaliser, a description); the pairs among the ``held`` images
    of ``held_part`` when there are any, else ``val_dataset`` / the dataset's official val split."""
    from .data.registry import get_pairs
    from .data.split import pairs_among

    if held_part in HOLDOUT_GROUP_DATASETS:  # validated on images (validation_images), not pairs
        return None, None, None
    if held_part is not None and held:
        names = cfg.dataset.split("+")
        pairs = pairs_among(get_pairs(held_part, root=_part_root(cfg, held_part, names), image_size=cfg.image_size),
                            held)
        if len(pairs) == 0:
            return None, None, None
        return pairs, validation_normalizer(held_part), \
            f"{held_part}: pairs of the {len(held)} images held out of training ({cfg.val_fraction:g} per category)"
    name = cfg.val_dataset or ("synthetic" if cfg.dataset == "synthetic" else
                               "pf-pascal" if cfg.dataset == "pf-pascal" else None)
    if name is None or name == "none":
        return None, None, None
    if name == "synthetic":
        pairs = get_pairs("synthetic", split="val", image_size=cfg.image_size, num_pairs=cfg.val_pairs, seed=cfg.seed)
        where = "synthetic val"
    else:
        root = cfg.val_root or (cfg.data_root if name == cfg.dataset else find_dataset(name, cfg.data_root))
        split = cfg.val_split if name in ("pf-pascal", "spair") else None
        pairs = get_pairs(name, root=root, split=split, image_size=cfg.image_size)
        where = f"{name} {split or 'all pairs'}"
    if name != "synthetic" and cfg.val_pairs and len(pairs) > cfg.val_pairs:  # an even spread, always the same pairs
        keep = np.linspace(0, len(pairs) - 1, cfg.val_pairs).round().astype(int)
        pairs = torch.utils.data.Subset(pairs, keep.tolist())
    return pairs, validation_normalizer(name), where


def pair_names(pairs) -> list[str]:
    """``"A -> B"`` names of a pair dataset (or a Subset of one), without decoding images."""
    base, idx = (pairs.dataset, pairs.indices) if isinstance(pairs, torch.utils.data.Subset) else (pairs, None)
    records = getattr(base, "records", None)
    if records is None:
        return []
    records = records if idx is None else [records[i] for i in idx]
    return [f"{r.name_A} -> {r.name_B}" for r in records]



class StepBatches(torch.utils.data.Sampler):
    """Batches of dataset indices for global steps ``start..stop-1``: ``index_fn(step)``, this rank's share of
    each (every ``world``-th index from ``rank``)."""

    def __init__(self, index_fn, start: int, stop: int, rank: int, world: int):
        self.index_fn, self.start, self.stop, self.rank, self.world = index_fn, start, stop, rank, world

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield self.index_fn(step)[self.rank::self.world]

    def __len__(self):
        return max(0, self.stop - self.start)


def step_loader(dataset, index_fn, start: int, stop: int, rank: int, world: int, num_workers: int,
                pin_memory: bool) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` of ``dataset`` yielding the batches of :class:`StepBatches` (one per global step)."""
    kw = dict(num_workers=num_workers, pin_memory=pin_memory)
    if num_workers:
        kw.update(persistent_workers=False, prefetch_factor=4)
    return torch.utils.data.DataLoader(dataset, batch_sampler=StepBatches(index_fn, start, stop, rank, world), **kw)
