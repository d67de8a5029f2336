"""The pre-training image pool: unlabelled real photographs for the strong-supervision warm start of G.

Pre-training (:mod:`macos_lite.pretrain`) needs single images and nothing else: it warps each one with a
random map and regresses that map. Many and varied real photographs generalise better than a few or than
procedural images, so the pool is usually larger than the weak training set. It must never contain the
images a model is evaluated on.

:func:`pretrain_pool` reads a pool specification:

* ``None``: the default -- the training set's own images, plus, for a real training set, the real
  photographs of :data:`EXTRA_POOL` that are available (found like any dataset with
  :func:`macos_lite.data.locate.find_dataset`: under the data root, ``$MACOS_LITE_SHARED_DATA``,
  ``$MACOS_LITE_DATA``). Benchmarks that are evaluated on (PF-WILLOW, PF-PASCAL, SPair-71k, TSS) are
  never added by default: their other images may be the evaluation pairs;
* a folder: every ``.jpg``/``.jpeg``/``.png`` file under it (recursively, sorted), one category;
* dataset names joined by '+', e.g. ``pf-willow+weizmann-horse+tss``: a name that is part of the training
  set stands for its training images (without held-out validation images), any other for that whole
  dataset, found with :func:`~macos_lite.data.locate.find_dataset`.

Taught in notebook 08 (training).
"""

from __future__ import annotations

from pathlib import Path

from macos_lite import paths
from macos_lite.data.imageio import not_found
from macos_lite.data.locate import find_dataset
from macos_lite.data.items import ImageDataset, ImageRecord
from macos_lite.data.registry import NAMES

EXTRA_POOL = ("weizmann-horse",)  # real photographs used by default; co-segmentation only, no keypoint benchmark
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class FolderImages(ImageDataset):
    """Every image file under a folder (recursively, sorted by path), all of category 0 (``"folder"``)."""

    name = "folder"
    categories = ("folder",)

    def __init__(self, folder, image_size=240):
        folder = Path(folder).expanduser()
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise not_found(f"{folder}: no .jpg/.jpeg/.png images for the pre-training pool", None)
        records = [ImageRecord(p, 0, "folder", str(p.relative_to(folder).with_suffix(""))) for p in files]
        super().__init__(records, image_size)


def pool_sources(spec: str | None, training_names: list[str], data_root=None) -> list[tuple[str, object]]:
    """What a pool specification stands for: ``[(name, root or None), ...]``.

    ``(name, None)`` means "the training part called name"; ``("folder", path)`` a folder; otherwise
    ``(dataset name, its folder)``. Unavailable default extras are left out; a named dataset that cannot be
    found raises :class:`~macos_lite.data.imageio.DataNotFoundError` (with the download command).
    """
    if spec is None:
        out = [(n, None) for n in training_names]
        if any(n != "synthetic" for n in training_names):
            for extra in EXTRA_POOL:
                if extra not in training_names:
                    root = find_dataset(extra, data_root)
                    if root is not None:
                        out.append((extra, root))
        return out
    if Path(spec).expanduser().is_dir() and spec not in NAMES:
        return [("folder", Path(spec).expanduser())]
    out = []
    for name in (n.strip() for n in spec.split("+") if n.strip()):
        if name in training_names:
            out.append((name, None))
        elif name not in NAMES or name == "synthetic":
            raise ValueError(f"pre-training images {spec!r}: {name!r} is neither a folder nor a real dataset name "
                             f"({', '.join(n for n in NAMES if n != 'synthetic')})")
        else:
            root = find_dataset(name, data_root)
            if root is None:
                raise not_found(f"pre-training images: dataset {name} not found under {data_root} or "
                                f"${paths.SHARED_DATA_ENV} / ${paths.DATA_ENV}", name)
            out.append((name, root))
    return out
