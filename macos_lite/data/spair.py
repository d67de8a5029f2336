"""SPair-71k (Min, Lee, Ponce, Cho, 2019): 70,958 pairs of 18 PASCAL classes with keypoints and boxes.

Official layout (``SPair-71k.tar.gz``, read unchanged)::

    <root>/SPair-71k/JPEGImages/<category>/<image>.jpg
    <root>/SPair-71k/PairAnnotation/{trn,val,test}/<id>-<src>-<trg>:<category>.json
    <root>/SPair-71k/Layout/{large,small}/{trn,val,test}.txt     one pair name per line (no .json)

A pair JSON holds ``src_imname``, ``trg_imname``, ``src_kps`` and ``trg_kps`` (lists of ``[x, y]``, the
keypoints visible in both images, row k of one matching row k of the other), ``src_bndbox`` and
``trg_bndbox`` (``[x1, y1, x2, y2]``), ``category``, ``kps_ids`` and the variation flags
``viewpoint_variation``, ``scale_variation``, ``truncation``, ``occlusion``, ``mirror``. Coordinates are
used as given (0-based pixels), as by the SPair devkit and the methods that report on it.

Pairs are listed from the layout file (no JSON is opened until an item is read); their JSON file name
already says the images and the category. A = source image (``src``), B = target (``trg``). The standard
PCK normaliser is the longer side of B's object box (``bbox_source = "object"``). The variation flags of
pair i are ``dataset.flags(i)``. Items: see :mod:`.registry`.

Used by notebook 09 (evaluation).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from macos_lite.data.imageio import DataError, not_found, read_text
from macos_lite.data.locate import dataset_folder, dataset_root
from macos_lite.data.items import ImageDataset, ImageRecord, PairDataset, PairRecord

NAME = "spair"
CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "train", "tvmonitor",
)
SPLITS = ("trn", "val", "test")
FLAGS = ("viewpoint_variation", "scale_variation", "truncation", "occlusion", "mirror")
MAX_KEYPOINTS = 40


def _split(split: str) -> str:
    split = {"train": "trn"}.get(split, split)
    if split not in SPLITS:
        raise ValueError(f"{NAME}: unknown split {split!r}; the splits are {list(SPLITS)}")
    return split


def list_pairs(base: Path, split: str, layout: str = "large") -> list[tuple[str, str, str, str]]:
    """``(pair name, source image stem, target image stem, category)`` of a split, in the layout's order.

    Reads ``Layout/<layout>/<split>.txt``; without it, the sorted JSON names of ``PairAnnotation/<split>``.
    """
    listing = base / "Layout" / layout / f"{split}.txt"
    if listing.is_file():
        names = [line.strip() for line in read_text(listing, NAME).splitlines() if line.strip()]
    else:
        folder = base / "PairAnnotation" / split
        if not folder.is_dir():
            raise not_found(f"{NAME}: neither {listing} nor {folder} exists", NAME)
        names = sorted(p.stem for p in folder.glob("*.json"))
    pairs = []
    for name in names:
        ids, _, category = name.rpartition(":")
        parts = ids.split("-")
        if not category or len(parts) != 3:
            raise DataError(f"{listing}: pair name {name!r} is not '<id>-<source>-<target>:<category>'")
        pairs.append((name, parts[1], parts[2], category))
    return pairs


def read_pair_json(path: Path) -> dict:
    """A pair annotation with its fields checked; keypoints as ``(N, 2)`` arrays, boxes as ``(4,)``."""
    if not path.is_file():
        raise not_found(f"{path}: file not found", NAME)
    try:
        data = json.loads(read_text(path, NAME))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); run `macos-lite download {NAME}` again.") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with the pair's fields, got {type(data).__name__}")
    for key in ("src_imname", "trg_imname", "src_kps", "trg_kps", "src_bndbox", "trg_bndbox", "category"):
        if key not in data:
            raise DataError(f"{path}: missing field {key!r}")
    out = dict(data)
    for key in ("src_kps", "trg_kps"):
        out[key] = _array(data[key], (-1, 2), path, key, "a list of [x, y] pairs")
    if len(out["src_kps"]) != len(out["trg_kps"]):
        raise DataError(f"{path}: fields 'src_kps' and 'trg_kps' differ in length")
    for key in ("src_bndbox", "trg_bndbox"):
        out[key] = _array(data[key], (4,), path, key, "[x1, y1, x2, y2]")
    return out


def _array(value, shape: tuple, path: Path, key: str, expected: str) -> np.ndarray:
    """``value`` as a float array of ``shape`` (-1: any length), or an error naming the file and field."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        array = None
    if array is not None and array.size == 0 and shape[0] == -1:
        return array.reshape(0, *shape[1:])
    if array is None or array.ndim != len(shape) or any(
        s not in (-1, a) for s, a in zip(shape, array.shape, strict=True)
    ):
        raise DataError(f"{path}: field {key!r} must be {expected}, got {str(value)[:80]}")
    return array


class SPairPairs(PairDataset):
    """SPair-71k pairs of ``split`` (trn, val, test) as pair items (``max_keypoints = 40``)."""

    name = NAME
    categories = CLASSES
    max_keypoints = MAX_KEYPOINTS
    bbox_source = "object"

    def __init__(self, root=None, split: str = "test", image_size=240, layout: str = "large"):
        self.base = dataset_folder(dataset_root(NAME, root), ["SPair-71k"], NAME)
        self.split = _split(split)
        records = []
        for name, src, trg, category in list_pairs(self.base, self.split, layout):
            if category not in CLASSES:
                raise DataError(f"{self.base}: pair {name!r} has unknown category {category!r}")
            records.append(
                PairRecord(
                    path_A=self.base / "JPEGImages" / category / f"{src}.jpg",
                    path_B=self.base / "JPEGImages" / category / f"{trg}.jpg",
                    category=CLASSES.index(category),
                    category_name=category,
                    name_A=f"{category}/{src}",
                    name_B=f"{category}/{trg}",
                    annotation=self.base / "PairAnnotation" / self.split / f"{name}.json",
                )
            )
        super().__init__(records, image_size)

    def annotations(self, rec: PairRecord):
        data = read_pair_json(rec.annotation)
        if data["category"] != rec.category_name:
            raise DataError(f"{rec.annotation}: field 'category' is {data['category']!r}, the file name says "
                            f"{rec.category_name!r}")
        return data["src_kps"], data["trg_kps"], data["src_bndbox"], data["trg_bndbox"]

    def flags(self, index: int) -> dict:
        """The variation flags of pair ``index`` (reads its JSON)."""
        data = read_pair_json(self.records[index].annotation)
        return {key: data.get(key) for key in FLAGS}


class SPairImages(ImageDataset):
    """The distinct images of a split (sorted by category and name), category from the pair names."""

    name = NAME
    categories = CLASSES

    def __init__(self, root=None, split: str = "trn", image_size=240, layout: str = "large"):
        base = dataset_folder(dataset_root(NAME, root), ["SPair-71k"], NAME)
        pairs = list_pairs(base, _split(split), layout)
        images = {(cat, stem) for _, src, trg, cat in pairs for stem in (src, trg)}
        unknown = sorted({cat for cat, _ in images} - set(CLASSES))
        if unknown:
            raise DataError(f"{base}: unknown categories {unknown} in the {split} pair list")
        records = [
            ImageRecord(base / "JPEGImages" / cat / f"{stem}.jpg", CLASSES.index(cat), cat, f"{cat}/{stem}")
            for cat, stem in sorted(images)
        ]
        super().__init__(records, image_size)
