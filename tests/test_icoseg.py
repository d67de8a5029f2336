"""iCoseg: the loader (layout, groups as categories, the split rule, defects), the per-group-then-mean
protocol, the manual download check, and the development copy when it is on disk."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from macos_lite.data import download as dl
from macos_lite.data.cache import JoinedImages
from macos_lite.data.icoseg import ICosegImages, check_copy, split_groups
from macos_lite.data.imageio import DataError, DataNotFoundError
from macos_lite.data.locate import find_dataset
from macos_lite.data.registry import get_images
from macos_lite.evaluation import IdentityMethod, evaluate_dataset

H, W = 10, 20  # every synthetic image is 10 x 20 (H x W)
S = 16
# group -> {name: (rows of the foreground band)}: a band of full-width rows, so its area is hand-known
TREE = {
    "010_Cars": {"c1": (0, 1), "c2": (0, 2), "c3": (7, 10)},  # foreground fractions 0.1, 0.2, 0.3
    "020_Kites": {"k1": (0, 1), "k2": (0, 3)},  # 0.1, 0.3
    "030_Geese": {"g1": (0, 10), "g2": (5, 9)},  # 1.0, 0.4
}
FRACTION = {"010_Cars": [0.1, 0.2, 0.3], "020_Kites": [0.1, 0.3], "030_Geese": [1.0, 0.4]}


def write_image(path: Path, height=H, width=W, value=100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path)


def write_mask(path: Path, rows, height=H, width=W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[rows[0]:rows[1]] = 255
    Image.fromarray(mask).save(path)


def make_tree(base: Path, tree=TREE) -> Path:
    for group, images in tree.items():
        for name, rows in images.items():
            write_image(base / "images" / group / f"{name}.jpg")
            write_mask(base / "ground_truth" / group / f"{name}.png", rows)
    return base


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "icoseg")


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean tree warns about nothing
        return fn(*args, **kw)


def test_counts_categories_masks(tree):
    images = quiet(ICosegImages, tree, image_size=S)
    assert len(images) == 7 and images.categories == ("010_Cars", "020_Kites", "030_Geese")
    assert images.labels == [0, 0, 0, 1, 1, 2, 2] and images.has_masks
    item = images[4]
    assert item["category"] == 1 and item["category_name"] == "020_Kites" and item["name"] == "020_Kites/k2"
    assert item["path"] == str(tree / "images" / "020_Kites" / "k2.jpg")
    assert item["image"].shape == (3, S, S) and item["size"].tolist() == [H, W]
    assert item["mask"].shape == (1, H, W) and set(item["mask"].unique().tolist()) == {0.0, 1.0}
    assert item["mask"].sum().item() == 3 * W  # rows 0..2 of k2
    assert item["mask"][0, :3].all() and not item["mask"][0, 3:].any()


def test_root_layouts(tmp_path):
    """The folder itself, dataset_public/ (the official archive), icoseg-dev/ and icoseg/ are all found."""
    for sub in ("", "dataset_public", "icoseg-dev", "icoseg", "icoseg/dataset_public"):
        root = tmp_path / (sub.replace("/", "_") or "plain")
        make_tree(root / sub if sub else root)
        assert len(quiet(ICosegImages, root, image_size=S)) == 7, sub
    # a '+' join looks each part up with find_dataset: the dev name and the archive's folder are found
    assert find_dataset("icoseg", tmp_path / "dataset_public") == tmp_path / "dataset_public" / "dataset_public"
    assert find_dataset("icoseg", tmp_path / "icoseg-dev") == tmp_path / "icoseg-dev" / "icoseg-dev"


def test_split_rule_by_hand():
    names = [f"g{i:02d}" for i in range(10)][::-1]  # given in reverse: the rule uses the sorted order
    assert split_groups(names, "test") == ["g02", "g05", "g08"]
    assert split_groups(names, "train") == ["g00", "g01", "g03", "g04", "g06", "g07", "g09"]
    assert split_groups(names, None) == split_groups(names, "all") == sorted(names)
    with pytest.raises(ValueError, match="unknown split 'val'.*all, train, test"):
        split_groups(names, "val")


def test_splits_through_the_registry(tree):
    assert quiet(get_images, "icoseg", root=tree, split="test").categories == ("030_Geese",)
    train = quiet(get_images, "icoseg", root=tree, split="train")
    assert train.categories == ("010_Cars", "020_Kites") and len(train) == 5
    assert len(quiet(get_images, "icoseg", root=tree, split="all")) == 7
    assert quiet(get_images, "icoseg", root=tree).categories == train.categories  # default: the training groups
    assert len(quiet(ICosegImages, tree)) == 7  # the class itself: every group
    with pytest.raises(ValueError, match="unknown split 'trn'"):
        get_images("icoseg", root=tree, split="trn")


def test_joined_with_another_image_set(tree):
    joined = JoinedImages([quiet(ICosegImages, tree, image_size=S, split="train"),
                           quiet(ICosegImages, tree, image_size=S, split="test")])
    assert joined.labels == [0, 0, 0, 1, 1, 2, 2] and joined[6]["category_name"] == "030_Geese"


def test_single_image_group_is_skipped_with_a_warning(tree):
    write_image(tree / "images" / "040_Solo" / "s1.jpg")
    write_mask(tree / "ground_truth" / "040_Solo" / "s1.png", (0, 1))
    with pytest.warns(UserWarning, match="group 040_Solo has 1 image.*fewer than the 2"):
        images = ICosegImages(tree)
    assert "040_Solo" not in images.categories and len(images) == 7
    # the skipped group still holds its sorted position (3: train): 030_Geese stays the only test group
    assert quiet(ICosegImages, tree, split="test").categories == ("030_Geese",)
    with pytest.warns(UserWarning, match="040_Solo"):
        assert ICosegImages(tree, split="train").categories == ("010_Cars", "020_Kites")


def test_image_without_mask_and_mask_without_image_are_counted(tree):
    write_image(tree / "images" / "010_Cars" / "c4.jpg")
    write_image(tree / "images" / "020_Kites" / "k3.jpg")
    write_mask(tree / "ground_truth" / "030_Geese" / "g9.png", (0, 1))
    write_mask(tree / "ground_truth" / "050_Gone" / "x.png", (0, 1))
    with pytest.warns(UserWarning) as caught:
        images = ICosegImages(tree)
    messages = [str(w.message) for w in caught]
    assert any("2 image(s) without a mask" in m and "skipped" in m for m in messages), messages
    assert any("2 mask(s) without an image" in m and "ignored" in m for m in messages), messages
    assert len(images) == 7


def test_mask_of_another_size_names_both_files(tree):
    write_mask(tree / "ground_truth" / "020_Kites" / "k1.png", (0, 1), height=H + 1)
    with pytest.raises(DataError, match=r"mask .*020_Kites.k1\.png is 20 x 11 .*image .*020_Kites.k1\.jpg is 20 x 10"):
        ICosegImages(tree)


def test_empty_or_missing_root_names_the_folder_and_layout(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for root in (empty, tmp_path / "absent"):
        with pytest.raises(ValueError, match=rf"{root}.*images/<group>/<name>\.jpg and ground_truth/<group>/<name>\.png"):
            ICosegImages(root)
    (empty / "images").mkdir()
    (empty / "ground_truth").mkdir()
    with pytest.raises(DataNotFoundError, match=rf"no group with at least 2 images and masks in {empty}"):
        ICosegImages(empty)
    with pytest.raises(DataNotFoundError, match=r"absent does not exist.*macos-lite download icoseg"):
        ICosegImages(tmp_path / "absent")
    with pytest.raises(DataNotFoundError, match=r"empty.images holds no iCoseg copy"):
        ICosegImages(tmp_path / "empty" / "images")


def test_protocol_means_per_group_then_over_groups(tree):
    """The identity method predicts all foreground: J of an image = its foreground fraction f, and so is P."""
    summary = evaluate_dataset("icoseg", IdentityMethod(), root=tree, split="all", image_size=S)
    per_group = {g: np.mean(f) for g, f in FRACTION.items()}  # 0.2, 0.2, 0.7
    assert summary["num_groups"] == 3 and set(summary["per_group"]) == set(FRACTION)
    for g, value in per_group.items():
        assert summary["per_group"][g]["jaccard"] == pytest.approx(value)
        assert summary["per_group"][g]["precision"] == pytest.approx(value)
        assert summary["per_group"][g]["num_images"] == len(FRACTION[g])
    assert summary["jaccard"] == pytest.approx((0.2 + 0.2 + 0.7) / 3)
    assert summary["precision"] == pytest.approx((0.2 + 0.2 + 0.7) / 3)
    pooled = np.mean(sum(FRACTION.values(), []))  # 2.4 / 7: what a mean over images would give instead
    assert summary["pooled"]["jaccard"] == pytest.approx(pooled) and abs(pooled - summary["jaccard"]) > 0.01
    assert "per group, then over groups (the iCoseg convention)" in summary["protocol"]
    assert evaluate_dataset("icoseg", IdentityMethod(), root=tree, image_size=S)["split"] == "test"


def test_evaluate_cli_writes_the_per_group_table(tree, tmp_path, capsys):
    from macos_lite.evaluate_cli import main

    out = tmp_path / "ico.json"
    assert main(["--dataset", "icoseg", "--data-root", str(tree), "--method", "identity", "--split", "test",
                 "--json", str(out), "--quiet"]) == 0
    summary = json.loads(out.read_text())
    assert list(summary["per_group"]) == ["030_Geese"] and summary["jaccard"] == pytest.approx(0.7)
    assert main(["--dataset", "icoseg", "--data-root", str(tmp_path / "none"), "--method", "identity"]) == 2
    assert "expected images/<group>/<name>.jpg" in capsys.readouterr().err


def test_download_explains_and_checks_a_placed_copy(tmp_path, capsys):
    assert dl.main(["icoseg", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "iCoseg cannot be downloaded automatically" in err and "images/<group>/<name>.jpg" in err
    assert str(tmp_path / "icoseg") in err
    make_tree(tmp_path / "icoseg" / "dataset_public")
    write_image(tmp_path / "icoseg" / "dataset_public" / "images" / "010_Cars" / "extra.jpg")
    assert dl.main(["icoseg", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "3 groups, 8 images, 7 masks (3 usable groups: 2 train, 1 test)" in out
    assert "1 image(s) without a mask" in out and "Please cite: D. Batra" in out
    assert dl.dataset_status("icoseg", tmp_path) == "present"


def test_check_copy_of_an_empty_layout(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "ground_truth").mkdir()
    with pytest.raises(DataNotFoundError, match="holds no image"):
        check_copy(tmp_path)


SHARED = os.environ.get("MACOS_LITE_SHARED_DATA")


@pytest.mark.skipif(not SHARED or not (Path(SHARED or ".") / "icoseg-dev").is_dir(), reason="no icoseg-dev copy")
def test_development_copy():
    images = quiet(ICosegImages, SHARED)  # found under the data root as icoseg-dev/
    assert len(images.categories) == 21 and len(images) == 367
    test = quiet(ICosegImages, SHARED, split="test")
    assert len(test.categories) == 7 and test.categories == tuple(sorted(images.categories)[2::3])
    assert len(quiet(ICosegImages, SHARED, split="train").categories) == 14
