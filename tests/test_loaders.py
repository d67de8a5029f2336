"""Benchmark loaders on tiny fake trees in their official layouts (hand-written numbers)."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from macos_lite.data.icoseg import ICosegImages
from macos_lite.data.imageio import DataError, DataNotFoundError, write_flo
from macos_lite.data.internet import InternetImages
from macos_lite.data.pf_pascal import PFPascalImages, PFPascalPairs
from macos_lite.data.pf_willow import PFWillowImages, PFWillowPairs
from macos_lite.data.registry import NAMES, collate, get_images, get_pairs
from macos_lite.data.spair import SPairImages, SPairPairs
from macos_lite.data.tss import TSSImages, TSSPairs
from macos_lite.data.weizmann import WeizmannHorseImages

PAIR_KEYS = {
    "image_A", "image_B", "size_A", "size_B", "kps_A", "kps_B", "kps_valid",
    "bbox_A", "bbox_B", "category", "category_name", "name_A", "name_B", "index",
}
IMAGE_KEYS = {"image", "size", "category", "category_name", "name", "index"}
S = 32  # image_size of the tests


def write_image(path: Path, height: int, width: int, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path)
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(path)
    return path


def check_pair_item(item, K):
    assert PAIR_KEYS <= set(item)
    assert item["image_A"].shape == (3, S, S) and item["image_B"].shape == (3, S, S)
    assert item["kps_A"].shape == (K, 2) and item["kps_valid"].shape == (K,)
    assert item["kps_valid"].dtype == torch.bool
    assert item["size_A"].dtype == torch.long and item["bbox_A"].shape == (4,)


# ---------------------------------------------------------------------------------------------------------
# PF-WILLOW
# ---------------------------------------------------------------------------------------------------------

def pts(offset):
    """pts_coord (2, 10), 1-based: x = offset + 1..10, y = offset + 21..30."""
    return np.stack([offset + np.arange(1, 11), offset + np.arange(21, 31)]).astype(float)


@pytest.fixture
def willow(tmp_path):
    root = tmp_path / "willow"
    for cls, stems in (("car(G)", ["a", "b", "c"]), ("duck(S)", ["x", "y"])):
        for i, stem in enumerate(stems):
            write_image(root / "PF-dataset" / cls / f"{stem}.png", 40, 50)
            scipy.io.savemat(root / "PF-dataset" / cls / f"{stem}.mat", {"pts_coord": pts(10 * i)})
    return root


def test_pf_willow_regenerates_all_ordered_pairs(willow):
    pairs = PFWillowPairs(willow, image_size=S)
    assert len(pairs) == 3 * 2 + 2 * 1 and pairs.pair_csv is None
    names = [(r.name_A, r.name_B) for r in pairs.records]
    assert names[:3] == [("car(G)/a", "car(G)/b"), ("car(G)/a", "car(G)/c"), ("car(G)/b", "car(G)/a")]
    assert names[-1] == ("duck(S)/y", "duck(S)/x")
    item = pairs[1]  # a -> c
    check_pair_item(item, 10)
    assert item["kps_A"][0].tolist() == [0.0, 20.0]  # (1, 21) in MATLAB pixels
    assert item["kps_B"][9].tolist() == [29.0, 49.0]  # c: offset 20, (30, 50) 1-based
    assert item["kps_valid"].all() and item["size_A"].tolist() == [40, 50]
    assert item["bbox_A"].tolist() == [0.0, 20.0, 9.0, 29.0]  # keypoint box
    assert pairs.bbox_source == "keypoints"
    assert (item["category"], item["category_name"]) == (0, "car(G)")
    assert pairs[-1]["category"] == 3  # duck(S) keeps its index in the standard order


def test_pf_willow_weakalign_csv(willow):
    xa, ya, xb, yb = np.arange(1, 11), np.arange(11, 21), np.arange(21, 31), np.arange(31, 41)
    xb = xb.astype(float)
    xb[9] = -1  # missing
    header = ["imageA", "imageB"] + [f"{c}{k}" for c in ("XA", "YA", "XB", "YB") for k in range(1, 11)]
    row = ["PF-dataset/duck(S)/x.png", "PF-dataset/duck(S)/y.png"] + [f"{v:g}" for v in (*xa, *ya, *xb, *yb)]
    (willow / "test_pairs_pf.csv").write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    pairs = PFWillowPairs(willow, image_size=S)
    assert len(pairs) == 1 and pairs.pair_csv.name == "test_pairs_pf.csv"
    item = pairs[0]
    assert item["kps_A"][0].tolist() == [0.0, 10.0] and item["kps_B"][1].tolist() == [21.0, 31.0]
    assert item["kps_valid"].tolist() == [True] * 9 + [False]
    assert item["name_A"] == "duck(S)/x" and item["category_name"] == "duck(S)"
    assert len(PFWillowPairs(willow, image_size=S, pair_csv=False)) == 8


def test_pf_willow_macosnet_csv(willow):
    csv = willow / "pairs.csv"
    csv.write_text(
        "source_image,target_image,class,XA,YA,XB,YB\n"
        "PF-dataset/car(G)/c.png,PF-dataset/car(G)/a.png,1,5;6;7,8;9;10,11;12;13,14;15;16\n"
    )
    item = PFWillowPairs(willow, image_size=S, pair_csv=csv)[0]
    check_pair_item(item, 10)
    assert item["kps_A"][:3].tolist() == [[4, 7], [5, 8], [6, 9]]
    assert item["kps_B"][2].tolist() == [12, 15]
    assert item["kps_valid"].tolist() == [True] * 3 + [False] * 7
    assert item["kps_A"][5].tolist() == [-1, -1]  # padding


def test_pf_willow_malformed_inputs(willow):
    bad = willow / "bad.csv"
    bad.write_text("foo,bar,baz\n1,2,3\n")
    with pytest.raises(DataError, match=r"bad\.csv.*unknown pair-list format"):
        PFWillowPairs(willow, pair_csv=bad)
    bad.write_text("source_image,target_image,class,XA,YA,XB,YB\nPF-dataset/car(G)/a.png,PF-dataset/car(G)/b.png,1,1;x,1;2,1;2,1;2\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 2, column 'XA'"):
        PFWillowPairs(willow, pair_csv=bad)
    scipy.io.savemat(willow / "PF-dataset" / "car(G)" / "b.mat", {"pts_coord": np.zeros((3, 10))})
    pairs = PFWillowPairs(willow, image_size=S)
    with pytest.raises(DataError, match=r"item 0 \(car\(G\)/a -> car\(G\)/b\).*b\.mat.*'pts_coord'"):
        pairs[0]
    scipy.io.savemat(willow / "PF-dataset" / "car(G)" / "b.mat", {"other": np.zeros(1)})
    with pytest.raises(DataError, match=r"b\.mat.*missing field.*'pts_coord'"):
        pairs[0]


def _cell(*values):
    cell = np.empty((1, len(values)), dtype=object)
    cell[0, :] = values
    return cell


@pytest.mark.parametrize("content, words", [
    (np.array(["left eye", "nose"]), "text"),
    (_cell(np.array([1.0, 2.0]), "x"), "a cell array"),
    ({"x": np.ones(2)}, "a struct"),
    (np.array([[1 + 2j, 3.0], [4.0, 5.0]]), "complex numbers"),
])
@pytest.mark.parametrize("dataset", ["pf-pascal", "pf-willow"])
def test_keypoints_that_are_not_real_numbers_name_the_file(tmp_path, dataset, content, words):
    from macos_lite.data.pf_pascal import read_annotation
    from macos_lite.data.pf_willow import read_keypoints

    path = tmp_path / "odd name" / "2008_000123.mat"
    path.parent.mkdir()
    field, read = ("kps", read_annotation) if dataset == "pf-pascal" else ("pts_coord", read_keypoints)
    scipy.io.savemat(path, {field: content, "bbox": np.array([1.0, 2.0, 3.0, 4.0])})
    with pytest.raises(DataError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(f"{path}: field '{field}' holds {words}, not real numbers")
    assert f"macos-lite download {dataset}" in message


def test_pf_willow_images(willow):
    images = PFWillowImages(willow, image_size=S)
    assert len(images) == 5 and images.labels == [0, 0, 0, 3, 3] and not images.has_masks
    item = images[3]
    assert set(item) == IMAGE_KEYS and item["name"] == "duck(S)/x" and item["size"].tolist() == [40, 50]


def test_missing_roots_name_the_download_command(tmp_path):
    datasets = {PFWillowPairs: "pf-willow", PFPascalPairs: "pf-pascal", SPairPairs: "spair", TSSPairs: "tss",
                InternetImages: "internet", WeizmannHorseImages: "weizmann-horse", ICosegImages: "icoseg"}
    for cls, name in datasets.items():
        with pytest.raises(DataNotFoundError, match=rf"{tmp_path}.*macos-lite download {name}"):
            cls(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# PF-PASCAL
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def pascal(tmp_path):
    root = tmp_path / "pascal"
    base = root / "PF-dataset-PASCAL"
    nan = np.nan
    annotations = {  # (kps 1-based with NaN, bbox 1-based)
        "img1": ([[11, 21], [nan, nan], [31, 41]], [1, 2, 30, 40]),
        "img2": ([[12, 22], [13, 23], [nan, nan]], [3, 4, 35, 45]),
        "img3": ([[1, 1], [2, 2], [3, 3]], [1, 1, 5, 5]),
    }
    for stem, (kps, bbox) in annotations.items():
        write_image(base / "JPEGImages" / f"{stem}.jpg", 48, 64)
        (base / "Annotations" / "bird").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(base / "Annotations" / "bird" / f"{stem}.mat",
                         {"kps": np.array(kps, dtype=float), "bbox": np.array([bbox], dtype=float)})
    (root / "test_pairs_pf_pascal.csv").write_text(
        "source_image,target_image,class,XA,YA,XB,YB\n"
        "PF-dataset-PASCAL/JPEGImages/img1.jpg,PF-dataset-PASCAL/JPEGImages/img2.jpg,3,11;31,21;41,12;14,22;24\n"
        "PF-dataset-PASCAL/JPEGImages/img1.jpg,PF-dataset-PASCAL/JPEGImages/img3.jpg,3,11,21,1,1\n"
    )
    (root / "image_pairs").mkdir()
    (root / "image_pairs" / "train_pairs.csv").write_text(
        "source_image,target_image,class,flip\n"
        "PF-dataset-PASCAL/JPEGImages/img2.jpg,PF-dataset-PASCAL/JPEGImages/img1.jpg,3,0\n"
        "PF-dataset-PASCAL/JPEGImages/img2.jpg,PF-dataset-PASCAL/JPEGImages/img1.jpg,3,1\n"
    )
    return root


def test_pf_pascal_test_pairs(pascal):
    pairs = PFPascalPairs(pascal, split="test", image_size=S)
    assert len(pairs) == 2 and pairs.bbox_source == "object" and len(pairs.categories) == 20
    item = pairs[0]
    check_pair_item(item, 20)
    assert (item["category"], item["category_name"]) == (2, "bird")  # class 3 is 1-based
    assert item["kps_A"][:2].tolist() == [[10, 20], [30, 40]]
    assert item["kps_B"][:2].tolist() == [[11, 21], [13, 23]]
    assert item["kps_valid"].sum() == 2
    assert item["bbox_A"].tolist() == [0, 1, 29, 39] and item["bbox_B"].tolist() == [2, 3, 34, 44]
    assert item["name_A"] == "JPEGImages/img1" and item["size_B"].tolist() == [48, 64]


def test_pf_pascal_train_pairs_read_mat_keypoints_with_nan(pascal):
    pairs = PFPascalPairs(pascal, split="train", image_size=S)
    assert [r.flip for r in pairs.records] == [0, 1] and pairs.flip_mode == "both"
    item = pairs[0]  # img2 -> img1
    assert item["kps_valid"][:3].tolist() == [True, False, False]  # NaN in either image: invisible
    assert item["kps_A"][0].tolist() == [11, 21] and item["kps_B"][0].tolist() == [10, 20]
    assert item["kps_B"][1].tolist() == [-1, -1]  # NaN never leaks into the tensors
    assert not torch.isnan(item["kps_A"]).any()


def test_pf_pascal_clean_split_drops_training_pairs(pascal):
    clean = PFPascalPairs(pascal, split="test", image_size=S, clean=True)
    assert [(r.name_A, r.name_B) for r in clean.records] == [("JPEGImages/img1", "JPEGImages/img3")]


def test_pf_pascal_images_and_errors(pascal):
    images = PFPascalImages(pascal, split="test", image_size=S)
    assert [r.name for r in images.records] == ["JPEGImages/img1", "JPEGImages/img2", "JPEGImages/img3"]
    assert images.labels == [2, 2, 2]
    message = r"no val pair list found; looked for .*val_pairs_pf_pascal\.csv.*macos-lite download pf-pascal"
    with pytest.raises(DataNotFoundError, match=message):
        PFPascalPairs(pascal, split="val")
    csv = pascal / "test_pairs_pf_pascal.csv"
    csv.write_text(csv.read_text().replace(",3,11,21", ",21,11,21"))
    with pytest.raises(DataError, match=r"test_pairs_pf_pascal\.csv, line 3, column 'class'"):
        PFPascalPairs(pascal, split="test")
    csv.write_text("source_image,target_image,XA\n")
    with pytest.raises(DataError, match=r"test_pairs_pf_pascal\.csv: missing column.*'class'"):
        PFPascalPairs(pascal, split="test")


# ---------------------------------------------------------------------------------------------------------
# SPair-71k
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def spair(tmp_path):
    base = tmp_path / "spair" / "SPair-71k"
    for stem in ("2008_000001", "2008_000002"):
        write_image(base / "JPEGImages" / "cat" / f"{stem}.jpg", 30, 40)
    name = "000001-2008_000001-2008_000002:cat"
    annotation = {
        "src_imname": "2008_000001.jpg", "trg_imname": "2008_000002.jpg",
        "src_kps": [[1, 2], [3, 4]], "trg_kps": [[5, 6], [7, 8]],
        "src_bndbox": [0, 1, 20, 21], "trg_bndbox": [2, 3, 30, 25], "category": "cat", "kps_ids": ["0", "3"],
        "viewpoint_variation": 1, "scale_variation": 0, "truncation": 2, "occlusion": 0, "mirror": 0,
    }
    (base / "PairAnnotation" / "test").mkdir(parents=True)
    (base / "PairAnnotation" / "test" / f"{name}.json").write_text(json.dumps(annotation))
    (base / "Layout" / "large").mkdir(parents=True)
    (base / "Layout" / "large" / "test.txt").write_text(name + "\n")
    return tmp_path / "spair", base / "PairAnnotation" / "test" / f"{name}.json", annotation


def test_spair_pairs(spair):
    root, _, _ = spair
    pairs = SPairPairs(root, split="test", image_size=S)
    item = pairs[0]
    check_pair_item(item, 40)
    assert (item["category"], item["category_name"]) == (7, "cat")
    assert item["kps_A"][:2].tolist() == [[1, 2], [3, 4]] and item["kps_B"][1].tolist() == [7, 8]
    assert item["kps_valid"].sum() == 2 and item["bbox_B"].tolist() == [2, 3, 30, 25]
    assert pairs.flags(0) == {"viewpoint_variation": 1, "scale_variation": 0, "truncation": 2,
                              "occlusion": 0, "mirror": 0}
    images = SPairImages(root, split="test", image_size=S)
    assert images.labels == [7, 7] and images[1]["name"] == "cat/2008_000002"


def test_spair_without_layout_lists_the_json_files(spair):
    root, _, _ = spair
    (root / "SPair-71k" / "Layout" / "large" / "test.txt").unlink()
    assert len(SPairPairs(root, split="test")) == 1


def test_spair_malformed_json(spair):
    root, path, annotation = spair
    pairs = SPairPairs(root, split="test", image_size=S)
    path.write_text(json.dumps({**annotation, "src_kps": [[1, 2, 3]]}))
    with pytest.raises(DataError, match=r"000001-2008_000001-2008_000002:cat\.json: field 'src_kps'"):
        pairs[0]
    path.write_text(json.dumps({k: v for k, v in annotation.items() if k != "trg_bndbox"}))
    with pytest.raises(DataError, match=r"\.json: missing field 'trg_bndbox'"):
        pairs[0]
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"item 0 .*\.json: not valid JSON"):
        pairs[0]
    with pytest.raises(ValueError, match="unknown split"):
        SPairPairs(root, split="dev")


# ---------------------------------------------------------------------------------------------------------
# TSS
# ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def tss(tmp_path):
    root = tmp_path / "tss"
    base = root / "TSS_CVPR2016"
    for subset, pair, flip in (("FG3DCar", "001_002", 0), ("JODS", "horse_01_02", 1)):
        folder = base / subset / pair
        write_image(folder / "image1.png", 4, 6, 10)
        write_image(folder / "image2.png", 5, 7, 200)
        mask1, mask2 = np.zeros((4, 6)), np.zeros((5, 7))
        mask1[1:3, 2:5] = 1
        mask2[0:4, 1:3] = 1
        write_mask(folder / "mask1.png", mask1)
        write_mask(folder / "mask2.png", mask2)
        flow1 = np.full((4, 6, 2), 1e10, dtype=np.float32)
        flow1[1:3, 2:5] = (1.0, 2.0)
        write_flo(folder / "flow1.flo", flow1)
        write_flo(folder / "flow2.flo", np.full((5, 7, 2), -0.5, dtype=np.float32))
        (folder / "flip_gt.txt").write_text(f"{flip}\n")
    return root


def test_tss_directed_items_without_csv(tss):
    pairs = TSSPairs(tss, image_size=S)
    assert len(pairs) == 4 and pairs.pair_csv is None and pairs.categories == ("car", "horse")
    item = pairs[0]
    check_pair_item(item, 0)
    assert {"flow_gt", "mask_A", "mask_B", "flip", "subset", "pair_name", "flow_dir"} <= set(item)
    # direction 1: the target B is image1 (flow1 is defined on it), the source A is image2
    assert item["name_B"] == "FG3DCar/001_002/image1" and item["name_A"] == "FG3DCar/001_002/image2"
    assert item["flow_dir"] == 1 and item["size_B"].tolist() == [4, 6] and item["size_A"].tolist() == [5, 7]
    assert item["flow_gt"].shape == (4, 6, 2) and item["flow_gt"][1, 2].tolist() == [1.0, 2.0]
    assert item["mask_B"].shape == (1, 4, 6) and item["mask_A"].shape == (1, 5, 7)
    assert item["bbox_B"].tolist() == [2, 1, 4, 2] and pairs.bbox_source == "mask"
    assert torch.allclose(item["image_B"], torch.full((3, S, S), 10 / 255))
    second = pairs[1]
    assert second["flow_dir"] == 2 and second["name_B"].endswith("image2")
    assert second["flow_gt"].shape == (5, 7, 2)
    assert [pairs[i]["flip"] for i in range(4)] == [0, 0, 1, 1]
    assert pairs[3]["subset"] == "JODS" and pairs[3]["category_name"] == "horse"
    assert pairs[3]["pair_name"] == "JODS/horse_01_02"


def test_tss_pair_csv_order_and_flags(tss):
    (tss / "test_pairs_tss.csv").write_text(
        "imageA,imageB,flow_dir,flip,category\n"
        "TSS_CVPR2016/JODS/horse_01_02/image1.png,TSS_CVPR2016/JODS/horse_01_02/image2.png,2,0,2\n"
        "TSS_CVPR2016/FG3DCar/001_002/image2.png,TSS_CVPR2016/FG3DCar/001_002/image1.png,1,1,1\n"
    )
    pairs = TSSPairs(tss, image_size=S)
    assert len(pairs) == 2 and pairs.pair_csv.name == "test_pairs_tss.csv"
    assert pairs[0]["pair_name"] == "JODS/horse_01_02" and pairs[0]["flow_dir"] == 2 and pairs[0]["flip"] == 0
    assert pairs[1]["flip"] == 1 and pairs[1]["flow_gt"].shape == (4, 6, 2)
    (tss / "test_pairs_tss.csv").write_text(
        "imageA,imageB,flow_dir,flip,category\n"
        "TSS_CVPR2016/JODS/horse_01_02/image1.png,TSS_CVPR2016/JODS/horse_01_02/image2.png,1,0,2\n"
    )
    with pytest.raises(DataError, match=r"test_pairs_tss\.csv, line 2.*flow_dir 1 the target .* image1"):
        TSSPairs(tss)


def test_tss_bad_files(tss):
    folder = tss / "TSS_CVPR2016" / "FG3DCar" / "001_002"
    write_flo(folder / "flow1.flo", np.zeros((3, 3, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"item 0 .*flow1\.flo: size \(3, 3\) differs"):
        TSSPairs(tss)[0]
    (folder / "flip_gt.txt").write_text("yes\n")
    with pytest.raises(DataError, match=r"flip_gt\.txt"):
        TSSPairs(tss)


def test_tss_images(tss):
    images = TSSImages(tss, image_size=S)
    assert len(images) == 4 and images.labels == [0, 0, 1, 1] and images.has_masks
    item = images[1]
    assert IMAGE_KEYS | {"mask", "subset"} == set(item)
    assert item["mask"].shape == (1, 5, 7) and item["mask"].sum() == 8 and item["subset"] == "FG3DCar"


# ---------------------------------------------------------------------------------------------------------
# Internet and Weizmann Horse
# ---------------------------------------------------------------------------------------------------------

def test_internet_keeps_noise_images(tmp_path):
    data = tmp_path / "internet" / "Data"
    for subset, stems in (("Airplane100", ["a", "b"]), ("Horse100", ["h"])):
        for stem in stems:
            write_image(data / subset / f"{stem}.jpg", 12, 16)
            mask = np.zeros((12, 16))
            if stem != "b":  # b is a noise image: empty ground truth
                mask[2:6, 3:9] = 1
            write_mask(data / subset / "GroundTruth" / f"{stem}.png", mask)
    images = InternetImages(tmp_path / "internet", image_size=S, subsets=("Airplane100", "Horse100"))
    assert len(images) == 3 and images.categories == ("airplane", "horse") and images.labels == [0, 0, 1]
    assert images.noise_images() == [1]
    noise = images[1]
    assert set(noise) == IMAGE_KEYS | {"mask"}
    assert noise["mask"].shape == (1, 12, 16) and noise["mask"].sum() == 0
    assert images[0]["mask"].sum() == 24
    (data / "Horse100" / "GroundTruth" / "h.png").unlink()
    with pytest.raises(DataNotFoundError, match=r"item 2 \(Horse100/h\).*GroundTruth.h\.png"):
        images[2]


def test_weizmann_resizes_rgb_to_mask_size(tmp_path):
    root = tmp_path / "weizmann"
    write_image(root / "rgb" / "horse001.jpg", 60, 80, 90)
    blocks = np.kron(np.array([[0, 255], [255, 0]], dtype=np.uint8), np.ones((15, 20), dtype=np.uint8))
    (root / "figure_ground").mkdir()
    Image.fromarray(blocks).save(root / "figure_ground" / "horse001.jpg", quality=95)  # 30 x 40
    write_image(root / "rgb" / "horse002.jpg", 60, 30)
    Image.fromarray(blocks).save(root / "figure_ground" / "horse002.jpg", quality=95)
    images = WeizmannHorseImages(root, image_size=S)
    item = images[0]
    assert item["size"].tolist() == [30, 40] and item["mask"].shape == (1, 30, 40)
    assert item["mask"][0, ::15, ::20].tolist() == [[0, 1], [1, 0]]
    assert item["image"].shape == (3, S, S) and abs(item["image"].mean().item() - 90 / 255) < 0.01
    assert images.labels == [0, 0] and images.categories == ("horse",)
    with pytest.raises(DataError, match=r"item 1 .*horse002\.jpg.*aspect ratio"):
        images[1]


# ---------------------------------------------------------------------------------------------------------
# Registry and collate
# ---------------------------------------------------------------------------------------------------------

def test_registry(tss, willow, monkeypatch, tmp_path):
    assert len(get_pairs("tss", root=tss, image_size=S)) == 4
    assert len(get_images("pf-willow", root=willow, image_size=S)) == 5
    with pytest.raises(ValueError, match="unknown dataset 'pf-dog'.*" + ".*".join(NAMES)):
        get_pairs("pf-dog")
    with pytest.raises(ValueError, match=r"internet has no keypoint or flow pairs.*get_images\('internet'\)"):
        get_pairs("internet")
    with pytest.raises(ValueError, match="no splits"):
        get_pairs("tss", root=tss, split="val")
    monkeypatch.setenv("MACOS_LITE_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("MACOS_LITE_SHARED_DATA", raising=False)
    with pytest.raises(DataNotFoundError, match=r"data.pf-willow.PF-dataset.*macos-lite download pf-willow"):
        get_pairs("pf-willow")
    # without a root, the development copy under $MACOS_LITE_SHARED_DATA is found (as the trainer does)
    monkeypatch.setenv("MACOS_LITE_SHARED_DATA", str(willow.parent))
    (willow.parent / "pf-willow").symlink_to(willow)
    assert len(get_images("pf-willow", image_size=S)) == 5


def test_collate_stacks_equal_shapes_and_keeps_lists(tss):
    pairs = TSSPairs(tss, image_size=S)
    batch = collate([pairs[0], pairs[1]])
    assert batch["image_A"].shape == (2, 3, S, S) and batch["size_B"].tolist() == [[4, 6], [5, 7]]
    assert isinstance(batch["flow_gt"], list) and [f.shape[:2] for f in batch["flow_gt"]] == [(4, 6), (5, 7)]
    assert batch["flip"].tolist() == [0, 0] and batch["name_B"][1].endswith("image2")
    same = collate([pairs[0], pairs[2]])
    assert same["flow_gt"].shape == (2, 4, 6, 2) and same["kps_A"].shape == (2, 0, 2)
