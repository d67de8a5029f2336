"""Tests of the embedded synthetic dataset (macos_lite.data.synthetic).

Properties are checked against independent references: bounds and dilation from scipy, the
corner-aligned pixel convention, colours of rendered landmarks, a least-squares affine fit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch.utils.data import default_collate

from macos_lite.data import synthetic
from macos_lite.data.synthetic import CATEGORIES, KEYPOINT_NAMES, NUM_KEYPOINTS, SyntheticImages

torch.set_num_threads(2)


def _items(ds):
    return [ds[i] for i in range(len(ds))]


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in ("image", "mask", "keypoints", "visible"))


def test_categories_have_ten_distinct_named_keypoints():
    assert len(CATEGORIES) >= 4 and len(set(CATEGORIES)) == len(CATEGORIES)
    assert set(KEYPOINT_NAMES) == set(CATEGORIES)
    assert NUM_KEYPOINTS == 10
    for names in KEYPOINT_NAMES.values():
        assert len(names) == NUM_KEYPOINTS and len(set(names)) == NUM_KEYPOINTS
        assert all(isinstance(n, str) and n for n in names)


@pytest.mark.parametrize("size", [64, 97])
def test_item_shapes_dtypes_and_ranges(size):
    ds = SyntheticImages(num_images=10, image_size=size, seed=3)
    for i, item in enumerate(_items(ds)):
        assert item["image"].shape == (3, size, size) and item["image"].dtype == torch.float32
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert item["mask"].shape == (1, size, size) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) == {0.0, 1.0}  # binary and never empty
        assert item["keypoints"].shape == (NUM_KEYPOINTS, 2) and item["keypoints"].dtype == torch.float32
        assert torch.isfinite(item["keypoints"]).all()
        assert item["visible"].shape == (NUM_KEYPOINTS,) and item["visible"].dtype == torch.bool
        inside = ((item["keypoints"] >= 0) & (item["keypoints"] <= size - 1)).all(dim=1)
        assert torch.equal(item["visible"], inside)
        assert item["category"] == ds.labels[i] == i % len(CATEGORIES)
        assert item["category_name"] == ds.category_names[item["category"]]
        assert item["index"] == i
        assert torch.equal(item["size"], torch.tensor([size, size]))


def test_labels_are_balanced_and_known_without_rendering(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("labels must not render images")

    monkeypatch.setattr(synthetic, "render", fail)
    ds = SyntheticImages(num_images=23, categories=("fish", "car", "bottle"))
    assert ds.category_names == ("fish", "car", "bottle")
    assert ds.labels == [i % 3 for i in range(23)]
    counts = np.bincount(ds.labels)
    assert counts.max() - counts.min() <= 1


def test_same_seed_gives_identical_tensors_other_seed_or_split_differ():
    a = _items(SyntheticImages(num_images=5, image_size=64, seed=11))
    b = _items(SyntheticImages(num_images=5, image_size=64, seed=11))
    assert all(_same(x, y) for x, y in zip(a, b))
    for other in (SyntheticImages(num_images=5, image_size=64, seed=12),
                  SyntheticImages(num_images=5, image_size=64, seed=11, split="val"),
                  SyntheticImages(num_images=5, image_size=64, seed=11, split="test")):
        for x, y in zip(a, _items(other)):
            assert x["category"] == y["category"]
            assert not torch.equal(x["image"], y["image"])
            assert not torch.allclose(x["keypoints"], y["keypoints"], atol=1.0)


def test_rendering_does_not_depend_on_order_or_dataset_length():
    first = SyntheticImages(num_images=10, image_size=64, seed=5)[9]
    ds = SyntheticImages(num_images=50, image_size=64, seed=5)
    for i in reversed(range(10)):
        ds[i]
    assert _same(first, ds[9])
    assert _same(first, ds[9])  # from the cache


def test_returned_tensors_are_copies():
    ds = SyntheticImages(num_images=2, image_size=64)
    item = ds[0]
    reference = {k: item[k].clone() for k in ("image", "mask", "keypoints", "visible")}
    for k in reference:
        item[k].zero_()
    assert _same(reference, ds[0])


@pytest.mark.parametrize("size", [64, 128])
def test_visible_keypoints_lie_in_the_mask(size):
    ds = SyntheticImages(num_images=25, image_size=size, seed=1)
    for item in _items(ds):
        # the pixel grid can put a keypoint on the thin tip of a part just outside: allow 1 px
        mask = ndimage.binary_dilation(item["mask"][0].numpy() > 0.5, structure=np.ones((3, 3)))
        for (x, y), v in zip(item["keypoints"].tolist(), item["visible"].tolist()):
            if v:
                assert mask[round(y), round(x)], (item["category_name"], x, y)


def test_same_scene_at_every_resolution():
    small = _items(SyntheticImages(num_images=10, image_size=64, seed=2))
    large = _items(SyntheticImages(num_images=10, image_size=128, seed=2))
    axis = torch.linspace(-1, 1, 64)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1)[None]  # small pixel centres
    for s, l in zip(small, large):
        # corner-aligned pixels: x_128 = x_64 * 127 / 63
        assert torch.allclose(l["keypoints"], s["keypoints"] * 127 / 63, atol=1e-3)
        assert torch.equal(l["visible"], s["visible"])
        # the large mask sampled at the small pixel centres matches the small mask
        resampled = F.grid_sample(l["mask"][None], grid, mode="nearest", align_corners=True)[0]
        inter = (resampled * s["mask"]).sum()
        union = ((resampled + s["mask"]) > 0).sum()
        assert inter / union > 0.9


def test_keypoints_land_on_their_rendered_landmarks():
    # fish "eye" is the centre of a black pupil; car "taillight" the centre of a red light
    fish = SyntheticImages(num_images=6, image_size=240, seed=4, categories=("fish",))
    car = SyntheticImages(num_images=6, image_size=240, seed=4, categories=("car",))
    eye = KEYPOINT_NAMES["fish"].index("eye")
    tail = KEYPOINT_NAMES["car"].index("taillight")
    checked = 0
    for item, k, is_right in [(f, eye, lambda rgb: rgb.max() < 0.3) for f in _items(fish)] + \
                             [(c, tail, lambda rgb: rgb[0] - max(rgb[1], rgb[2]) > 0.3) for c in _items(car)]:
        if item["visible"][k]:
            x, y = item["keypoints"][k].round().long().tolist()
            assert is_right(item["image"][:, y, x]), (item["category_name"], item["image"][:, y, x])
            checked += 1
    assert checked >= 8


def test_some_objects_are_truncated_by_the_border():
    ds = SyntheticImages(num_images=100, image_size=48, seed=0)
    hidden = [item for item in _items(ds) if not item["visible"].all()]
    assert 0 < len(hidden) < 50
    for item in hidden:
        outside = ((item["keypoints"] < 0) | (item["keypoints"] > 47)).any(dim=1)
        assert torch.equal(outside, ~item["visible"])


def test_background_is_cluttered_and_objects_stand_out():
    contrast = []
    for item in _items(SyntheticImages(num_images=20, image_size=96, seed=6)):
        image = item["image"].permute(1, 2, 0).numpy()
        mask = item["mask"][0].numpy() > 0.5
        near = ndimage.binary_dilation(mask, iterations=4)
        background = image[~near]
        assert background.std(axis=0).mean() > 0.02  # not a flat backdrop
        contrast.append(np.abs(image[mask].mean(axis=0) - image[near & ~mask].mean(axis=0)).sum())
    assert np.median(contrast) > 0.2


def test_same_category_pairs_need_a_transform():
    """Identity matching scores poorly; a least-squares affine fit (an upper bound) scores well."""
    size, n_cat = 64, len(CATEGORIES)
    ds = SyntheticImages(num_images=80, image_size=size, seed=9, split="val")
    identity, affine, residuals, total = 0, 0, [], 0
    for a in range(0, 80 - n_cat):
        if (a // n_cat) % 2:
            continue
        A, B = ds[a], ds[a + n_cat]  # same category
        assert A["category"] == B["category"]
        both = (A["visible"] & B["visible"]).numpy()
        pa = A["keypoints"].numpy()[both].astype(np.float64)
        pb = B["keypoints"].numpy()[both].astype(np.float64)
        design = np.concatenate([pb, np.ones((len(pb), 1))], axis=1)
        fit, *_ = np.linalg.lstsq(design, pa, rcond=None)
        err = np.linalg.norm(design @ fit - pa, axis=1)
        identity += (np.linalg.norm(pa - pb, axis=1) <= 0.1 * size).sum()
        affine += (err <= 0.1 * size).sum()
        residuals.extend(err)
        total += both.sum()
    assert identity / total < 0.35
    assert affine / total > 0.8
    assert np.mean(residuals) > 0.2  # instances differ by more than an affine map


def test_mixed_categories_collate():
    ds = SyntheticImages(num_images=5, image_size=64)
    batch = default_collate(_items(ds))
    assert batch["image"].shape == (5, 3, 64, 64)
    assert batch["keypoints"].shape == (5, NUM_KEYPOINTS, 2)
    assert batch["category_name"] == list(CATEGORIES)


def test_negative_and_numpy_indices_and_sizes():
    ds = SyntheticImages(num_images=np.int64(4), image_size=np.int64(64))
    assert _same(ds[-1], ds[3]) and ds[-1]["index"] == 3
    assert _same(ds[np.int64(2)], ds[2])


@pytest.mark.parametrize("kwargs, match", [
    (dict(categories=("car", "unicorn")), "unknown category 'unicorn'.*car, plane"),
    (dict(categories=("car", "car")), "distinct"),
    (dict(categories=()), "distinct"),
    (dict(split="training"), "train, val, test"),
    (dict(image_size=16), ">= 32"),
    (dict(image_size=64.0), ">= 32"),
    (dict(num_images=0), ">= 1"),
    (dict(seed=-1), "non-negative"),
])
def test_bad_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticImages(**kwargs)


def test_bad_index_is_rejected():
    ds = SyntheticImages(num_images=3, image_size=64)
    with pytest.raises(IndexError, match="0..2"):
        ds[3]
    with pytest.raises(IndexError, match="out of range"):
        ds[-4]
    with pytest.raises(TypeError, match="integer"):
        ds["0"]
