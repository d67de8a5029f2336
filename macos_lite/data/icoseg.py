"""iCoseg (Batra, Kowdle, Parikh, Luo, Chen, "iCoseg: Interactive co-segmentation with intelligent scribble
guidance", CVPR 2010): groups of photographs of one object or scene, each image with a foreground mask.

Layout (as distributed, read unchanged)::

    <root>/images/<group>/<name>.jpg         colour image
    <root>/ground_truth/<group>/<name>.png   its mask, same size (foreground = value > 0)

``<root>`` is the folder holding ``images/`` and ``ground_truth/``; given a folder above it, the loader
looks in ``dataset_public/`` (the official archive's folder), ``icoseg-dev/`` and ``icoseg/`` (and in
``dataset_public/`` inside those two), in that order (:data:`LAYOUT_FOLDERS`).

A *group* is one category: an item's ``category_name`` is its group's folder name, so co-localisation and
co-segmentation partners are drawn within a group. Image items: see :mod:`.items`; ``mask`` is always
present and the item adds ``path`` (the image file, a string).

Splits (the dataset has none of its own): ``split=None`` or ``"all"`` is every group; ``"train"`` and
``"test"`` follow one fixed rule on the group folders sorted by name (:data:`TEST_GROUP_EVERY`,
:data:`TEST_GROUP_OFFSET`): the group at 0-based sorted position ``i`` is a test group when
``i % 3 == 2`` (positions 2, 5, 8, ...), a training group otherwise. The positions count every group
folder of ``images/``, also one skipped below, so a defect in one group never moves another between splits.

Defects and what is done (warnings name what was left out):

* an image without a mask: skipped, their count warned;
* a mask without an image: ignored, their count warned;
* a group with fewer than 2 images (with masks): skipped with a warning naming it -- co-segmentation needs
  at least two images of the object;
* a mask of another size than its image: :class:`~.imageio.DataError` naming both files (sizes read from
  the file headers when the dataset is built);
* no ``images/`` + ``ground_truth/`` pair under the root, or no usable image: :class:`~.imageio.DataNotFoundError`
  (a ``ValueError``) naming the folder and the expected layout.

Used by the co-segmentation evaluation (:mod:`macos_lite.evaluation`): P and J per group, then the mean
over groups. Listed in notebook 00 (setup and data).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image

from macos_lite.data.imageio import DataError, DataNotFoundError, download_hint
from macos_lite.data.items import ImageDataset, ImageRecord
from macos_lite.data.locate import dataset_root

NAME = "icoseg"
IMAGES, MASKS = "images", "ground_truth"
LAYOUT_FOLDERS = ("", "dataset_public", "icoseg-dev", "icoseg-dev/dataset_public", "icoseg", "icoseg/dataset_public")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIX = ".png"
MIN_GROUP_SIZE = 2  # co-segmentation needs the object in at least two images
# the split rule: the group at sorted position i is a test group when i % TEST_GROUP_EVERY == TEST_GROUP_OFFSET
TEST_GROUP_EVERY, TEST_GROUP_OFFSET = 3, 2
SPLITS = ("all", "train", "test")
EXPECTED_LAYOUT = f"{IMAGES}/<group>/<name>.jpg and {MASKS}/<group>/<name>.png"


def split_groups(groups, split: str | None) -> list[str]:
    """The groups of ``split`` among ``groups`` (any order; the rule uses their sorted order).

    ``None``/``"all"``: every group; ``"test"``: sorted positions i with ``i % 3 == 2``; ``"train"``: the
    others. Returned sorted by name. Raises ``ValueError`` for another split.

    Example:
        >>> split_groups(["e", "d", "c", "b", "a"], "test")
        ['c']
    """
    split = "all" if split is None else split
    if split not in SPLITS:
        raise ValueError(f"{NAME}: unknown split {split!r}; the splits are {', '.join(SPLITS)} (or None)")
    ordered = sorted(groups)
    if split == "all":
        return ordered
    test = split == "test"
    return [g for i, g in enumerate(ordered) if (i % TEST_GROUP_EVERY == TEST_GROUP_OFFSET) == test]


def find_layout(root) -> Path:
    """The folder under ``root`` (itself or one of :data:`LAYOUT_FOLDERS`) that holds ``images/`` and
    ``ground_truth/``. Raises :class:`DataNotFoundError` naming ``root`` and the expected layout."""
    root = Path(root).expanduser()
    for sub in LAYOUT_FOLDERS:
        base = root / sub if sub else root
        if (base / IMAGES).is_dir() and (base / MASKS).is_dir():
            return base
    what = "holds no iCoseg copy" if root.is_dir() else "does not exist"
    raise DataNotFoundError(
        f"{NAME}: {root} {what}: expected {EXPECTED_LAYOUT} in it or in one of its folders "
        f"{', '.join(s + '/' for s in LAYOUT_FOLDERS if s)}. To get it, {download_hint(NAME)} "
        "(or pass root= / --data-root pointing to the folder that contains images/ and ground_truth/).")


def scan(base: Path) -> tuple[dict[str, list[tuple[Path, Path]]], list[str]]:
    """``({group: [(image, mask), ...] sorted by name}, warnings)`` of an iCoseg folder ``base`` (holding
    ``images/`` and ``ground_truth/``): images without a mask and masks without an image are left out,
    groups keep their images even when fewer than :data:`MIN_GROUP_SIZE` (the caller decides)."""
    groups, notes = {}, []
    no_mask, no_image = [], []
    for folder in sorted(p for p in (base / IMAGES).iterdir() if p.is_dir()):
        images = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
        mask_dir = base / MASKS / folder.name
        masks = {p.stem: p for p in sorted(mask_dir.glob(f"*{MASK_SUFFIX}"))} if mask_dir.is_dir() else {}
        no_mask += [images[s] for s in images if s not in masks]
        no_image += [masks[s] for s in masks if s not in images]
        groups[folder.name] = [(images[s], masks[s]) for s in sorted(images) if s in masks]
    for folder in sorted(p for p in (base / MASKS).iterdir() if p.is_dir() and not (base / IMAGES / p.name).is_dir()):
        no_image += sorted(folder.glob(f"*{MASK_SUFFIX}"))
    if no_mask:
        notes.append(f"{NAME}: {len(no_mask)} image(s) without a mask in {base / MASKS} skipped "
                     f"(first: {no_mask[0]})")
    if no_image:
        notes.append(f"{NAME}: {len(no_image)} mask(s) without an image in {base / IMAGES} ignored "
                     f"(first: {no_image[0]})")
    return groups, notes


def _check_sizes(image: Path, mask: Path) -> None:
    """Refuse a mask whose stored size differs from its image's (file headers only, no decoding)."""
    try:
        with Image.open(image) as a, Image.open(mask) as b:
            size_image, size_mask = a.size, b.size
    except OSError as err:
        raise DataError(f"{image} or its mask {mask} cannot be read ({err}); get the file again") from err
    if size_image != size_mask:
        raise DataError(f"the mask {mask} is {size_mask[0]} x {size_mask[1]} pixels (W x H) but its image {image} "
                        f"is {size_image[0]} x {size_image[1]}: they must be the same size. Replace the mask by the "
                        "one of the official archive, or remove both files")


class ICosegImages(ImageDataset):
    """The images of the iCoseg groups of ``split`` (sorted by group, then name), each with its mask;
    category = group. ``groups`` lists the groups in category order (the same as ``categories``)."""

    name = NAME
    has_masks = True

    def __init__(self, root=None, image_size=240, split: str | None = None):
        base = find_layout(dataset_root(NAME, root))
        found, notes = scan(base)
        wanted = split_groups(found, split)
        kept = []
        for group in wanted:
            if len(found[group]) < MIN_GROUP_SIZE:
                notes.append(f"{NAME}: group {group} has {len(found[group])} image(s) with a mask, fewer than the "
                             f"{MIN_GROUP_SIZE} co-segmentation needs: skipped")
            else:
                kept.append(group)
        for note in notes:
            warnings.warn(note, stacklevel=2)
        if not kept:
            raise DataNotFoundError(
                f"{NAME}: no group with at least {MIN_GROUP_SIZE} images and masks in {base} (split {split!r}); "
                f"expected {EXPECTED_LAYOUT}. Check the path, or {download_hint(NAME)}.")
        self.base, self.split, self.warnings = base, split or "all", notes
        self.groups = self.categories = tuple(kept)
        records = []
        for c, group in enumerate(kept):
            for image, mask in found[group]:
                _check_sizes(image, mask)
                records.append(ImageRecord(image, c, group, f"{group}/{image.stem}", mask_path=mask,
                                           extra={"path": str(image)}))
        super().__init__(records, image_size)


def check_copy(folder) -> str:
    """What a placed copy under ``folder`` holds, as one line (``macos-lite download icoseg`` prints it):
    groups, images, masks, and the defects :class:`ICosegImages` would skip. Raises
    :class:`DataNotFoundError` when there is no ``images/`` + ``ground_truth/`` pair or no image at all."""
    base = find_layout(folder)
    groups, notes = scan(base)
    images = sum(1 for g in (base / IMAGES).iterdir() if g.is_dir()
                 for p in g.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    masks = sum(1 for g in (base / MASKS).iterdir() if g.is_dir() for _ in g.glob(f"*{MASK_SUFFIX}"))
    if not images:
        raise DataNotFoundError(f"{NAME}: {base / IMAGES} holds no image; expected {EXPECTED_LAYOUT}")
    small = [g for g, items in groups.items() if len(items) < MIN_GROUP_SIZE]
    if small:
        notes.append(f"{len(small)} group(s) with fewer than {MIN_GROUP_SIZE} images with masks, skipped when "
                     f"loading: {', '.join(small)}")
    usable = len(groups) - len(small)
    tests = len([g for g in split_groups(groups, "test") if g not in small])
    line = (f"{base}: {len(groups)} groups, {images} images, {masks} masks "
            f"({usable} usable groups: {usable - tests} train, {tests} test)")
    return "; ".join([line, *notes])
