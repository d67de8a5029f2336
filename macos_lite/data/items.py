"""The item format every dataset shares, and the base classes and helpers the loaders build items with.

Pair items (dicts), the same keys for every pair dataset; ``S`` = ``image_size``, ``K`` = the dataset's
``max_keypoints``:

=====================  ======================================================================================
``image_A, image_B``   ``(3, S, S)`` float in [0, 1], anisotropically resized (``geometry.resize``). A is the
                       source, B the target: a model's transform maps B's points into A.
``size_A, size_B``     LongTensor ``[H, W]`` of the original images.
``kps_A, kps_B``       ``(K, 2)`` float ``(x, y)``, 0-based pixels of the *original* images; row k of A and
                       row k of B are the same keypoint. Padding and unannotated points hold -1.
``kps_valid``          ``(K,)`` bool: keypoint annotated (visible) in both images -- evaluate only these.
``bbox_A, bbox_B``     ``(4,)`` float ``x1, y1, x2, y2`` in original pixels; the dataset's ``bbox_source``
                       says where it comes from: ``"object"`` (annotated box), ``"keypoints"`` (tight box
                       of the image's annotated keypoints) or ``"mask"`` (tight box of the foreground).
``category``           int, 0-based index into ``dataset.categories``; ``category_name`` its name.
``name_A, name_B``     image names (relative paths without extension); ``index`` the item's index.
=====================  ======================================================================================

TSS pair items add ``flow_gt``, ``mask_A``, ``mask_B``, ``flip``, ``subset``, ``pair_name``, ``flow_dir``
(see :mod:`.tss`); synthetic pair items add ``mask_A``, ``mask_B``.

Image items: ``image`` ``(3, S, S)``; ``size`` LongTensor ``[H, W]`` of the original image; ``mask``
``(1, H, W)`` float {0, 1} at the original resolution -- present only when the dataset has masks
(``dataset.has_masks``); ``category``, ``category_name``, ``name``, ``index``. Every image dataset has
``labels`` (the category of each image, known without decoding any file), used by :class:`.views.WeakTuples`.

Masks and flows keep their original, different sizes: batch items with :func:`macos_lite.data.registry.collate`.
Taught in notebook 00 (setup and data).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from macos_lite.data.imageio import DataError, load_image, load_mask
from macos_lite.geometry import resize


def square_size(image_size) -> tuple[int, int]:
    """``240`` -> ``(240, 240)``; an ``(H, W)`` pair is kept."""
    if isinstance(image_size, numbers.Integral):
        return int(image_size), int(image_size)
    h, w = image_size
    return int(h), int(w)


def pad_keypoints(kps, length: int) -> torch.Tensor:
    """``(N, 2)`` array (NaN = not annotated) -> float tensor ``(length, 2)``, NaN and padding set to -1."""
    kps = np.asarray(kps, dtype=np.float64).reshape(-1, 2)
    if len(kps) > length:
        raise DataError(f"{len(kps)} keypoints, more than the dataset's maximum of {length}")
    out = np.full((length, 2), -1.0)
    out[: len(kps)] = np.where(np.isnan(kps), -1.0, kps)
    return torch.from_numpy(out).float()


def annotated(kps, length: int) -> torch.Tensor:
    """``(length,)`` bool: which rows of ``kps`` (NaN = not annotated) hold a keypoint."""
    kps = np.asarray(kps, dtype=np.float64).reshape(-1, 2)
    out = np.zeros(length, dtype=bool)
    out[: len(kps)] = ~np.isnan(kps).any(axis=1)
    return torch.from_numpy(out)


def keypoint_box(kps, size) -> torch.Tensor:
    """Tight ``(x1, y1, x2, y2)`` box of the annotated rows of ``kps``; the whole image if there are none."""
    kps = np.asarray(kps, dtype=np.float64).reshape(-1, 2)
    kps = kps[~np.isnan(kps).any(axis=1)]
    if len(kps) == 0:
        h, w = size
        return torch.tensor([0.0, 0.0, w - 1.0, h - 1.0])
    return torch.tensor([*kps.min(axis=0), *kps.max(axis=0)], dtype=torch.float32)


def mask_box(mask: torch.Tensor) -> torch.Tensor:
    """Tight ``(x1, y1, x2, y2)`` box of a ``(1, H, W)`` mask's foreground; the whole image if empty."""
    ys, xs = torch.nonzero(mask[0] > 0.5, as_tuple=True)
    if len(xs) == 0:
        h, w = mask.shape[-2:]
        return torch.tensor([0.0, 0.0, w - 1.0, h - 1.0])
    return torch.stack([xs.min(), ys.min(), xs.max(), ys.max()]).float()


def image_size_tensor(image: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` -> LongTensor ``[H, W]``."""
    return torch.tensor(list(image.shape[-2:]), dtype=torch.long)


@dataclass
class PairRecord:
    """One pair, as read from the annotations (images are decoded only in ``__getitem__``).

    ``kps_A``/``kps_B``: ``(N, 2)`` 0-based pixels with NaN for unannotated points, or None when the
    dataset reads them lazily; ``bbox_A``/``bbox_B``: object boxes or None; ``flip``: the pair list's flip
    flag (see the dataset's ``flip_mode``); ``annotation``: the pair's annotation file, if it has its own;
    ``extra``: dataset-specific values copied into the item.
    """

    path_A: Path
    path_B: Path
    category: int
    category_name: str
    name_A: str
    name_B: str
    kps_A: np.ndarray | None = None
    kps_B: np.ndarray | None = None
    bbox_A: np.ndarray | None = None
    bbox_B: np.ndarray | None = None
    flip: int = 0
    annotation: Path | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class ImageRecord:
    """One image of an image dataset; ``mask_path`` None when the dataset has no masks."""

    path: Path
    category: int
    category_name: str
    name: str
    mask_path: Path | None = None
    extra: dict = field(default_factory=dict)


class _Items(Dataset):
    """Shared by pair and image datasets: records, sizes, and errors that say which item failed."""

    name = ""  # registry name: used in messages and in the download hint
    categories: tuple[str, ...] = ()  # names of the category indices

    def __init__(self, records: list, image_size=240):
        self.records = records
        self.image_size = square_size(image_size)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        index = range(len(self.records))[index]  # IndexError past the end; negative indices allowed
        try:
            return self.load_item(index)
        except DataError as err:
            raise type(err)(f"{self.name} item {index} ({self.describe(index)}): {err}") from err
        except Exception as err:
            raise DataError(
                f"{self.name} item {index} ({self.describe(index)}): {type(err).__name__}: {err}"
            ) from err

    def describe(self, index: int) -> str:
        raise NotImplementedError

    def load_item(self, index: int) -> dict:
        raise NotImplementedError

    def read_image(self, path) -> torch.Tensor:
        """Original image ``(3, H, W)``."""
        return load_image(path, self.name)


class PairDataset(_Items):
    """Base of the pair datasets: ``records`` is a list of :class:`PairRecord`.

    Class attributes: ``max_keypoints`` (K), ``bbox_source``, and ``flip_mode`` -- how a training pair
    list's flip flag is applied by :class:`.views.PairList`: ``"both"`` (mirror both images, PF-PASCAL),
    ``"source"`` (mirror A, TSS) or None.
    """

    max_keypoints = 0
    bbox_source = "keypoints"
    flip_mode: str | None = None

    def describe(self, index: int) -> str:
        rec = self.records[index]
        return f"{rec.name_A} -> {rec.name_B}"

    def annotations(self, rec: PairRecord):
        """``(kps_A, kps_B, bbox_A, bbox_B)`` of a record; subclasses read lazy annotations here."""
        return rec.kps_A, rec.kps_B, rec.bbox_A, rec.bbox_B

    def load_item(self, index: int) -> dict:
        rec = self.records[index]
        image_A, image_B = self.read_image(rec.path_A), self.read_image(rec.path_B)
        kps_A, kps_B, bbox_A, bbox_B = self.annotations(rec)
        item = make_pair_item(self, index, rec, image_A, image_B, kps_A, kps_B)
        if bbox_A is not None:
            item["bbox_A"] = torch.as_tensor(np.asarray(bbox_A, dtype=np.float32).reshape(4))
            item["bbox_B"] = torch.as_tensor(np.asarray(bbox_B, dtype=np.float32).reshape(4))
        return item


KEYPOINT_MARGIN = 0.5  # keypoints may sit up to half the image's side (+ 1 px) outside it; beyond: refused


def check_keypoints_inside(path, size, kps, listed_in=None) -> None:
    """Refuse an image too small for normalised coordinates, or keypoints far outside their image.

    size: ``(H, W)``; kps ``(N, 2)`` 0-based pixels (NaN = unannotated). Annotations just outside the
    border (up to ``KEYPOINT_MARGIN`` x the side + 1 px) are accepted as some annotations have them; farther
    ones belong to another image or another scale. Raises :class:`DataError` naming the image file.
    """
    h, w = (int(v) for v in size)
    if h < 2 or w < 2:
        raise DataError(f"{path}: the image is {w} x {h} pixels (W x H); matching needs at least 2 x 2 pixels "
                        "to define normalised coordinates. Remove the pair from the list, or use the real image")
    kps = np.asarray(kps, dtype=np.float64).reshape(-1, 2)
    if not len(kps):
        return
    mx, my = KEYPOINT_MARGIN * w + 1, KEYPOINT_MARGIN * h + 1
    with np.errstate(invalid="ignore"):
        far = (kps[:, 0] < -mx) | (kps[:, 0] > w - 1 + mx) | (kps[:, 1] < -my) | (kps[:, 1] > h - 1 + my)
    if far.any():
        k = int(np.flatnonzero(far)[0])
        where = f" (keypoints from {listed_in})" if listed_in else ""
        raise DataError(f"{path}{where}: keypoint {k + 1} at (x, y) = ({kps[k, 0] + 1:g}, {kps[k, 1] + 1:g}) "
                        f"(1-based) lies far outside the {w} x {h} image ({int(far.sum())} such keypoint(s)); the "
                        "annotation belongs to another image or another scale: check the annotation file")


def make_pair_item(dataset: PairDataset, index: int, rec: PairRecord, image_A, image_B, kps_A, kps_B) -> dict:
    """Pair item from original images ``(3, H, W)`` and keypoints ``(N, 2)`` (NaN = unannotated).

    The boxes are the keypoint boxes; callers with object boxes or masks overwrite them.
    """
    K = dataset.max_keypoints
    kps_A = np.zeros((0, 2)) if kps_A is None else np.asarray(kps_A, dtype=np.float64).reshape(-1, 2)
    kps_B = np.zeros((0, 2)) if kps_B is None else np.asarray(kps_B, dtype=np.float64).reshape(-1, 2)
    if len(kps_A) != len(kps_B):
        raise DataError(f"{len(kps_A)} keypoints in A but {len(kps_B)} in B; they must correspond row by row")
    size_A, size_B = image_size_tensor(image_A), image_size_tensor(image_B)
    for path, size, kps in ((rec.path_A, size_A, kps_A), (rec.path_B, size_B, kps_B)):
        check_keypoints_inside(path, size, kps, getattr(dataset, "pair_csv", None))
    return {
        "image_A": resize(image_A, dataset.image_size),
        "image_B": resize(image_B, dataset.image_size),
        "size_A": size_A,
        "size_B": size_B,
        "kps_A": pad_keypoints(kps_A, K),
        "kps_B": pad_keypoints(kps_B, K),
        "kps_valid": annotated(kps_A, K) & annotated(kps_B, K),
        "bbox_A": keypoint_box(kps_A, size_A.tolist()),
        "bbox_B": keypoint_box(kps_B, size_B.tolist()),
        "category": rec.category,
        "category_name": rec.category_name,
        "name_A": rec.name_A,
        "name_B": rec.name_B,
        "index": index,
        **rec.extra,
    }


class ImageDataset(_Items):
    """Base of the image datasets: ``records`` is a list of :class:`ImageRecord`."""

    has_masks = False
    mask_threshold: float | None = None  # None: load_mask's default (127 for JPEG, 0 for PNG)

    @property
    def labels(self) -> list[int]:
        """Category of every image (no decoding)."""
        return [rec.category for rec in self.records]

    def describe(self, index: int) -> str:
        return self.records[index].name

    def load_item(self, index: int) -> dict:
        rec = self.records[index]
        image = self.read_image(rec.path)
        mask = None
        if rec.mask_path is not None:
            mask = load_mask(rec.mask_path, self.mask_threshold, self.name)
            if mask.shape[-2:] != image.shape[-2:]:
                raise DataError(
                    f"{rec.mask_path}: mask size {tuple(mask.shape[-2:])} differs from the image's "
                    f"{tuple(image.shape[-2:])} ({rec.path})"
                )
        return make_image_item(self, index, rec, image, mask)


def make_image_item(dataset: ImageDataset, index: int, rec: ImageRecord, image, mask=None) -> dict:
    """Image item from an original image ``(3, H, W)`` and its mask ``(1, H, W)`` (or None)."""
    item = {
        "image": resize(image, dataset.image_size),
        "size": image_size_tensor(image),
        "category": rec.category,
        "category_name": rec.category_name,
        "name": rec.name,
        "index": index,
        **rec.extra,
    }
    if mask is not None:
        item["mask"] = mask
    return item


