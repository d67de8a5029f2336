"""Weizmann Horse database (Borenstein & Ullman, "Class-specific, top-down segmentation", ECCV 2002).

Layout (as distributed, read unchanged)::

    <root>/rgb/horseNNN.jpg             colour image
    <root>/figure_ground/horseNNN.jpg   its mask, JPEG (foreground = value > 127)

(``<root>/weizmann_horse_db/...`` is accepted too.) The RGB image and its mask differ in size but share
the aspect ratio: the RGB image is resized to the mask's size, which is the item's ``size`` and the
resolution at which co-segmentation is scored. One category, ``horse``.

Image items: see :mod:`.registry`; ``mask`` is always present.

Used by notebook 09 (evaluation).
"""

from __future__ import annotations

from macos_lite.data.imageio import DataError, load_mask, not_found
from macos_lite.data.locate import dataset_folder, dataset_root
from macos_lite.data.items import ImageDataset, ImageRecord, make_image_item
from macos_lite.geometry import resize

NAME = "weizmann-horse"
ASPECT_TOLERANCE = 0.05  # relative; the database's pairs differ by < 1%, a wrong pairing by far more


class WeizmannHorseImages(ImageDataset):
    """Every ``rgb/*.jpg`` (sorted) with its ``figure_ground`` mask; RGB resized to the mask's size."""

    name = NAME
    categories = ("horse",)
    has_masks = True

    def __init__(self, root=None, image_size=240):
        base = dataset_folder(dataset_root(NAME, root), ["rgb", "weizmann_horse_db/rgb"], NAME).parent
        images = sorted((base / "rgb").glob("*.jpg"))
        if not images:
            raise not_found(f"{base / 'rgb'}: no .jpg images", NAME)
        records = [
            ImageRecord(p, 0, "horse", p.stem, mask_path=base / "figure_ground" / p.name) for p in images
        ]
        super().__init__(records, image_size)

    def load_item(self, index: int) -> dict:
        rec = self.records[index]
        image = self.read_image(rec.path)
        mask = load_mask(rec.mask_path, dataset=NAME)
        (h, w), (mh, mw) = image.shape[-2:], mask.shape[-2:]
        if abs((w / h) / (mw / mh) - 1.0) > ASPECT_TOLERANCE:
            raise DataError(
                f"{rec.path} ({w}x{h}) and its mask {rec.mask_path} ({mw}x{mh}) differ in aspect ratio: "
                "they do not belong together"
            )
        return make_image_item(self, index, rec, resize(image, (mh, mw)), mask)
