"""PF-PASCAL (Ham, Cho, Schmid, Ponce, "Proposal Flow", TPAMI 2018): PASCAL VOC images of 20 classes.

Official layout (``PF-dataset-PASCAL.zip``, read unchanged)::

    <root>/PF-dataset-PASCAL/JPEGImages/<image>.jpg
    <root>/PF-dataset-PASCAL/Annotations/<class>/<image>.mat   kps (N, 2) 1-based, NaN = not visible;
                                                                bbox (x1, y1, x2, y2) 1-based

Pair lists (CSV), searched in ``<root>``, ``<root>/PF-dataset-PASCAL``, ``<root>/image_pairs`` and
``<root>/pf-pascal`` under the names of WeakAlign, NC-Net and MaCoSNet:

=====  ========================================================  ============================================
split  file names                                                columns
=====  ========================================================  ============================================
train  train_pairs_pf_pascal.csv, train_pairs.csv, train.csv     source_image,target_image,class,flip
val    val_pairs_pf_pascal.csv, val_pairs.csv, eval.csv, val.csv source_image,target_image,class,XA,YA,XB,YB
test   test_pairs_pf_pascal.csv, test_pairs.csv, test.csv        the same as val
=====  ========================================================  ============================================

``class`` is 1-based in the standard order (:data:`CLASSES`); XA..YB are ';'-separated 1-based pixel
coordinates of the keypoints visible in both images. Val/test keypoints come from the CSV, train keypoints
from the ``.mat`` files (row k = the class's k-th keypoint; ``kps_valid`` = visible in both). Boxes are the
annotated object boxes (``bbox_source = "object"``).

``clean=True`` drops the val/test pairs whose two images (in either order) also form a training pair:
34% of the test pairs do (docs/differences.md D20), which flatters transductive training on the train list.

The train list's ``flip`` flag mirrors both images of the pair (``flip_mode = "both"``); half of the
training rows are such mirrored copies. Items: see :mod:`.registry`.

Used by notebook 09 (evaluation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from macos_lite.data.imageio import (
    DataError,
    DataNotFoundError,
    load_mat,
    parse_number,
    parse_pair_keypoints,
    read_csv,
)
from macos_lite.data.locate import dataset_folder, dataset_root
from macos_lite.data.items import ImageDataset, ImageRecord, PairDataset, PairRecord

NAME = "pf-pascal"
CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
CSV_NAMES = {
    "train": ("train_pairs_pf_pascal.csv", "train_pairs.csv", "train.csv"),
    "val": ("val_pairs_pf_pascal.csv", "val_pairs.csv", "eval.csv", "val.csv"),
    "test": ("test_pairs_pf_pascal.csv", "test_pairs.csv", "test.csv"),
}
CSV_FOLDERS = ("", "PF-dataset-PASCAL", "image_pairs", "pf-pascal")
MAX_KEYPOINTS = 20


def find_pair_csv(root, split: str) -> Path:
    """The pair list of ``split``; the error lists every place looked at."""
    if split not in CSV_NAMES:
        raise ValueError(f"{NAME}: unknown split {split!r}; the splits are {list(CSV_NAMES)}")
    root = dataset_root(NAME, root)
    tried = [root / folder / name for folder in CSV_FOLDERS for name in CSV_NAMES[split]]
    for path in tried:
        if path.is_file():
            return path
    hint = (
        "The training list is WeakAlign's training_data/pf-pascal-flip/train_pairs.csv."
        if split == "train"
        else f"Run `macos-lite download {NAME}`."
    )
    raise DataNotFoundError(
        f"{NAME}: no {split} pair list found; looked for " + ", ".join(str(p) for p in tried) + f". {hint}"
    )


def read_annotation(path) -> tuple[np.ndarray, np.ndarray]:
    """``(kps (N, 2), bbox (4,))`` of a PF-PASCAL ``.mat``, 0-based pixels, NaN = not visible."""
    data = load_mat(path, ["kps", "bbox"], NAME)
    kps, bbox = data["kps"].astype(np.float64), data["bbox"].astype(np.float64).reshape(-1)
    if kps.size == 0:
        kps = kps.reshape(0, 2)
    if kps.ndim != 2 or kps.shape[1] != 2:
        raise DataError(f"{path}: field 'kps' must have shape (N, 2) as (x, y) rows, got {kps.shape}")
    if bbox.shape != (4,):
        raise DataError(f"{path}: field 'bbox' must hold 4 numbers x1, y1, x2, y2, got shape {bbox.shape}")
    return kps - 1.0, bbox - 1.0  # MATLAB pixels are 1-based


def _read_pairs(path: Path, split: str) -> list[tuple[int, dict, str, str, int]]:
    """Rows of a pair list as ``(line, row, image_A, image_B, class index)``."""
    extra = ["flip"] if split == "train" else ["XA", "YA", "XB", "YB"]
    _, rows = read_csv(path, ["source_image", "target_image", "class", *extra], NAME)
    out = []
    for line, row in rows:
        where = f"{path}, line {line}, column 'class'"
        cls = parse_number(row["class"], where)
        if cls != int(cls) or not 1 <= cls <= len(CLASSES):
            raise DataError(f"{where}: expected 1..{len(CLASSES)}, got {row['class']!r}")
        out.append((line, row, Path(row["source_image"]).name, Path(row["target_image"]).name, int(cls) - 1))
    return out


class PFPascalPairs(PairDataset):
    """PF-PASCAL pairs of ``split`` (train, val or test) as pair items (``max_keypoints = 20``)."""

    name = NAME
    categories = CLASSES
    max_keypoints = MAX_KEYPOINTS
    bbox_source = "object"
    flip_mode = "both"

    def __init__(self, root=None, split: str = "test", image_size=240, clean: bool = False):
        self.base = dataset_folder(dataset_root(NAME, root), ["PF-dataset-PASCAL"], NAME)
        self.split = split
        self.pair_csv = find_pair_csv(root, split)
        rows = _read_pairs(self.pair_csv, split)
        if clean and split != "train":
            train_rows = _read_pairs(find_pair_csv(root, "train"), "train")
            train = {frozenset((a, b)) for _, _, a, b, _ in train_rows}
            rows = [r for r in rows if frozenset((r[2], r[3])) not in train]
        super().__init__([self._record(split, *r) for r in rows], image_size)

    def _record(self, split, line, row, image_A, image_B, cls) -> PairRecord:
        where = f"{self.pair_csv}, line {line}"
        rec = PairRecord(
            path_A=self.base / "JPEGImages" / image_A,
            path_B=self.base / "JPEGImages" / image_B,
            category=cls,
            category_name=CLASSES[cls],
            name_A=f"JPEGImages/{Path(image_A).stem}",
            name_B=f"JPEGImages/{Path(image_B).stem}",
        )
        if split == "train":
            rec.flip = int(parse_number(row["flip"], f"{where}, column 'flip'"))
        else:
            xa, ya, xb, yb = parse_pair_keypoints(row, where)
            rec.kps_A = np.stack([xa, ya], axis=1) - 1.0  # 1-based -> 0-based
            rec.kps_B = np.stack([xb, yb], axis=1) - 1.0
        return rec

    def annotation_path(self, image_path: Path, category: int) -> Path:
        return self.base / "Annotations" / CLASSES[category] / f"{image_path.stem}.mat"

    def annotations(self, rec: PairRecord):
        kps_A, bbox_A = read_annotation(self.annotation_path(rec.path_A, rec.category))
        kps_B, bbox_B = read_annotation(self.annotation_path(rec.path_B, rec.category))
        if rec.kps_A is not None:  # val/test: the list's keypoints (visible in both) are the protocol's
            return rec.kps_A, rec.kps_B, bbox_A, bbox_B
        if len(kps_A) != len(kps_B):
            raise DataError(
                f"{CLASSES[rec.category]} annotations disagree: {len(kps_A)} keypoints in {rec.name_A}, "
                f"{len(kps_B)} in {rec.name_B}"
            )
        return kps_A, kps_B, bbox_A, bbox_B


class PFPascalImages(ImageDataset):
    """The distinct images of a split's pair list (sorted by name), category from the list (no masks)."""

    name = NAME
    categories = CLASSES

    def __init__(self, root=None, split: str = "train", image_size=240):
        base = dataset_folder(dataset_root(NAME, root), ["PF-dataset-PASCAL"], NAME)
        path = find_pair_csv(root, split)
        category: dict[str, int] = {}
        for line, _, image_A, image_B, cls in _read_pairs(path, split):
            for image in (image_A, image_B):
                if category.setdefault(image, cls) != cls:
                    raise DataError(f"{path}, line {line}: {image} is listed under two classes")
        records = [
            ImageRecord(base / "JPEGImages" / image, c, CLASSES[c], f"JPEGImages/{Path(image).stem}")
            for image, c in sorted(category.items())
        ]
        super().__init__(records, image_size)
