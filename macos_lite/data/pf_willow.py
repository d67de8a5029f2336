"""PF-WILLOW (Ham, Cho, Schmid, Ponce, "Proposal Flow", CVPR 2016): 10 sub-classes x 10 images.

Official layout (``PF-dataset.zip``, read unchanged)::

    <root>/PF-dataset/<class>/<image>.png
    <root>/PF-dataset/<class>/<image>.mat    pts_coord: float (2, 10), row 0 = x, row 1 = y, 1-based pixels
    <root>/test_pairs_pf.csv                 optional pair list

Sub-classes are the folder names, e.g. ``car(G)``; keypoint k is the same part in every image of a
sub-class. Pairs (A = source, B = target):

* from the pair CSV when there is one, in either format, coordinates 1-based (a value of -1 = missing):
  WeakAlign's numeric ``imageA, imageB, XA1..XA10, YA1..YA10, XB1..XB10, YB1..YB10`` or MaCoSNet's
  ``source_image, target_image, class, XA, YA, XB, YB`` with ';'-separated values;
* otherwise every ordered pair of distinct images within each sub-class, from the ``.mat`` files: 90 per
  sub-class, 900 in all (the standard protocol). Order: sub-classes in the standard order, then A and B
  by sorted image name.

There are no object boxes: ``bbox_source = "keypoints"`` (the PF protocol's PCK normaliser is the longer
side of this box in A). Items: see :mod:`.registry` (pair items and image items, no masks).

Taught in notebook 00 (setup and data); evaluated in notebook 09.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from macos_lite.data.imageio import (
    DataError,
    load_mat,
    not_found,
    parse_number,
    parse_pair_keypoints,
    read_csv,
)
from macos_lite.data.locate import dataset_folder, dataset_root
from macos_lite.data.items import ImageDataset, ImageRecord, PairDataset, PairRecord

NAME = "pf-willow"
CLASSES = (
    "car(G)", "car(M)", "car(S)", "duck(S)", "motorbike(G)",
    "motorbike(M)", "motorbike(S)", "winebottle(M)", "winebottle(wC)", "winebottle(woC)",
)
CSV_NAMES = ("test_pairs_pf.csv", "test_pairs.csv", "test.csv")
NUM_KEYPOINTS = 10


def read_keypoints(mat_path) -> np.ndarray:
    """``pts_coord`` of a PF-WILLOW ``.mat`` as ``(K, 2)`` 0-based ``(x, y)`` pixels."""
    pts = load_mat(mat_path, ["pts_coord"], NAME)["pts_coord"].astype(np.float64)
    if pts.ndim != 2 or pts.shape[0] != 2:
        raise DataError(f"{mat_path}: field 'pts_coord' must have shape (2, K) (rows x, y), got {pts.shape}")
    return pts.T - 1.0  # MATLAB pixels are 1-based


def _scan(root) -> tuple[Path, list[str], dict[str, list[str]]]:
    """(PF-dataset folder, sub-class names in standard order, sorted image stems per sub-class)."""
    base = dataset_folder(dataset_root(NAME, root), ["PF-dataset"], NAME)
    folders = sorted(p.name for p in base.iterdir() if p.is_dir() and any(p.glob("*.png")))
    if not folders:
        raise not_found(f"{base}: no sub-class folders with .png images", NAME)
    classes = [c for c in CLASSES if c in folders] + [c for c in folders if c not in CLASSES]
    stems = {c: sorted(p.stem for p in (base / c).glob("*.png")) for c in classes}
    return base, classes, stems


class PFWillowPairs(PairDataset):
    """PF-WILLOW pairs as pair items (``max_keypoints = 10``).

    ``pair_csv``: None -> ``<root>/test_pairs_pf.csv`` if present, else all ordered pairs; False -> always
    all ordered pairs; a path -> that CSV.
    """

    name = NAME
    max_keypoints = NUM_KEYPOINTS
    bbox_source = "keypoints"

    def __init__(self, root=None, image_size=240, pair_csv=None):
        self.base, classes, stems = _scan(root)
        self.categories = CLASSES + tuple(c for c in classes if c not in CLASSES)
        if pair_csv is None:
            found = [dataset_root(NAME, root) / n for n in CSV_NAMES]
            pair_csv = next((p for p in found if p.is_file()), False)
        self.pair_csv = Path(pair_csv) if pair_csv else None
        records = self._from_csv(self.pair_csv) if self.pair_csv else self._all_pairs(classes, stems)
        super().__init__(records, image_size)

    def _record(self, cls: str, stem_A: str, stem_B: str, kps_A=None, kps_B=None) -> PairRecord:
        return PairRecord(
            path_A=self.base / cls / f"{stem_A}.png",
            path_B=self.base / cls / f"{stem_B}.png",
            category=self.categories.index(cls),
            category_name=cls,
            name_A=f"{cls}/{stem_A}",
            name_B=f"{cls}/{stem_B}",
            kps_A=kps_A,
            kps_B=kps_B,
        )

    def _all_pairs(self, classes, stems) -> list[PairRecord]:
        return [
            self._record(cls, a, b)
            for cls in classes
            for a in stems[cls]
            for b in stems[cls]
            if a != b
        ]

    def _from_csv(self, path: Path) -> list[PairRecord]:
        columns, rows = read_csv(path, dataset=NAME)
        macosnet = {"source_image", "target_image", "XA", "YA", "XB", "YB"} <= set(columns)
        if not macosnet and (len(columns) < 6 or (len(columns) - 2) % 4):
            raise DataError(
                f"{path}: unknown pair-list format (header {columns[:4]}...); expected "
                "'source_image,target_image,class,XA,YA,XB,YB' or "
                "'imageA,imageB,XA1..XA10,YA1..YA10,XB1..XB10,YB1..YB10'"
            )
        records = []
        for line, row in rows:
            where = f"{path}, line {line}"
            if macosnet:
                image_A, image_B = row["source_image"], row["target_image"]
                xa, ya, xb, yb = parse_pair_keypoints(row, where)
            else:
                image_A, image_B = row[columns[0]], row[columns[1]]
                k = (len(columns) - 2) // 4
                nums = np.array([parse_number(row[c], f"{where}, column {c!r}") for c in columns[2:]])
                xa, ya, xb, yb = nums.reshape(4, k)
            cls_A, stem_A = Path(image_A).parent.name, Path(image_A).stem
            cls_B, stem_B = Path(image_B).parent.name, Path(image_B).stem
            if cls_A != cls_B or cls_A not in self.categories:
                raise DataError(f"{where}: images {image_A!r}, {image_B!r} must lie in one sub-class folder")
            records.append(self._record(cls_A, stem_A, stem_B, _to_pixels(xa, ya), _to_pixels(xb, yb)))
        return records

    def annotations(self, rec: PairRecord):
        if rec.kps_A is None:  # regenerated pairs: keypoints from the .mat files
            kps_A = read_keypoints(rec.path_A.with_suffix(".mat"))
            return kps_A, read_keypoints(rec.path_B.with_suffix(".mat")), None, None
        return rec.kps_A, rec.kps_B, None, None


def _to_pixels(x, y) -> np.ndarray:
    """1-based CSV coordinates -> ``(K, 2)`` 0-based, NaN where the file says -1 (missing)."""
    kps = np.stack([x, y], axis=1) - 1.0
    kps[(np.stack([x, y], axis=1) == -1).any(axis=1)] = np.nan
    return kps


class PFWillowImages(ImageDataset):
    """Every PF-WILLOW image, category = sub-class (no masks)."""

    name = NAME

    def __init__(self, root=None, image_size=240):
        base, classes, stems = _scan(root)
        self.categories = CLASSES + tuple(c for c in classes if c not in CLASSES)
        records = [
            ImageRecord(base / c / f"{s}.png", self.categories.index(c), c, f"{c}/{s}")
            for c in classes
            for s in stems[c]
        ]
        super().__init__(records, image_size)
