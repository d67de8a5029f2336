"""In-memory image cache for training: decode and resize every image once.

Benchmark images are JPEG/PNG files of varied sizes; decoding and resizing them at every step would
starve a GPU. :class:`CachedImages` decodes each image of an image dataset once (in the main process,
before DataLoader workers fork and share the memory), keeps it as ``uint8`` at the training size
(240 x 240 x 3 = 173 kB per image) and serves image items without touching the disk again.

Used by notebook 08 (training).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils.data import Dataset


class CachedImages(Dataset):
    """The ``image``/``category`` part of an image dataset's items, decoded once and kept in memory.

    Items: ``{"image" (3, S, S) float in [0, 1], "category", "index"}`` -- what training views need
    (masks and other annotations are deliberately dropped: weak supervision).
    """

    def __init__(self, images, threads: int = 4, progress: bool = False):
        self.labels = list(images.labels)
        self.categories = getattr(images, "categories", None) or getattr(images, "category_names", None)
        self.names = [rec.name for rec in getattr(images, "records", [])]  # image names, when the dataset has them
        indices = range(len(images))
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc="caching images", unit="img")
        with ThreadPoolExecutor(max(1, threads)) as pool:  # decoding releases the GIL
            items = list(pool.map(lambda i: images[i], indices))
        self._images = [(it["image"].clamp(0, 1) * 255).round().to(torch.uint8) for it in items]
        self._categories = [int(it["category"]) for it in items]

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self._images[index].float() / 255, "category": self._categories[index], "index": index}


class JoinedImages(Dataset):
    """Several image datasets as one, categories renumbered so that they stay distinct."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        self.labels, self.offsets, self._where = [], [], []
        offset = 0
        for d, ds in enumerate(self.datasets):
            labels = list(ds.labels)
            self.offsets.append(offset)
            self.labels += [offset + c for c in labels]
            self._where += [(d, i) for i in range(len(labels))]
            offset += (max(labels) + 1) if labels else 0

    def __len__(self) -> int:
        return len(self._where)

    def __getitem__(self, index: int) -> dict:
        d, i = self._where[index]
        item = dict(self.datasets[d][i])
        item["category"] = self.offsets[d] + int(item["category"])
        item["index"] = index
        return item
