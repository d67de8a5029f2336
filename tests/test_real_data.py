"""Loaders on the real development data (PF-WILLOW subset, TSS kit samples, Weizmann Horse subset).

Needs the folder named by env MACOS_LITE_SHARED_DATA (the CI sets it); skipped elsewhere.
"""

import numpy as np
import pytest
import scipy.io
import torch

from macos_lite import paths
from macos_lite.data.registry import get_images, get_pairs

SHARED = paths.shared_data_root()
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(SHARED is None, reason="no real data: set MACOS_LITE_SHARED_DATA to its folder"),
]
WILLOW_CLASSES = ["car(G)", "car(M)", "motorbike(G)", "motorbike(M)", "winebottle(M)"]


@pytest.fixture(scope="module")
def willow():
    return get_pairs("pf-willow", root=SHARED / "pf-willow-dev", image_size=64)


@pytest.fixture(scope="module")
def tss():
    pairs = get_pairs("tss", root=SHARED / "tss-sample", image_size=64)
    return [pairs[i] for i in range(len(pairs))]


def test_pf_willow_all_ordered_pairs(willow):
    assert len(willow) == 5 * 90
    names = [r.category_name for r in willow.records]
    assert sorted(set(names)) == sorted(WILLOW_CLASSES)
    assert all(names.count(c) == 90 for c in WILLOW_CLASSES)
    ordered = {(r.name_A, r.name_B) for r in willow.records}
    assert len(ordered) == 450 and all((b, a) in ordered for a, b in ordered)
    assert willow.records[0].category == 0
    assert willow.categories[willow.records[-1].category] == "winebottle(M)"


def test_pf_willow_keypoints_match_the_mat_file(willow):
    mat = scipy.io.loadmat(SHARED / "pf-willow-dev" / "PF-dataset" / "car(G)" / "Cars_006a.mat")["pts_coord"]
    index = next(i for i, r in enumerate(willow.records) if r.name_A == "car(G)/Cars_006a")
    item = willow[index]
    assert item["kps_valid"].all() and item["kps_A"].shape == (10, 2)
    assert np.allclose(item["kps_A"][:, 0].numpy(), mat[0] - 1, atol=1e-4)  # x, 0-based
    assert np.allclose(item["kps_A"][:, 1].numpy(), mat[1] - 1, atol=1e-4)  # y
    h, w = item["size_A"].tolist()
    assert (item["kps_A"] >= 0).all() and (item["kps_A"][:, 0] < w).all() and (item["kps_A"][:, 1] < h).all()
    assert item["image_A"].shape == (3, 64, 64)


def test_pf_willow_every_pair_has_ten_keypoints(willow):
    for i in range(0, len(willow), 45):  # two items per sub-class
        assert willow[i]["kps_valid"].sum() == 10


def test_tss_samples_give_twelve_directed_items(tss):
    items = tss
    assert len(items) == 12
    assert sorted({it["pair_name"] for it in items}) == [
        "FG3DCar/001_005", "FG3DCar/001_021", "JODS/car_01_02",
        "JODS/car_03_04", "PASCAL/bike_01_02", "PASCAL/bike_01_03",
    ]
    for it in items:
        h, w = it["size_B"].tolist()
        assert it["flow_gt"].shape == (h, w, 2) and it["mask_B"].shape == (1, h, w)
        assert it["mask_A"].shape[-2:] == tuple(it["size_A"].tolist())
        assert it["name_B"].endswith(f"image{it['flow_dir']}")
        assert it["flip"] == (1 if it["pair_name"] == "PASCAL/bike_01_03" else 0)
        valid = it["flow_gt"][..., 0] < 1e9
        assert torch.equal(valid, it["mask_B"][0] > 0)  # GT is defined exactly on B's foreground


def test_tss_flow_maps_foreground_into_the_source(tss):
    items = tss
    for it in items:
        flow, mask_A = it["flow_gt"], it["mask_A"][0] > 0
        ys, xs = torch.nonzero(flow[..., 0] < 1e9, as_tuple=True)
        xa, ya = xs + flow[ys, xs, 0], ys + flow[ys, xs, 1]
        h, w = it["size_A"].tolist()
        inside = (xa >= -0.5) & (xa <= w - 0.5) & (ya >= -0.5) & (ya <= h - 0.5)
        assert inside.float().mean() > 0.95, it["name_B"]
        xi, yi = xa.round().long().clamp(0, w - 1), ya.round().long().clamp(0, h - 1)
        assert mask_A[yi, xi].float().mean() > 0.85, it["name_B"]  # lands on A's object, unmirrored


def test_tss_flip_pairs_have_mirrored_ground_truth(tss):
    """The evidence behind the flip documentation: du/dx ~ -2 on flip pairs, ~0 elsewhere."""
    items = tss
    for it in items:
        u, valid = it["flow_gt"][..., 0], it["flow_gt"][..., 0] < 1e9
        both = valid[:, 1:] & valid[:, :-1]
        dudx = (u[:, 1:] - u[:, :-1])[both].median().item()
        assert (dudx < -1.5) if it["flip"] else (abs(dudx) < 0.5), (it["name_B"], dudx)


def test_tss_images_have_masks():
    images = get_images("tss", root=SHARED / "tss-sample", image_size=64)
    assert len(images) == 12 and images.has_masks
    item = images[0]
    assert item["mask"].shape[-2:] == tuple(item["size"].tolist()) and item["subset"] == "FG3DCar"


def test_weizmann_images_match_their_masks():
    images = get_images("weizmann-horse", root=SHARED / "weizmann-horse-dev", image_size=64)
    assert len(images) == 164 and set(images.labels) == {0}
    for i in range(len(images)):
        item = images[i]
        assert item["image"].shape == (3, 64, 64)
        assert item["mask"].shape[-2:] == tuple(item["size"].tolist())
        assert 0.02 < item["mask"].mean() < 0.9  # a horse, not an empty or full mask
