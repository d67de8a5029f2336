"""Weak-supervision views: same-category tuples, determinism, epochs, augmentation, no label leakage."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from macos_lite.data.imageio import DataError
from macos_lite.data.items import PairDataset, PairRecord
from macos_lite.data.registry import SyntheticPairs, get_pairs
from macos_lite.data.views import PairList, WeakTuples, random_crop_box

TRAIN_KEYS = {"images", "category", "indices"}
PAIR_LIST_KEYS = TRAIN_KEYS | {"flips"}  # which images of the tuple were mirrored


class TinyImages(torch.utils.data.Dataset):
    """Image items whose pixels encode the image index; annotations present to test that none leak."""

    def __init__(self, labels, size=8):
        self.labels = list(labels)
        self.size = size

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        s = self.size
        return {
            "image": torch.full((3, s, s), i / 100.0),
            "mask": torch.ones(1, s, s),
            "keypoints": torch.zeros(10, 2),
            "visible": torch.ones(10, dtype=torch.bool),
            "category": self.labels[i],
            "category_name": f"c{self.labels[i]}",
            "index": i,
            "size": torch.tensor([s, s]),
        }


LABELS = [0, 1, 0, 2, 1, 0, 0, 1, 2, 0, 3]  # category 3 has a single image


def draw(view):
    return [view.tuple_indices(i) for i in range(len(view))]


@pytest.mark.parametrize("tuple_size", [2, 3])
def test_tuples_share_one_category(tuple_size):
    view = WeakTuples(TinyImages(LABELS), tuple_size=tuple_size, seed=3)
    assert len(view) == len(LABELS)
    firsts = []
    for i in range(len(view)):
        item = view[i]
        assert set(item) == TRAIN_KEYS  # no mask, keypoints, boxes: weak supervision
        indices = item["indices"].tolist()
        assert item["images"].shape == (tuple_size, 3, 8, 8) and len(indices) == tuple_size
        assert {LABELS[j] for j in indices} == {item["category"]}
        assert torch.allclose(item["images"][:, 0, 0, 0], torch.tensor(indices) / 100.0)
        if LABELS.count(item["category"]) >= tuple_size:
            assert len(set(indices)) == tuple_size
        firsts.append(indices[0])
    assert sorted(firsts) == list(range(len(LABELS)))  # every image leads one tuple per epoch


def test_small_category_repeats_its_image():
    view = WeakTuples(TinyImages(LABELS), tuple_size=3)
    i = next(i for i in range(len(view)) if view.tuple_indices(i)[0] == 10)
    assert view.tuple_indices(i) == [10, 10, 10]


def test_deterministic_and_order_independent():
    a = WeakTuples(TinyImages(LABELS), tuple_size=3, seed=7, num_tuples=25)
    b = WeakTuples(TinyImages(LABELS), tuple_size=3, seed=7, num_tuples=25)
    forward = draw(a)
    backward = [b.tuple_indices(i) for i in reversed(range(len(b)))][::-1]
    assert forward == backward
    assert draw(WeakTuples(TinyImages(LABELS), tuple_size=3, seed=8, num_tuples=25)) != forward


def test_set_epoch_changes_the_draw_and_comes_back():
    view = WeakTuples(TinyImages(LABELS), seed=1)
    epoch0 = draw(view)
    view.set_epoch(1)
    assert draw(view) != epoch0
    view.set_epoch(0)
    assert draw(view) == epoch0


def test_dataloader_workers_do_not_change_the_draw():
    view = WeakTuples(TinyImages(LABELS), seed=5, augment=True)
    view.set_epoch(2)
    direct = torch.stack([view[i]["images"] for i in range(len(view))])
    loaded = torch.cat([b["images"] for b in DataLoader(view, batch_size=4, num_workers=2)])
    assert torch.equal(direct, loaded)


def test_labels_must_match_items():
    class Lying(TinyImages):
        def __getitem__(self, i):
            return {**super().__getitem__(i), "category": 9}

    with pytest.raises(DataError, match="labels"):
        WeakTuples(Lying(LABELS))[0]


@pytest.mark.parametrize("height,width", [(100, 60), (10, 10), (7, 5), (2, 3)])
def test_crop_box_bounds(height, width):
    rng = np.random.default_rng(0)
    boxes = np.array([random_crop_box(height, width, rng) for _ in range(300)])
    top, bottom, left, right = boxes.T
    assert (top >= 0).all() and (top < height / 4).all()
    assert (bottom >= 3 * height / 4).all() and (bottom <= height).all()
    assert (left >= 0).all() and (left < width / 4).all()
    assert (right >= 3 * width / 4).all() and (right <= width).all()
    if height >= 8:
        assert (bottom < height).all() and len(set(top)) > 1 and len(set(bottom)) > 1


def test_augmented_tuples_keep_shapes_and_are_reproducible():
    images = TinyImages(LABELS, size=16)
    a, b = WeakTuples(images, seed=2, augment=True), WeakTuples(images, seed=2, augment=True)
    assert a[4]["images"].shape == (2, 3, 16, 16)
    assert torch.equal(a[4]["images"], b[4]["images"])


# ---------------------------------------------------------------------------------------------------------
# PairList: a training pair list with flip flags
# ---------------------------------------------------------------------------------------------------------

def make_pairs(tmp_path, flip_mode):
    """Four images of two classes; the left half of each image is dark, the right half bright."""
    paths = []
    for k in range(4):
        array = np.zeros((20, 30, 3), dtype=np.uint8)
        array[:, 15:] = 250
        array[0, 0] = k  # a mark to tell the images apart
        paths.append(tmp_path / f"im{k}.png")
        Image.fromarray(array).save(paths[-1])

    class Pairs(PairDataset):
        name = "fake"

    Pairs.flip_mode = flip_mode
    cats = [0, 0, 0, 1]
    records = [
        PairRecord(paths[a], paths[b], cats[a], f"c{cats[a]}", f"im{a}", f"im{b}",
                   kps_A=np.zeros((1, 2)), kps_B=np.zeros((1, 2)), flip=flip)
        for a, b, flip in ((0, 1, 0), (1, 0, 1), (3, 3, 1), (2, 0, 0))
    ]
    return Pairs(records, image_size=12)


def left_is_dark(image):
    return image[:, :, :4].mean() < image[:, :, -4:].mean()


def test_pair_list_applies_flip_to_both_images(tmp_path):
    view = PairList(make_pairs(tmp_path, "both"))
    plain, flipped = view[0], view[1]
    assert set(plain) == PAIR_LIST_KEYS and plain["images"].shape == (2, 3, 12, 12)
    assert plain["flips"].tolist() == [False, False] and flipped["flips"].tolist() == [True, True]
    assert view.image_paths[plain["indices"][0]].name == "im0.png"
    assert all(left_is_dark(im) for im in plain["images"])
    assert not any(left_is_dark(im) for im in flipped["images"])


def test_pair_list_source_flip_mirrors_only_A(tmp_path):
    item = PairList(make_pairs(tmp_path, "source"))[1]
    flipped = item["images"]
    assert not left_is_dark(flipped[0]) and left_is_dark(flipped[1])
    assert item["flips"].tolist() == [True, False]
    unflipped = PairList(make_pairs(tmp_path, "source"), use_flip=False)[1]["images"]
    assert all(left_is_dark(im) for im in unflipped)


def test_pair_list_triplets_and_augmentation(tmp_path):
    view = PairList(make_pairs(tmp_path, "both"), tuple_size=3, augment=True, seed=4)
    for i in range(len(view)):
        item = view[i]
        assert item["images"].shape == (3, 3, 12, 12) and set(item) == PAIR_LIST_KEYS
        labels = [view.image_labels[j] for j in item["indices"].tolist()]
        assert labels == [item["category"]] * 3
    assert view[0]["indices"].tolist() == [0, 1, 3]  # im2: the only other image of class 0 in the list
    assert view[2]["indices"].tolist() == [2, 2, 2]  # class 1 has one image
    again = PairList(make_pairs(tmp_path, "both"), 3, seed=4, augment=True)
    assert torch.equal(view[1]["images"], again[1]["images"])


def test_pair_list_error_names_the_pair(tmp_path):
    pairs = make_pairs(tmp_path, "both")
    (tmp_path / "im1.png").write_bytes(b"broken")
    with pytest.raises(DataError, match=r"training pair 0 \(im0 -> im1\).*im1\.png"):
        PairList(pairs)[0]


# ---------------------------------------------------------------------------------------------------------
# Synthetic pairs (built from any image set with the synthetic item keys)
# ---------------------------------------------------------------------------------------------------------

def test_synthetic_pairs_same_category_and_keys():
    class Keyed(TinyImages):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            item["keypoints"] = torch.arange(20.0).reshape(10, 2) + i
            item["visible"] = torch.arange(10) != i % 10
            return item

    pairs = SyntheticPairs(Keyed(LABELS), seed=1)
    assert pairs.pairs == SyntheticPairs(Keyed(LABELS), seed=1).pairs and len(pairs) == len(LABELS)
    for i in range(len(pairs)):
        a, b = pairs.pairs[i]
        assert LABELS[a] == LABELS[b] and b == i and (a != b or LABELS.count(LABELS[b]) == 1)
    item = pairs[0]
    a = pairs.pairs[0][0]
    assert item["kps_valid"].sum() == 8 and item["kps_A"][1].tolist() == [2.0 + a, 3.0 + a]
    assert item["bbox_B"].tolist() == [2.0, 3.0, 18.0, 19.0]  # visible keypoints 1..9 of image 0
    assert {"image_A", "size_A", "category_name", "name_A", "mask_A", "mask_B"} <= set(item)


def test_synthetic_images_and_pairs():
    synthetic = pytest.importorskip("macos_lite.data.synthetic", reason="the synthetic dataset is not built")
    images = synthetic.SyntheticImages(num_images=6, image_size=32, seed=0, split="train")
    item = WeakTuples(images, tuple_size=3)[0]
    assert item["images"].shape == (3, 3, 32, 32) and set(item) == TRAIN_KEYS
    assert len({images.labels[j] for j in item["indices"].tolist()}) == 1
    pairs = get_pairs("synthetic", split="test", image_size=32, num_images=6, num_pairs=4)
    pair = pairs[3]
    assert len(pairs) == 4 and pairs.categories == images.category_names
    assert pair["image_A"].shape == (3, 32, 32) and pair["kps_A"].shape == (10, 2)
    assert pair["category_name"] == pairs.categories[pair["category"]]
