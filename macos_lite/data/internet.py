"""Internet co-segmentation dataset (Rubinstein, Joulin, Kopf, Liu, "Unsupervised joint object discovery
and segmentation in internet images", CVPR 2013).

Official layout (``ObjectDiscovery-data.zip``, read unchanged)::

    <root>/Data/{Airplane100,Car100,Horse100}/<image>.jpg
    <root>/Data/<subset>/GroundTruth/<image>.png        binary mask (foreground = value > 0)

The benchmark uses the 100-image subsets (the full ``Airplane``, ``Car``, ``Horse`` folders can be chosen
with ``subsets=``). Some images are "noise" images that do not show the object: their ground truth is
empty. They are kept (``noise_images()`` lists them): precision P counts them, and the common Jaccard code
skips them, so the evaluator must state its choice.

Image items: see :mod:`.registry`; ``mask`` is always present, ``category`` is airplane, car or horse.

Used by notebook 09 (evaluation).
"""

from __future__ import annotations

from macos_lite.data.imageio import load_mask, not_found
from macos_lite.data.locate import dataset_folder, dataset_root
from macos_lite.data.items import ImageDataset, ImageRecord

NAME = "internet"
SUBSETS = ("Airplane100", "Car100", "Horse100")


class InternetImages(ImageDataset):
    """Images of the chosen subsets with their masks, sorted by subset then name."""

    name = NAME
    has_masks = True

    def __init__(self, root=None, image_size=240, subsets=SUBSETS):
        data = dataset_folder(dataset_root(NAME, root), ["Data", "ObjectDiscovery-data/Data"], NAME)
        self.categories = tuple(sorted({s.rstrip("0123456789").lower() for s in subsets}))
        records = []
        for subset in subsets:
            folder = data / subset
            images = sorted(folder.glob("*.jpg"))
            if not images:
                raise not_found(f"{folder}: no .jpg images", NAME)
            cls = subset.rstrip("0123456789").lower()
            records += [
                ImageRecord(
                    path=p,
                    category=self.categories.index(cls),
                    category_name=cls,
                    name=f"{subset}/{p.stem}",
                    mask_path=folder / "GroundTruth" / f"{p.stem}.png",
                )
                for p in images
            ]
        super().__init__(records, image_size)

    def noise_images(self) -> list[int]:
        """Indices of the images whose ground truth is empty (reads every mask)."""
        return [i for i, rec in enumerate(self.records) if load_mask(rec.mask_path, dataset=NAME).sum() == 0]
