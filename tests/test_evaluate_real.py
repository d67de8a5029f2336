"""Evaluation protocols end to end on the real development data (PF-WILLOW subset, TSS kit samples,
Weizmann Horse subset), checked against references computed here from the raw files with numpy.

Needs the folder named by env MACOS_LITE_SHARED_DATA (the CI sets it); skipped elsewhere.
"""

import itertools

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torch.utils.data import Subset

from macos_lite import evaluation as E
from macos_lite import paths
from macos_lite.data.registry import get_pairs

SHARED = paths.shared_data_root()
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(SHARED is None, reason="no real data: set MACOS_LITE_SHARED_DATA to its folder"),
]
ALPHAS = (0.05, 0.1, 0.15)


def willow_identity_reference():
    """PCK of the identity map on every ordered pair of the subset, from the .mat files and image sizes.

    The identity sends B's pixel x to x (W_A - 1) / (W_B - 1) in A (corner-aligned coordinates).
    """
    base = SHARED / "pf-willow-dev" / "PF-dataset"
    scores = {("kp_bbox", a): [] for a in ALPHAS} | {("scnet", a): [] for a in ALPHAS}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        stems = sorted(p.stem for p in folder.glob("*.png"))
        for a, b in itertools.permutations(stems, 2):
            kps = {s: scipy.io.loadmat(folder / f"{s}.mat")["pts_coord"].T - 1.0 for s in (a, b)}
            (w_a, h_a), (w_b, h_b) = (Image.open(folder / f"{s}.png").size for s in (a, b))
            pred = kps[b] * [(w_a - 1) / (w_b - 1), (h_a - 1) / (h_b - 1)]
            err = pred - kps[a]
            box = (kps[a].max(0) - kps[a].min(0)).max()
            for alpha in ALPHAS:
                scores[("kp_bbox", alpha)].append(np.mean(np.hypot(*err.T) <= alpha * box))
                scaled = err * [224 / w_a, 224 / h_a]
                scores[("scnet", alpha)].append(np.mean(np.hypot(*scaled.T) <= alpha * 224))
    return {k: float(np.mean(v)) for k, v in scores.items()}, len(scores[("scnet", 0.1)])


def test_identity_on_pf_willow_both_normalizers():
    s = E.evaluate_dataset("pf-willow", E.IdentityMethod(), root=SHARED / "pf-willow-dev", image_size=32)
    reference, num_pairs = willow_identity_reference()
    assert s["num_pairs"] == num_pairs == 450 and s["normalizer"] == "kp_bbox"
    for (norm, alpha), value in reference.items():
        assert s["pck_by_normalizer"][norm][f"{alpha:g}"] == pytest.approx(value, abs=1e-9), (norm, alpha)
    assert len(s["per_class"]) == 5 and all(n == 90 for n in s["num_pairs_per_class"].values())
    assert [t["key"] for t in s["paper"]] == ["pf-willow"]


def read_flo(path):
    data = np.fromfile(path, dtype="<f4")
    w, h = np.frombuffer(data[1:3].tobytes(), dtype="<i4")
    return data[3:].reshape(h, w, 2)


def tss_identity_reference():
    """Per subset: identity flow PCK@0.05 of every directed item (A mirrored when flip = 1) and the
    all-foreground P (= J) of every image, from the raw files."""
    base = SHARED / "tss-sample" / "TSS_CVPR2016"
    flow, flow_no_flip, fg = {}, {}, {}
    for subset in ("FG3DCar", "JODS", "PASCAL"):
        for folder in sorted((base / subset).iterdir()):
            flip = int((folder / "flip_gt.txt").read_text().split()[0])
            for d in (1, 2):
                gt = read_flo(folder / f"flow{d}.flo")
                w_a, h_a = Image.open(folder / f"image{3 - d}.png").size
                h_b, w_b = gt.shape[:2]
                y, x = np.mgrid[0:h_b, 0:w_b].astype(np.float64)
                x_a, y_a = x * (w_a - 1) / (w_b - 1), y * (h_a - 1) / (h_b - 1)
                if flip:
                    x_a = (w_a - 1) - x_a
                valid = gt[..., 0] < 1e9
                err = np.hypot(x_a - x - gt[..., 0], y_a - y - gt[..., 1])[valid]
                score = np.mean(err <= 0.05 * max(h_a, w_a))
                flow.setdefault(subset, []).append(score)
                if not flip:
                    flow_no_flip.setdefault(subset, []).append(score)
                mask = np.asarray(Image.open(folder / f"mask{d}.png"))
                fg.setdefault(subset, []).append(np.mean((mask.max(-1) if mask.ndim == 3 else mask) > 0))
    return ({k: np.mean(v) for k, v in flow.items()}, {k: np.mean(v) for k, v in flow_no_flip.items()},
            {k: np.mean(v) for k, v in fg.items()})


@pytest.fixture(scope="module")
def tss_items():
    pairs = get_pairs("tss", root=SHARED / "tss-sample", image_size=32)
    return [pairs[i] for i in range(len(pairs))]


def test_identity_on_the_tss_sample(tss_items, tmp_path):
    s = E.evaluate_tss(E.IdentityMethod(), tss_items, flow_out=tmp_path).summary()
    flow, no_flip, fg = tss_identity_reference()
    assert s["num_pairs"] == 12 and list(s["per_class"]) == ["FG3DCar", "JODS", "PASCAL"]
    for subset, value in flow.items():
        assert s["per_class"][subset] == pytest.approx(value, abs=1e-9), subset
        assert s["without_flip"]["per_class"][subset] == pytest.approx(no_flip[subset], abs=1e-9), subset
    assert s["pck"]["0.05"] == pytest.approx(np.mean(list(flow.values())), abs=1e-9)
    for subset, value in fg.items():  # everything foreground: P = J = foreground fraction
        assert s["cosegmentation"]["per_class"][subset]["precision"] == pytest.approx(value, abs=1e-9)
        assert s["cosegmentation"]["per_class"][subset]["jaccard"] == pytest.approx(value, abs=1e-9)
    assert s["cosegmentation"]["num_images"] == 12
    assert len(list(tmp_path.glob("*/*/flow*.flo"))) == 12


def test_ground_truth_flow_scores_one_through_the_scoring_path(tss_items):
    scores = E.FlowScores(0.05)
    for item in tss_items:
        scores.add(item, item["flow_gt"])
    s = scores.summary()
    assert s["pck"]["0.05"] == 1.0 and set(s["per_class"].values()) == {1.0} and s["num_pairs"] == 12


def test_tss_by_name_gives_both_tasks():
    s = E.evaluate_dataset("tss", E.IdentityMethod(), root=SHARED / "tss-sample", image_size=32, max_pairs=2)
    assert {"pck", "normalizer", "per_class", "without_flip", "precision", "jaccard", "cosegmentation"} <= set(s)
    assert s["num_pairs"] == 2 and s["normalizer"] == "tss-flow" and s["cosegmentation"]["num_images"] == 2
    assert [t["key"] for t in s["paper"]] == ["tss", "tss-coseg"] and "mirrored" in s["protocol"]


def test_identity_on_the_weizmann_subset():
    s = E.evaluate_dataset("weizmann-horse", E.IdentityMethod(), root=SHARED / "weizmann-horse-dev", image_size=32)
    masks = sorted((SHARED / "weizmann-horse-dev" / "figure_ground").glob("*.jpg"))
    fg = [np.mean(np.asarray(Image.open(p).convert("L")) > 127) for p in masks]
    assert s["num_images"] == len(masks) == 164 and s["num_empty_gt"] == 0
    assert s["precision"] == pytest.approx(np.mean(fg), abs=1e-9) and s["jaccard"] == pytest.approx(np.mean(fg))
    assert list(s["per_class"]) == ["horse"] and "paper" in s and s["paper"] == []


@pytest.fixture(scope="module")
def untrained():
    from macos_lite.model import MaCoSNet

    torch.manual_seed(0)
    return E.ModelMethod(MaCoSNet("lite", image_size=64, pretrained=False))


def test_untrained_model_runs_through_every_protocol(untrained):
    def fraction(x):
        return 0.0 <= x <= 1.0

    willow = E.evaluate_dataset("pf-willow", untrained, root=SHARED / "pf-willow-dev", image_size=64, max_pairs=3,
                                direction="A_to_B")
    assert willow["num_pairs"] == 3 and all(fraction(v) for v in willow["pck_by_normalizer"]["scnet"].values())
    # the regression heads start at the identity (zero last layer), so the untrained cascade is the identity
    identity = E.evaluate_dataset("pf-willow", E.IdentityMethod(), root=SHARED / "pf-willow-dev", image_size=32,
                                  max_pairs=3, direction="A_to_B")
    for norm, values in identity["pck_by_normalizer"].items():
        assert willow["pck_by_normalizer"][norm] == pytest.approx(values), norm
    pairs = get_pairs("tss", root=SHARED / "tss-sample", image_size=64)
    tss = E.evaluate_tss(untrained, Subset(pairs, [0, 10, 11]), batch_size=3).summary()  # 10, 11: the flip pair
    assert tss["num_pairs"] == 3 and fraction(tss["pck"]["0.05"]) and fraction(tss["jaccard"])
    assert tss["without_flip"]["num_pairs"] == 1
    horses = E.evaluate_dataset("weizmann-horse", untrained, root=SHARED / "weizmann-horse-dev", image_size=64,
                                max_pairs=3)
    assert horses["num_images"] == 3 and fraction(horses["precision"]) and fraction(horses["jaccard"])
