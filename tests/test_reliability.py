"""One test per reported fault: the right value, or the error that names the argument or file.

(Exact resume after signals, no overwrite of a run and stale temp files: tests/test_resume_signals.py; the
CLI messages: tests/test_bad_input.py; the grader's sandbox: tests/test_assignments.py.)
"""

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from macos_lite import evaluate_cli
from macos_lite import evaluation as E
from macos_lite import geometry as G
from macos_lite.data.imageio import DataError, read_csv, read_flo, write_flo


@pytest.fixture(scope="module")
def model():
    from macos_lite.model import MaCoSNet

    torch.manual_seed(0)
    return MaCoSNet("lite", image_size=64, pretrained=False).eval()


# ----------------------------------------------------------------------------------------------
# Images at the public API: convert what is unambiguous, refuse the rest naming the argument


def test_predict_converts_uint8_channels_last_gray_and_rgba(model):
    torch.manual_seed(1)
    rgb = torch.rand(3, 30, 40)
    as_uint8 = (rgb * 255).round().to(torch.uint8)
    reference = model.predict(as_uint8.float() / 255, rgb)  # what the conversion must reproduce
    for given in (as_uint8, as_uint8.permute(1, 2, 0), as_uint8.permute(1, 2, 0).numpy()):
        out = model.predict(given, rgb)
        assert torch.allclose(out["mask_A"], reference["mask_A"], atol=1e-6)
        assert torch.allclose(out["theta"], reference["theta"], atol=1e-6)
    gray = rgb[:1]
    expected = model.predict(gray.repeat(3, 1, 1), rgb)
    for given in (gray, gray[0]):  # (1, H, W) and (H, W)
        assert torch.allclose(model.predict(given, rgb)["mask_A"], expected["mask_A"], atol=1e-6)
    rgba = torch.cat([rgb, torch.rand(1, 30, 40)])  # alpha dropped, as load_image does
    assert torch.allclose(model.predict(rgba, rgb)["mask_A"], model.predict(rgb, rgb)["mask_A"], atol=1e-6)
    batch = model.predict(rgb[None].permute(0, 2, 3, 1).contiguous(), rgb[None])  # (B, H, W, 3)
    assert batch["mask_A"].shape == (1, 1, 30, 40)


@pytest.mark.parametrize("which, bad, words", [
    ("image_A", lambda x: x * 255, ["image_A", "[0, 1]", "divide by 255"]),
    ("image_B", lambda x: (x - 0.45) / 0.225, ["image_B", "normalisation"]),
    ("image_B", lambda x: x.index_put((torch.tensor([0]), torch.tensor([2]), torch.tensor([3])),
                                      torch.tensor(float("nan"))), ["image_B", "1 NaN"]),
    ("image_A", lambda x: (x * 1000).long(), ["image_A", "torch.int64"]),
    ("image_A", lambda x: x[:2], ["image_A", "2 channels"]),
])
def test_predict_refuses_ambiguous_images_naming_the_argument(model, which, bad, words):
    rgb = torch.rand(3, 30, 40)
    args = {"image_A": rgb, "image_B": rgb}
    args[which] = bad(rgb)
    with pytest.raises(ValueError) as err:
        model.predict(args["image_A"], args["image_B"])
    for word in words:
        assert word in str(err.value)


def test_warp_image_converts_uint8_and_channels_last_and_refuses_nan():
    torch.manual_seed(2)
    image = torch.rand(2, 3, 12, 16)
    theta = torch.tensor([[0.9, 0.1, 0.05, -0.1, 1.1, 0.0]] * 2)
    reference = torch.nn.functional.grid_sample(  # torch's own op, independent of the package
        image, torch.nn.functional.affine_grid(theta.view(2, 2, 3), (2, 3, 12, 16), align_corners=True),
        align_corners=True)
    assert torch.allclose(G.warp_image(image.permute(0, 2, 3, 1), theta, "affine"), reference, atol=1e-5)
    as_uint8 = (image * 255).round().to(torch.uint8)
    assert torch.allclose(G.warp_image(as_uint8, theta, "affine"),
                          G.warp_image(as_uint8.float() / 255, theta, "affine"), atol=1e-6)
    poisoned = image.clone()
    poisoned[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="image holds 1 NaN"):
        G.warp_image(poisoned, theta, "affine")
    with pytest.raises(ValueError, match="theta holds NaN"):
        G.warp_image(image, theta * float("nan"), "affine")


def test_evaluation_methods_check_their_images(model):
    images = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="images_A has values in"):
        E.IdentityMethod().transforms(images * 255, images)
    with pytest.raises(ValueError, match="images_B holds"):
        E.ModelMethod(model).masks(images, images.clone().fill_(float("nan")))
    method = E.ModelMethod(model, "affine")
    as_uint8 = (images * 255).round().to(torch.uint8)
    assert torch.allclose(method.transforms(as_uint8, as_uint8),
                          method.transforms(as_uint8.float() / 255, as_uint8.float() / 255), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Checkpoints


def test_checkpoint_with_nan_weights_is_refused_naming_the_file(model, tmp_path):
    from macos_lite.checkpoints import CheckpointError, load_checkpoint, model_checkpoint, model_from_checkpoint

    state = model_checkpoint(model)
    good = tmp_path / "good.pt"
    torch.save(state, good)
    assert model_from_checkpoint(good).image_size == (64, 64)
    key = "affine_head." + next(k for k, _ in model.affine_head.named_parameters())
    state["model"][key] = state["model"][key].clone()
    state["model"][key].view(-1)[0] = float("inf")
    bad = tmp_path / "diverged.pt"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match=rf"diverged\.pt holds NaN or infinite weights in 1 tensor.*{key}"):
        model_from_checkpoint(bad)
    assert load_checkpoint(bad, check_finite=False)["model"][key].isinf().any()  # still inspectable


# ----------------------------------------------------------------------------------------------
# PF-WILLOW style inputs: tiny images, far keypoints, pair lists made on other systems


def _willow(root: Path, images: dict) -> Path:
    """images: stem -> (W, H, keypoints (10, 2) 1-based)."""
    folder = root / "PF-dataset" / "car(G)"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, (w, h, kps) in images.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{stem}.png")
        scipy.io.savemat(folder / f"{stem}.mat", {"pts_coord": np.asarray(kps, dtype=float).T})
    return root


def test_one_pixel_high_image_is_refused_naming_it(tmp_path):
    """Case tiny-image-silent-nan: a 50 x 1 image gave NaN keypoints and PCK 0.5 without a word."""
    from macos_lite.data.registry import get_pairs

    x = np.arange(1, 11) * 4.0
    root = _willow(tmp_path, {"strip": (50, 1, np.stack([x, np.ones(10)], 1)),
                              "normal": (50, 40, np.stack([x, np.full(10, 20.0)], 1))})
    pairs = get_pairs("pf-willow", root=root, image_size=32)
    with pytest.raises(DataError, match=r"strip\.png: the image is 50 x 1 pixels.*at least 2 x 2"):
        E.evaluate_matching(E.IdentityMethod(), pairs, normalizers=("kp_bbox",))
    with pytest.raises(ValueError, match="at least 2x2"):  # the per-sample sizes evaluate passes
        G.transfer_keypoints(torch.zeros(1, 2, 2, dtype=torch.float64),
                             G.identity_theta("affine", 1, dtype=torch.float64), "affine",
                             torch.tensor([[40, 50]]), torch.tensor([[1, 50]]), "B_to_A")


def test_keypoints_far_outside_are_refused_near_ones_kept(tmp_path):
    from macos_lite.data.registry import get_pairs

    x = np.arange(1, 11) * 4.0
    near = np.stack([x, np.full(10, 20.0)], 1)
    near[0] = (70.0, 55.0)  # beyond the 50 x 40 image, but by less than half its side: kept
    far = near.copy()
    far[4] = (4.0, 400.0)
    root = _willow(tmp_path / "near", {"a": (50, 40, near), "b": (50, 40, near)})
    assert len([get_pairs("pf-willow", root=root, image_size=32)[i] for i in range(2)]) == 2
    root = _willow(tmp_path / "far", {"a": (50, 40, near), "b": (50, 40, far)})
    with pytest.raises(DataError, match=r"b\.png.*keypoint 5 at \(x, y\) = \(4, 400\).*far outside the 50 x 40"):
        get_pairs("pf-willow", root=root, image_size=32)[0]


def _pair_list_rows(shift):
    """Two pairs of the same 50 x 40 images; B's keypoints 7..10 moved right by ``shift`` px."""
    x = np.arange(1, 11) * 4.0
    y = np.full(10, 20.0)
    xb = x + np.where(np.arange(10) >= 6, shift, 0.0)

    def nums(v):
        return ";".join(f"{t:g}" for t in v)

    return [("PF-dataset/car(G)/a.png", "PF-dataset/car(G)/b.png", nums(x), nums(y), nums(xb), nums(y)),
            ("PF-dataset/car(G)/b.png", "PF-dataset/car(G)/a.png", nums(xb), nums(y), nums(x), nums(y))]


@pytest.mark.parametrize("style", ["clean", "windows-excel", "latin-1-backslashes"])
def test_pair_lists_from_other_systems_are_read_as_meant(tmp_path, style):
    """With the identity, keypoints 1..6 are exact and 7..10 are 10 px off; the 'image' normaliser at
    alpha 0.1 allows 0.1 x 50 = 5 px, so each pair scores 6 / 10 (hand-computed)."""
    from macos_lite.data.registry import get_pairs

    x = np.arange(1, 11) * 4.0
    kps = np.stack([x, np.full(10, 20.0)], 1)
    root = _willow(tmp_path, {"a": (50, 40, kps), "b": (50, 40, kps)})
    header = ["source_image", "target_image", "class", "XA", "YA", "XB", "YB", "note"]
    rows = [[a, b, "1", xa, ya, xb, yb, "vérifié"] for a, b, xa, ya, xb, yb in _pair_list_rows(10.0)]
    if style == "clean":
        text, data = "\n".join(",".join(r) for r in [header, *rows]) + "\n", None
    elif style == "windows-excel":  # BOM, CRLF, blanks around fields, a spreadsheet's empty trailing columns
        lines = [" , ".join(header) + ",,"] + [", ".join(f" {v} " for v in r) + ",," for r in rows]
        data = "\ufeff".encode() + ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
    else:  # latin-1 text, Windows path separators
        lines = [",".join(header)] + [",".join(v.replace("/", "\\") for v in r) for r in rows]
        data = ("\n".join(lines) + "\n").encode("latin-1")
    csv_path = root / "test_pairs_pf.csv"
    if data is None:
        csv_path.write_text(text)
    else:
        csv_path.write_bytes(data)
    pairs = get_pairs("pf-willow", root=root, image_size=32)
    result = E.evaluate_matching(E.IdentityMethod(), pairs, alphas=(0.1,), normalizers=("image",))
    assert len(result.records) == 2
    assert result.pck() == pytest.approx(0.6, abs=1e-12)


def test_pair_list_with_a_header_and_no_rows_is_an_error(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_bytes(b"\xef\xbb\xbfimageA,imageB,flow_dir,flip\r\n\r\n")
    with pytest.raises(DataError, match=r"pairs\.csv: the header is there .* but no line follows it"):
        read_csv(path, ["imageA", "imageB"])
    path.write_text("")
    with pytest.raises(DataError, match=r"pairs\.csv: the file is empty"):
        read_csv(path)


# ----------------------------------------------------------------------------------------------
# TSS: a .flo without any known pixel is counted and reported, not silently averaged away


def test_flo_without_ground_truth_is_counted_not_averaged(shared_data, tmp_path):
    from macos_lite.data.registry import get_pairs

    src = shared_data / "tss-sample" / "TSS_CVPR2016" / "JODS" / "car_01_02"
    pair = tmp_path / "TSS_CVPR2016" / "JODS" / "car_01_02"
    shutil.copytree(src, pair)
    gt1 = read_flo(pair / "flow1.flo")
    write_flo(pair / "flow1.flo", torch.full_like(gt1, 1e10))  # every pixel "unknown"
    pairs = get_pairs("tss", root=tmp_path, image_size=32)
    summary = E.evaluate_tss(E.IdentityMethod(), pairs, masks=False).summary()
    assert summary["num_pairs"] == 1 and summary["num_without_ground_truth"] == 1
    assert summary["without_ground_truth"] == ["JODS/car_01_02/image2 -> JODS/car_01_02/image1"]
    assert any("no ground-truth pixel" in w for w in summary["warnings"])
    # the mean is the other direction's score alone, computed here with numpy: identity flow on B = image2
    flip = int((pair / "flip_gt.txt").read_text().split()[0]) if (pair / "flip_gt.txt").exists() else 0
    gt = read_flo(pair / "flow2.flo").numpy().astype(np.float64)
    h_b, w_b = gt.shape[:2]
    h_a, w_a = np.asarray(Image.open(pair / "image1.png")).shape[:2]
    ys, xs = np.mgrid[0:h_b, 0:w_b].astype(np.float64)
    x_a = xs * (w_a - 1) / (w_b - 1)
    if flip:
        x_a = (w_a - 1) - x_a
    flow = np.stack([x_a - xs, ys * (h_a - 1) / (h_b - 1) - ys], -1)
    valid = (np.abs(gt) < 1e9).all(-1)
    err = np.linalg.norm(flow - gt, axis=-1)
    expected = 1.0 - ((err > 0.05 * max(h_a, w_a)) & valid).sum() / valid.sum()
    assert summary["pck"]["0.05"] == pytest.approx(expected, abs=1e-6)
    assert math.isfinite(summary["pooled"])


# ----------------------------------------------------------------------------------------------
# Degenerate predictions: scored as wrong, counted, never a crash or a NaN mean


def test_degenerate_transforms_are_recognised():
    aff = torch.tensor([[1.0, 0, 0, 0, 1, 0], [-1.0, 0, 0, 0, 1, 0], [0.0, 0, 0, 0, 0, 0],
                        [float("nan"), 0, 0, 0, 1, 0]], dtype=torch.float64)
    assert G.degenerate_transforms(aff, "affine") == [None, None, "singular", "non-finite"]  # a mirror is fine
    tps = G.identity_theta("tps", 2, dtype=torch.float64)
    tps[1, 4] = 1.8  # the centre control point pushed past its right neighbour (x = 1): the map folds
    assert G.degenerate_transforms(tps, "tps") == [None, "folded"]


class _Scripted:
    """A method whose transforms are given per pair (and the identity's masks)."""

    name, kind = "scripted", "affine"

    def __init__(self, thetas):
        self.thetas, self.seen = thetas, 0

    def transforms(self, images_A, images_B):
        out = self.thetas[self.seen:self.seen + images_A.shape[0]]
        self.seen += images_A.shape[0]
        return out


@pytest.mark.parametrize("direction", ["B_to_A", "A_to_B"])
def test_degenerate_predictions_are_scored_wrong_and_counted(direction):
    from macos_lite.data.registry import get_pairs

    pairs = torch.utils.data.Subset(get_pairs("synthetic", split="test", image_size=32, num_pairs=4), range(3))
    identity = G.identity_theta("affine", 1)
    thetas = torch.cat([torch.full((1, 6), float("nan")), torch.zeros(1, 6), identity])
    kw = dict(alphas=(0.1,), normalizers=("image",), direction=direction, batch_size=2)
    result = E.evaluate_matching(_Scripted(thetas), pairs, **kw)
    reference = E.evaluate_matching(E.IdentityMethod(), pairs, **kw)
    assert [r["scores"][("image", 0.1)][0] for r in result.records[:2]] == [0.0, 0.0]
    assert [r["scores"][("image", 0.1)][1] for r in result.records] == \
        [r["scores"][("image", 0.1)][1] for r in reference.records]  # still counted
    assert result.records[2]["scores"] == reference.records[2]["scores"]
    expected = reference.records[2]["scores"][("image", 0.1)]
    assert result.pck() == pytest.approx(expected[0] / expected[1] / 3)
    summary = result.summary()
    assert summary["num_degenerate"] == 2 and len(summary["warnings"]) == 2
    assert "non-finite" in " ".join(summary["warnings"]) and "singular" in " ".join(summary["warnings"])


# ----------------------------------------------------------------------------------------------
# evaluate --json: a late failure keeps the results


def test_json_that_cannot_be_written_late_is_saved_elsewhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    target = tmp_path / "results" / "identity.json"
    original = evaluate_cli.write_json

    def flaky(summary, path, overwrite=True):
        if Path(path) == target:
            raise OSError(28, "No space left on device")
        return original(summary, path, overwrite=overwrite)

    monkeypatch.setattr(evaluate_cli, "write_json", flaky)
    args = parser.parse_args(["--dataset", "synthetic", "--method", "identity", "--image-size", "32",
                              "--max-pairs", "2", "--quiet", "--json", str(target)])
    assert evaluate_cli.run(args) == 2  # a full disk: the user's to fix, the results kept elsewhere
    err = capsys.readouterr().err
    assert "no space left on device" in err
    saved = Path(err.split("the results were written to ")[1].split(" instead")[0])
    assert saved.parent == tmp_path and not target.exists()
    data = json.loads(saved.read_text())
    assert data["dataset"] == "synthetic" and data["num_pairs"] == 2


# ----------------------------------------------------------------------------------------------
# course: a dying kernel names its cell and the likely cause


def test_kernel_death_names_the_cell(tmp_path, monkeypatch):
    """Case course-kernel-death: it said "before any cell ran" although cells had run."""
    import nbformat

    from macos_lite.course_runner import run_course

    folder = tmp_path / "nb"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("y = x + 1"),
                nbformat.v4.new_code_cell("import os\nos._exit(3)"), nbformat.v4.new_code_cell("z = 3")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(folder / "00_dies.ipynb"))
    monkeypatch.setenv("MACOS_LITE_THREADS", "1")
    summary = run_course(folder, tmp_path / "out", preset="smoke", html=False)
    error = summary["notebooks"][0]["error"]
    # papermill's injected parameters cell runs first ([1]), then x = 1 ([2]) and y = x + 1 ([3])
    assert "kernel died" in error and "cell [4] (import os)" in error and "out of memory" in error


def test_manual_dataset_is_checked_once_placed(tmp_path):
    from macos_lite.data import download as dl

    with pytest.raises(dl.DownloadError, match="rgb/horseNNN.jpg"):
        dl.download("weizmann-horse", tmp_path, quiet=True)
    (tmp_path / "weizmann-horse" / "figure_ground").mkdir(parents=True)
    assert dl.download("weizmann-horse", tmp_path, quiet=True) == tmp_path / "weizmann-horse"
    assert dl.dataset_status("weizmann-horse", tmp_path) == "present"
