"""TSS (Taniai, Sinha, Sato, CVPR 2016): 400 image pairs with dense flow and masks, in three subsets.

Official layout (``TSS_CVPR2016.zip``, read unchanged)::

    <root>/TSS_CVPR2016/{FG3DCar,JODS,PASCAL}/<pair>/
        image1.png, image2.png    the two images (sizes may differ)
        mask1.png, mask2.png      foreground masks (foreground = value > 0, as in the evaluation kit)
        flow1.flo                 defined on image1, points into image2 (Middlebury; > 1e9 = no ground truth)
        flow2.flo                 defined on image2, points into image1
        flip_gt.txt               0 or 1 (see "The flip flag")
    <root>/test_pairs_tss.csv     optional: imageA,imageB,flow_dir,flip,category (one row per direction)

Directed items, two per pair folder: for direction d in (1, 2) the target B is image d (the image the flow
is defined on), the source A is the other image, and ``flow_gt`` is flow d, shape ``(H_B, W_B, 2)``: the
pixel of B at ``(x, y)`` corresponds to ``(x + u, y + v)`` in A (0-based, both frames unmirrored). GT is
defined exactly on B's foreground: valid pixels are ``flow_gt[..., 0] < 1e9``. With the pair CSV, its rows
and order are used (``imageB`` must be ``image{flow_dir}.png``); without it, the subset folders are
enumerated in sorted order, direction 1 then 2. The flow PCK of the kit thresholds the endpoint error at
``alpha * max(H_A, W_A)`` (the image the flow points into) and averages over B's valid pixels.

Item keys: the pair items of :mod:`.registry` (``max_keypoints = 0``: TSS has no keypoints; boxes are
the masks' boxes, ``bbox_source = "mask"``) plus ``flow_gt``, ``mask_A`` ``(1, H_A, W_A)``, ``mask_B``
``(1, H_B, W_B)`` at the original resolution, ``flip`` (int), ``subset`` (FG3DCar, JODS or PASCAL),
``pair_name`` (``<subset>/<pair>``) and ``flow_dir`` (d). A flow estimate for the item is written to
``<out>/<pair_name>/flow<flow_dir>.flo``, the layout the kit reads. ``category`` is the object class
from the folder name (``car`` for FG3DCar, the prefix of ``bike_01_02`` or ``car_01_02`` elsewhere); the
protocol averages per ``subset``.

The flip flag. ``flip_gt.txt`` = 1 marks pairs whose objects face opposite ways, so that the true
correspondence includes a horizontal mirror. The ground-truth flows relate the *original, unmirrored*
images. Evidence on the kit's sample pair ``PASCAL/bike_01_03`` (flip = 1): a least-squares affine fit of
``x_A = x_B + u`` over the valid pixels gives ``x_A = -1.06 x_B + 0.08 y_B + 498`` for flow1 and
``-0.93 x_B + ...`` for flow2 (median du/dx = -2.06 and -1.89, against ~0 for every flip = 0 pair), and
93.6% of the mapped points land on A's foreground, against 78.8% on A's mirrored foreground. The kit
compares estimated and GT flows directly and uses the flag only to report a "w/o flip" average.

What evaluation must do with the flag: the items hold the unmirrored images. A method may mirror A
horizontally before matching (the official code does when flip = 1, so that both objects face the same way);
it must then map its source x-coordinates back to the original A, ``x_A = (W_A - 1) - x_mirrored``
(0-based), before forming ``u = x_A - x_B``; the flow is always scored against ``flow_gt`` in the original
frames. Report the mean over all directed items and, like the kit, the mean over the ``flip == 0`` items.

Images: :class:`TSSImages` lists image1 and image2 of every folder with their masks (co-segmentation),
category as above, plus ``subset``.

Used by notebook 09 (evaluation).
"""

from __future__ import annotations

import re
from pathlib import Path

from macos_lite.data.imageio import (
    DataError,
    load_mask,
    not_found,
    parse_number,
    read_csv,
    read_flo,
    read_text,
)
from macos_lite.data.locate import dataset_folder, dataset_root
from macos_lite.data.items import (
    ImageDataset,
    ImageRecord,
    PairDataset,
    PairRecord,
    make_pair_item,
    mask_box,
)

NAME = "tss"
SUBSETS = ("FG3DCar", "JODS", "PASCAL")
CSV_NAMES = ("test_pairs_tss.csv", "data.csv", "test_pairs.csv")


def object_class(subset: str, pair: str) -> str:
    """``car`` for FG3DCar, else the leading letters of the folder name (``bike_01_02`` -> ``bike``)."""
    if subset == "FG3DCar":
        return "car"
    match = re.match(r"[A-Za-z]+", pair)
    return match.group(0).lower() if match else subset


def read_flip(folder: Path) -> int:
    """The pair's ``flip_gt.txt`` (0 when the file is absent, as in the kit)."""
    path = folder / "flip_gt.txt"
    if not path.is_file():
        return 0
    text = read_text(path, NAME).split()
    value = parse_number(text[0] if text else "", f"{path}: the flip flag")
    if value not in (0, 1):
        raise DataError(f"{path}: the flip flag must be 0 or 1, got {value:g}")
    return int(value)


def _pair_folders(base: Path) -> list[tuple[str, str]]:
    """``(subset, pair)`` of every folder holding image1.png, subsets in order, pairs sorted."""
    subsets = [s for s in SUBSETS if (base / s).is_dir()] + sorted(
        p.name for p in base.iterdir() if p.is_dir() and p.name not in SUBSETS
    )
    folders = [
        (s, p.name) for s in subsets for p in sorted((base / s).iterdir()) if (p / "image1.png").is_file()
    ]
    if not folders:
        raise not_found(f"{base}: no pair folders with image1.png", NAME)
    return folders


class TSSPairs(PairDataset):
    """The 2 x (number of pair folders) directed TSS items (800 for the full set).

    ``pair_csv``: None -> ``<root>/test_pairs_tss.csv`` (or ``data.csv``) if present, else enumerate the
    folders; False -> always enumerate; a path -> that CSV.
    """

    name = NAME
    max_keypoints = 0
    bbox_source = "mask"
    flip_mode = "source"

    def __init__(self, root=None, image_size=240, pair_csv=None):
        root = dataset_root(NAME, root)
        self.base = dataset_folder(root, ["TSS_CVPR2016"], NAME)
        folders = _pair_folders(self.base)
        self.categories = tuple(sorted({object_class(s, p) for s, p in folders}))
        if pair_csv is None:
            found = [folder / n for folder in (root, self.base) for n in CSV_NAMES]
            pair_csv = next((p for p in found if p.is_file()), False)
        self.pair_csv = Path(pair_csv) if pair_csv else None
        if self.pair_csv:
            directed = self._from_csv(self.pair_csv)
        else:
            directed = [(s, p, d, read_flip(self.base / s / p)) for s, p in folders for d in (1, 2)]
        super().__init__([self._record(*row) for row in directed], image_size)

    def _from_csv(self, path: Path) -> list[tuple[str, str, int, int]]:
        _, rows = read_csv(path, ["imageA", "imageB", "flow_dir", "flip"], NAME)
        directed = []
        for line, row in rows:
            where = f"{path}, line {line}"
            d = parse_number(row["flow_dir"], f"{where}, column 'flow_dir'")
            flip = parse_number(row["flip"], f"{where}, column 'flip'")
            if d not in (1, 2) or flip not in (0, 1):
                raise DataError(f"{where}: flow_dir must be 1 or 2 and flip 0 or 1, got {d:g} and {flip:g}")
            image_A, image_B = Path(row["imageA"]), Path(row["imageB"])
            if image_B.name != f"image{int(d)}.png" or image_A.name != f"image{3 - int(d)}.png":
                raise DataError(
                    f"{where}: with flow_dir {d:g} the target (imageB) must be image{d:g}.png, the image the "
                    f"flow is defined on, and imageA the other one; got {image_A.name}, {image_B.name}"
                )
            if len(image_B.parts) < 3 or image_A.parent != image_B.parent:
                raise DataError(f"{where}: imageA and imageB must be <subset>/<pair>/imageN.png, one folder")
            directed.append((image_B.parts[-3], image_B.parts[-2], int(d), int(flip)))
        return directed

    def _record(self, subset: str, pair: str, d: int, flip: int) -> PairRecord:
        folder = self.base / subset / pair
        cls = object_class(subset, pair)
        if cls not in self.categories:  # a CSV row for a folder that enumeration did not see
            raise not_found(f"{folder}: pair folder listed in {self.pair_csv} not found", NAME)
        return PairRecord(
            path_A=folder / f"image{3 - d}.png",
            path_B=folder / f"image{d}.png",
            category=self.categories.index(cls),
            category_name=cls,
            name_A=f"{subset}/{pair}/image{3 - d}",
            name_B=f"{subset}/{pair}/image{d}",
            flip=flip,
            extra={"flip": flip, "subset": subset, "pair_name": f"{subset}/{pair}", "flow_dir": d},
        )

    def load_item(self, index: int) -> dict:
        rec = self.records[index]
        image_A, image_B = self.read_image(rec.path_A), self.read_image(rec.path_B)
        folder, d = rec.path_B.parent, rec.extra["flow_dir"]
        mask_A = load_mask(folder / f"mask{3 - d}.png", dataset=NAME)
        mask_B = load_mask(folder / f"mask{d}.png", dataset=NAME)
        flow = read_flo(folder / f"flow{d}.flo", NAME)
        for mask, image in ((mask_A, image_A), (mask_B, image_B)):
            if mask.shape[-2:] != image.shape[-2:]:
                raise DataError(f"{folder}: a mask of size {tuple(mask.shape[-2:])} for an image of "
                                f"size {tuple(image.shape[-2:])}")
        if flow.shape[:2] != image_B.shape[-2:]:
            raise DataError(f"{folder / f'flow{d}.flo'}: size {tuple(flow.shape[:2])} differs from "
                            f"image{d}.png's {tuple(image_B.shape[-2:])}")
        item = make_pair_item(self, index, rec, image_A, image_B, None, None)
        item.update(flow_gt=flow, mask_A=mask_A, mask_B=mask_B)
        item.update(bbox_A=mask_box(mask_A), bbox_B=mask_box(mask_B))
        return item


class TSSImages(ImageDataset):
    """image1 and image2 of every TSS pair folder with their masks; category = object class."""

    name = NAME
    has_masks = True

    def __init__(self, root=None, image_size=240):
        base = dataset_folder(dataset_root(NAME, root), ["TSS_CVPR2016"], NAME)
        folders = _pair_folders(base)
        self.categories = tuple(sorted({object_class(s, p) for s, p in folders}))
        records = []
        for subset, pair in folders:
            cls = object_class(subset, pair)
            for k in (1, 2):
                records.append(ImageRecord(
                    path=base / subset / pair / f"image{k}.png",
                    category=self.categories.index(cls),
                    category_name=cls,
                    name=f"{subset}/{pair}/image{k}",
                    mask_path=base / subset / pair / f"mask{k}.png",
                    extra={"subset": subset},
                ))
        super().__init__(records, image_size)
