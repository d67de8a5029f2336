"""Evaluation protocols on hand-made cases: every expected number is computed by hand or in closed form."""

import argparse
import json
import math

import numpy as np
import pytest
import torch

from macos_lite import evaluate_cli
from macos_lite import evaluation as E
from macos_lite import geometry as G
from macos_lite import paper, report
from macos_lite.data.imageio import read_flo

S = 32  # network-side image size of the fake items


# ---------------------------------------------------------------------------------------------------------
# Fake methods and items
# ---------------------------------------------------------------------------------------------------------

class TrueTransform:
    """Returns the transform each target image was made with (looked up by the image itself)."""

    name = "true"

    def __init__(self, kind, made):
        self.kind, self.made = kind, made  # made: list of (image_B, theta)

    def transforms(self, images_A, images_B):
        return torch.stack([next(t for img, t in self.made if torch.equal(img, b)) for b in images_B]).float()


def pair_item(kps_A, kps_B, valid, size_A, size_B, bbox_A, bbox_B, category="a", index=0, image_A=None,
              image_B=None):
    return {
        "image_A": torch.zeros(3, S, S) if image_A is None else image_A,
        "image_B": torch.zeros(3, S, S) if image_B is None else image_B,
        "size_A": torch.tensor(size_A), "size_B": torch.tensor(size_B),
        "kps_A": torch.tensor(kps_A, dtype=torch.float32), "kps_B": torch.tensor(kps_B, dtype=torch.float32),
        "kps_valid": torch.tensor(valid), "bbox_A": torch.tensor(bbox_A, dtype=torch.float32),
        "bbox_B": torch.tensor(bbox_B, dtype=torch.float32), "category": 0 if category == "a" else 1,
        "category_name": category, "name_A": f"{category}/A{index}", "name_B": f"{category}/B{index}", "index": index,
    }


def numpy_tps(points, target):
    """Closed-form TPS on the 3x3 X-major lattice (lambda 0): the map sending the lattice to ``target``."""
    axis = np.linspace(-1, 1, 3)
    ctrl = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)

    def u(d2):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d2 > 0, d2 * np.log(d2), 0.0)

    p = np.hstack([np.ones((9, 1)), ctrl])
    system = np.block([[u(((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)), p], [p.T, np.zeros((3, 3))]])
    coef = np.linalg.solve(system, np.vstack([target, np.zeros((3, 2))]))
    return np.hstack([u(((points[:, None] - ctrl[None]) ** 2).sum(-1)), np.ones((len(points), 1)), points]) @ coef


def to_norm(px, size):  # 0-based pixels -> corner-aligned normalised, size (H, W)
    h, w = size
    return np.stack([px[:, 0] * 2 / (w - 1) - 1, px[:, 1] * 2 / (h - 1) - 1], 1)


def to_px(n, size):
    h, w = size
    return np.stack([(n[:, 0] + 1) * (w - 1) / 2, (n[:, 1] + 1) * (h - 1) / 2], 1)


# ---------------------------------------------------------------------------------------------------------
# Keypoint PCK
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["affine", "tps"])
def test_true_transform_scores_one_in_both_directions(kind):
    rng = np.random.default_rng(0)
    size_A, size_B = (48, 64), (40, 56)
    items, made = [], []
    for i in range(3):
        if kind == "affine":
            m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]) + rng.normal(0, 0.1, (2, 3))
            theta = m.reshape(-1)

            def T(n, m=m):
                return n @ m[:, :2].T + m[:, 2]
        else:
            axis = np.linspace(-1, 1, 3)
            lattice = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
            target = lattice + rng.normal(0, 0.08, lattice.shape)
            theta = np.concatenate([target[:, 0], target[:, 1]])  # (Q_X, Q_Y)

            def T(n, target=target):
                return numpy_tps(n, target)
        kps_B = rng.uniform([6, 6], [size_B[1] - 7, size_B[0] - 7], (8, 2))
        kps_A = to_px(T(to_norm(kps_B, size_B)), size_A)  # exactly where the map sends them
        image_A = torch.rand(1, 3, *size_A)
        theta_t = torch.tensor(theta, dtype=torch.float32)[None]
        image_B = G.warp_image(image_A, theta_t, kind, out_size=size_B)  # B made by warping A
        item = pair_item(kps_A, kps_B, [True] * 8, size_A, size_B, [0, 0, 63, 47], [0, 0, 55, 39], index=i,
                         image_A=G.resize(image_A[0], (S, S)), image_B=G.resize(image_B[0], (S, S)))
        items.append(item)
        made.append((item["image_B"], theta_t[0]))
    method = TrueTransform(kind, made)
    for direction in E.DIRECTIONS:
        result = E.evaluate_matching(method, items, alphas=(0.01,), normalizers=("kp_bbox", "image"),
                                     direction=direction, batch_size=2)
        assert result.pck("kp_bbox", 0.01) == 1.0 and result.pck("image", 0.01) == 1.0, direction
    # the identity is far off on the same pairs
    assert E.evaluate_matching(E.IdentityMethod(), items, (0.01,), ("image",)).pck() < 0.5


def normalizer_items():
    """Pair 0: same size (100 x 200) for A and B, so the identity predicts kps_B itself in A (and kps_A in B).

    Errors of the three visible keypoints: 0, (8.5, 0) and (10, 10) px (length 14.14). The 4th keypoint is
    invisible and far off; were it counted, the fractions below would be out of 4 and A's keypoint box
    would grow to 140 px. Pair 1 (class b) is exact.
    """
    kps_A = [[10, 10], [50, 30], [90, 50], [150, 90]]
    kps_B = [[10, 10], [58.5, 30], [100, 60], [10, 90]]
    valid = [True, True, True, False]
    pair0 = pair_item(kps_A, kps_B, valid, (100, 200), (100, 200), [0, 0, 120, 60], [0, 0, 170, 40], "a", 0)
    pair1 = pair_item(kps_A, kps_A, [True] * 4, (100, 200), (100, 200), [0, 0, 120, 60], [0, 0, 170, 40], "b", 1)
    return [pair0, pair1]


def test_each_normalizer_by_hand():
    # alpha 0.1, judged in A (B_to_A):
    #   scnet:   errors rescaled to 224 x 224: (9.52, 0) <= 22.4 ok; (11.2, 22.4) -> 25.1 wrong -> 2/3
    #   image:   L = max(100, 200) = 200 -> 20: all three correct -> 3/3
    #   kp_bbox: A's visible keypoints span 80 x 40 -> L = 80 -> 8: only the exact one -> 1/3
    #   bbox:    A's object box 120 x 60 -> L = 120 -> 12: 0 and 8.5 correct -> 2/3
    expected = {"scnet": 2 / 3, "image": 1.0, "kp_bbox": 1 / 3, "bbox": 2 / 3}
    result = E.evaluate_matching(E.IdentityMethod(), normalizer_items(), (0.1,), tuple(expected), "B_to_A")
    for norm, value in expected.items():
        assert result.pck(norm, 0.1, category="a") == pytest.approx(value), norm
        assert result.pck(norm, 0.1, category="b") == 1.0
        assert result.pck(norm, 0.1) == pytest.approx((value + 1.0) / 2)  # mean over pairs
    assert result.records[0]["scores"][("image", 0.1)] == (3.0, 3.0)  # the invisible keypoint is not counted
    # A_to_B is judged in B: B's keypoints span 90 x 50 -> 9: 0 and 8.5 correct -> 2/3;
    # B's object box 170 x 40 -> 17: 3/3
    result = E.evaluate_matching(E.IdentityMethod(), normalizer_items(), (0.1,), ("kp_bbox", "bbox"), "A_to_B")
    assert result.pck("kp_bbox", 0.1, "a") == pytest.approx(2 / 3)
    assert result.pck("bbox", 0.1, "a") == 1.0


def test_matching_summary_keys_and_class_order():
    result = E.evaluate_matching(E.IdentityMethod(), normalizer_items()[::-1], (0.05, 0.1), ("image", "scnet"))
    s = result.summary()
    assert s["normalizer"] == "image" and s["pck"] == s["pck_by_normalizer"]["image"]
    assert list(s["pck"]) == ["0.05", "0.1"] and list(s["per_class"]) == ["a", "b"]  # by category index
    # image, alpha 0.05 -> 10 px: errors 0 and 8.5 correct, 14.1 wrong
    assert s["per_class"]["a"]["0.05"] == pytest.approx(2 / 3)
    assert s["mean_over_classes"]["0.05"] == pytest.approx((2 / 3 + 1) / 2)
    assert s["num_pairs"] == 2 and s["num_pairs_per_class"] == {"a": 1, "b": 1}


def test_a_failure_names_the_pair():
    class Broken(E.IdentityMethod):
        def transforms(self, images_A, images_B):
            raise RuntimeError("boom")

    with pytest.raises(E.EvaluationError, match=r"a/A0 -> a/B0 .*b/A1 -> b/B1: RuntimeError: boom"):
        E.evaluate_matching(Broken(), normalizer_items(), batch_size=2)
    with pytest.raises(ValueError, match="direction"):
        E.evaluate_matching(E.IdentityMethod(), normalizer_items(), direction="sideways")


# ---------------------------------------------------------------------------------------------------------
# TSS: flips, flow PCK summary, masks, .flo export
# ---------------------------------------------------------------------------------------------------------

H, W = 20, 30


def tss_item(subset, flip, u, index, mask_A, mask_B, pair="p"):
    """Directed item on a 20 x 30 grid with a flow whose x-part is ``u (H, W)`` and y-part 0; the top two
    rows have no ground truth."""
    flow = torch.stack([u, torch.zeros(H, W)], -1)
    flow[:2] = 1e10
    return {"image_A": torch.rand(3, S, S), "image_B": torch.rand(3, S, S), "size_A": torch.tensor([H, W]),
            "size_B": torch.tensor([H, W]), "flow_gt": flow, "mask_A": mask_A, "mask_B": mask_B, "flip": flip,
            "subset": subset, "pair_name": f"{subset}/{pair}", "flow_dir": 1, "name_A": f"{subset}/{pair}/image2",
            "name_B": f"{subset}/{pair}/image1", "index": index, "category": 0, "category_name": "car"}


def halves():
    left = torch.zeros(1, H, W)
    left[..., : W // 2] = 1
    return left, left.flip(-1)


def tss_items():
    x = torch.arange(W, dtype=torch.float32).expand(H, W)
    left, right = halves()
    # a pure mirror: x_A = (W - 1) - x_B, so u = 29 - 2 x; A's object is on the right, B's on the left
    mirror = tss_item("JODS", 1, (W - 1) - 2 * x, 0, right, left, "mirror")
    still = tss_item("PASCAL", 0, torch.zeros(H, W), 1, left, left, "still")
    shifted = tss_item("PASCAL", 0, torch.full((H, W), 3.0), 2, left, left, "shifted")  # 3 px > 0.05 * 30
    return [mirror, still, shifted]


class LeftHalf(E.IdentityMethod):
    """Identity transform, left half foreground (as the method sees the images); remembers its inputs."""

    name = "left-half"

    def __init__(self):
        self.seen_A = []

    def transforms(self, images_A, images_B):
        self.seen_A.append(images_A.clone())
        return super().transforms(images_A, images_B)

    def masks(self, images_A, images_B):
        m = torch.zeros_like(images_A[:, :1])
        m[..., : S // 2] = 1
        return m, m.clone()


def test_tss_flip_is_mirrored_for_the_method_and_mapped_back(tmp_path):
    items = tss_items()
    method = LeftHalf()
    result = E.evaluate_tss(method, items, flow_out=tmp_path, batch_size=3)
    assert torch.equal(method.seen_A[0][0], items[0]["image_A"].flip(-1))  # A mirrored for the flip pair only
    assert torch.equal(method.seen_A[0][1], items[1]["image_A"])
    s = result.summary()
    # JODS: the mirrored identity is the true mirror -> 1. PASCAL: still 1, shifted 0 -> 0.5
    assert s["per_class"] == {"JODS": 1.0, "PASCAL": 0.5}
    assert s["pck"]["0.05"] == pytest.approx(0.75) and s["pooled"] == pytest.approx(2 / 3)  # avg of subsets
    assert s["without_flip"]["per_class"] == {"PASCAL": 0.5} and s["without_flip"]["pck"]["0.05"] == 0.5
    # the exported flow is the mirror, in the kit's layout
    flow = read_flo(tmp_path / "JODS" / "mirror" / "flow1.flo")
    assert torch.allclose(flow[2:], items[0]["flow_gt"][2:], atol=1e-4)
    # masks: A's prediction (left half of the mirrored A) is mirrored back onto A's object (right half)
    seg = s["cosegmentation"]
    assert seg["per_class"]["JODS"]["precision"] == 1.0 and seg["per_class"]["JODS"]["jaccard"] == 1.0
    assert s["precision"] == 1.0 and s["jaccard"] == 1.0 and seg["num_images"] == 6


def test_tss_forgetting_to_map_x_back_scores_about_zero():
    mirror = tss_items()[0]
    identity = G.identity_theta("affine", 1)
    right = E.tss_flow(identity, "affine", (H, W), (H, W), mirrored=True)
    forgot = E.tss_flow(identity, "affine", (H, W), (H, W), mirrored=False)  # x of the mirror image kept
    scores = E.FlowScores(0.05)
    assert scores.add(mirror, right) == 1.0
    # u = 0 instead of 29 - 2x: within 1.5 px only in columns 14 and 15 -> 2 of 30
    assert scores.add(mirror, forgot) == pytest.approx(2 / 30)
    unmirrored = E.evaluate_tss(E.IdentityMethod(), [mirror], mirror_flipped=False, masks=False)
    assert unmirrored.summary()["pck"]["0.05"] == pytest.approx(2 / 30) and unmirrored.coseg is None


def test_tss_flow_marks_points_sent_outside_the_source():
    shift = torch.tensor([[1.0, 0.0, 0.5, 0.0, 1.0, 0.0]])  # x_A = x_B + 0.5 (normalised): right part leaves A
    flow = E.tss_flow(shift, "affine", (H, W), (H, W))
    # pixel x of B lands at 0-based x + 0.5 * 29 / 2 = x + 7.25 in A: inside while x + 7.25 <= 29
    assert torch.allclose(flow[:, :22], torch.tensor([7.25, 0.0])) and (flow[:, 22:] == 1e10).all()


# ---------------------------------------------------------------------------------------------------------
# Co-segmentation
# ---------------------------------------------------------------------------------------------------------

class FakeImages:
    """An image dataset with masks; ``values`` make constant images (what a partner-aware method sees)."""

    def __init__(self, masks, labels, names, values=None):
        self.masks, self.labels, self.names = masks, labels, names
        self.values = values or [0.5] * len(masks)

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        return {"image": torch.full((3, 4, 4), self.values[i]), "mask": self.masks[i], "category": self.labels[i],
                "category_name": self.names[self.labels[i]], "name": f"img{i}", "index": i,
                "size": torch.tensor(self.masks[i].shape[-2:])}


class TopHalf(E.IdentityMethod):
    """Probability 0.9 in the top half, 0.1 below, at 4 x 4."""

    def masks(self, images_A, images_B):
        m = torch.full((images_B.shape[0], 1, 4, 4), 0.1)
        m[:, :, :2] = 0.9
        return m, m.clone()


def gt(kind):
    m = torch.zeros(1, 8, 8)
    if kind == "top":
        m[:, :4] = 1
    elif kind == "left":
        m[:, :, :4] = 1
    elif kind == "full":
        m[:] = 1
    return m


@pytest.mark.parametrize("empty_gt, jaccard_y", [("skip", 0.5), ("score", 0.25)])
def test_coseg_precision_jaccard_and_empty_gt_policy(empty_gt, jaccard_y):
    # The 4 x 4 prediction resized to 8 x 8 (bilinear, corner-aligned) and thresholded is the top 4 rows.
    # class x: GT top -> P 1, J 1; GT left -> P 8/16... at 8 x 8: 32/64 = 0.5, J = 16 / 48 = 1/3
    # class y: GT empty -> P 0.5, J skipped (or 0 when scored); GT full -> P 0.5, J 0.5
    images = FakeImages([gt("top"), gt("left"), gt("empty"), gt("full")], [0, 0, 1, 1], ["x", "y"])
    s = E.evaluate_cosegmentation(TopHalf(), images, empty_gt=empty_gt, batch_size=3).summary()
    assert s["per_class"]["x"]["precision"] == pytest.approx(0.75)
    assert s["per_class"]["x"]["jaccard"] == pytest.approx((1 + 1 / 3) / 2)
    assert s["per_class"]["y"]["precision"] == pytest.approx(0.5)
    assert s["per_class"]["y"]["jaccard"] == pytest.approx(jaccard_y)
    assert s["precision"] == pytest.approx((0.75 + 0.5) / 2)
    assert s["jaccard"] == pytest.approx(((1 + 1 / 3) / 2 + jaccard_y) / 2)
    assert s["empty_gt"] == empty_gt and s["num_empty_gt"] == 1 and s["num_images"] == 4 and s["num_pairs"] == 4
    assert s["per_class"]["y"]["num_jaccard"] == (1 if empty_gt == "skip" else 2)


def test_identity_mask_is_all_foreground():
    images = FakeImages([gt("top"), gt("left")], [0, 0], ["x"])
    s = E.evaluate_cosegmentation(E.IdentityMethod(), images).summary()
    assert s["precision"] == 0.5 and s["jaccard"] == 0.5  # everything foreground: P = J = 32/64


class PartnerBrightness(E.IdentityMethod):
    """The target's probability is the partner's brightness, everywhere."""

    def masks(self, images_A, images_B):
        m = images_A[:, :1].clone()
        return m, m


def test_partner_probabilities_are_averaged():
    # brightness 0.2, 0.4, 1.0; ground truth all foreground, so P = 1 where the mean partner brightness > 0.5
    images = FakeImages([gt("full")] * 3, [0, 0, 0], ["z"], values=[0.2, 0.4, 1.0])
    one = E.evaluate_cosegmentation(PartnerBrightness(), images, partners=1)
    assert [r["precision"] for r in one.records] == [0.0, 1.0, 0.0]  # partners 1, 2, 0: 0.4, 1.0, 0.2
    two = E.evaluate_cosegmentation(PartnerBrightness(), images, partners=2, batch_size=4)
    assert [r["precision"] for r in two.records] == [1.0, 1.0, 0.0]  # means 0.7, 0.6, 0.3
    assert two.num_pairs == 6


def test_partners_are_same_category_and_deterministic():
    labels = [0, 1, 0, 0, 1, 2]
    assert E.partner_indices(labels, 1) == [[2], [4], [3], [0], [1], [5]]
    assert E.partner_indices(labels, 2) == [[2, 3], [4], [3, 0], [0, 2], [1], [5]]
    for i, partners in enumerate(E.partner_indices(labels, 3)):
        assert all(labels[p] == labels[i] for p in partners)
    with pytest.raises(ValueError, match="partners"):
        E.partner_indices(labels, 0)


# ---------------------------------------------------------------------------------------------------------
# Benchmarks by name, JSON, command line, reports, the paper's numbers
# ---------------------------------------------------------------------------------------------------------

MATCHING_KEYS = {"dataset", "split", "num_pairs", "pck", "normalizer", "per_class", "method", "protocol", "paper",
                 "direction", "pck_by_normalizer"}
COSEG_KEYS = {"precision", "jaccard", "per_class", "empty_gt", "num_images"}


def test_synthetic_summary_keys_and_strict_json():
    s = E.evaluate_dataset("synthetic", E.IdentityMethod(), image_size=64, max_pairs=5)
    assert MATCHING_KEYS <= set(s) and {"precision", "jaccard", "cosegmentation"} <= set(s)
    assert COSEG_KEYS <= set(s["cosegmentation"]) and s["num_pairs"] == 5 and s["split"] == "test"
    assert s["normalizer"] == "kp_bbox" and set(s["pck"]) == {"0.05", "0.1", "0.15"}
    assert "B_to_A" in s["protocol"] and "original resolution" in s["protocol"] and "0.5" in s["protocol"]
    assert s["method"] == {"name": "identity", "kind": "affine", "image_size": [64, 64], "network_size": None,
                           "checkpoint": None, "refine": "none"}
    back = json.loads(E.to_json({**s, "nan": math.nan}))
    assert back["nan"] is None and back["pck"] == s["pck"]


def test_evaluate_dataset_on_loaded_data_and_several_methods():
    """A loaded dataset (or a subset of it) and several methods give what the name gives, method by method."""
    from macos_lite.data.registry import get_pairs

    by_name = E.evaluate_dataset("synthetic", E.IdentityMethod(), image_size=64, max_pairs=5)
    pairs = get_pairs("synthetic", split="test", image_size=64)
    both = E.evaluate_dataset("synthetic", {"a": E.IdentityMethod(), "b": E.IdentityMethod()}, image_size=64,
                              max_pairs=5, dataset=pairs)
    assert list(both) == ["a", "b"]
    for s in both.values():
        assert {k: v for k, v in s.items() if k != "seconds"} == {k: v for k, v in by_name.items() if k != "seconds"}
    spread = E.evenly_spread(pairs, 4)
    assert spread.indices[0] == 0 and spread.indices[-1] == len(pairs) - 1
    [s] = E.evaluate_dataset("synthetic", [E.IdentityMethod()], image_size=64, dataset=spread)
    assert s["num_pairs"] == 4


def parse(argv):
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_identity_on_synthetic_writes_the_json(tmp_path, capsys):
    out = tmp_path / "results" / "synthetic.json"
    args = parse(["--dataset", "synthetic", "--method", "identity", "--json", str(out), "--image-size", "64",
                  "--max-pairs", "5", "--alpha", "0.1", "0.2", "--normalizer", "image", "--quiet"])
    assert evaluate_cli.run(args) == 0
    s = json.loads(out.read_text())
    assert MATCHING_KEYS <= set(s) and list(s["pck"]) == ["0.1", "0.2"] and s["normalizer"] == "image"
    text = capsys.readouterr().out
    assert "identity [image]" in text and f"wrote {out}" in text


def test_cli_checkpoint_runs_the_model(tmp_path, capsys):
    from macos_lite.checkpoints import model_checkpoint, save_checkpoint
    from macos_lite.model import MaCoSNet

    path = save_checkpoint(tmp_path / "tiny.pt", model_checkpoint(MaCoSNet("lite", image_size=64, pretrained=False)))
    out = tmp_path / "tiny.json"
    args = parse(["--dataset", "synthetic", "--checkpoint", str(path), "--json", str(out), "--max-pairs", "2",
                  "--device", "cpu", "--kind", "affine", "--quiet"])
    assert evaluate_cli.run(args) == 0
    s = json.loads(out.read_text())
    assert s["method"] == {"name": "tiny", "kind": "affine", "image_size": [64, 64], "network_size": [64, 64],
                           "checkpoint": str(path), "refine": "none"}
    assert all(0 <= v <= 1 for v in s["pck"].values()) and 0 <= s["precision"] <= 1


def test_cli_bad_input_says_what_to_do(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse(["--dataset", "pf-nowhere", "--method", "identity"])
    with pytest.raises(ValueError, match="unknown dataset 'pf-nowhere'"):
        E.evaluate_dataset("pf-nowhere", E.IdentityMethod())
    assert evaluate_cli.run(parse(["--dataset", "pf-willow", "--data-root", str(tmp_path / "none"), "--method", "identity"])) == 2
    assert "macos-lite download pf-willow" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert evaluate_cli.run(parse(["--dataset", "synthetic", "--checkpoint", str(missing)])) == 2
    assert str(missing) in capsys.readouterr().err
    assert evaluate_cli.run(parse(["--dataset", "synthetic", "--method", "identity", "--flow-out", str(tmp_path)])) == 2


def test_report_puts_the_paper_beside_this_run():
    summary = {"dataset": "pf-pascal", "split": "test", "num_pairs": 2, "seconds": 1.0, "protocol": "P.",
               "method": {"name": "identity", "kind": "affine"},
               "pck_by_normalizer": {"scnet": {"0.1": 0.5}},
               "per_class_by_normalizer": {"scnet": {"bird": {"0.1": 0.25}}}}
    text = report.format_text(summary)
    ours = next(line for line in text.splitlines() if line.startswith("this run: identity [scnet]"))
    assert ours.split()[-1] == "50.0" and "25.0" in ours.split()  # PF-PASCAL in %, like the paper
    assert any(line.startswith("paper: Ours") and line.split()[-1] == "79.0" for line in text.splitlines())
    md = report.to_markdown(summary)
    assert "| paper: NC-Net | ResNet-101 |" in md and "| this run: identity [scnet] |" in md


def test_paper_tables_match_the_slides_definitions():
    willow = paper.TABLES["pf-willow"]
    assert willow.value("Ours", "0.05") == 0.538 and willow.value("Ours", "0.15") == 0.939
    assert paper.TABLES["pf-pascal"].value("Ours", "mean") == 79.0 and paper.TABLES["spair"].percent
    assert [r.values[0] for r in paper.TABLES["spair"].rows_of("Ours")] == [25.8, 26.6]
    assert [t.key for t in paper.tables_for("tss")] == ["tss", "tss-coseg"] and paper.tables_for("synthetic") == []
    # "Avg." is the unweighted mean of the three subsets in both TSS tables (a check of the transcription)
    for row in paper.TABLES["tss"].rows:
        assert sum(row.values[:3]) / 3 == pytest.approx(row.values[3], abs=0.0011), row.method
    for row in paper.TABLES["tss-coseg"].rows:
        assert sum(row.values[0:6:2]) / 3 == pytest.approx(row.values[6], abs=0.0011), row.method
        assert sum(row.values[1:6:2]) / 3 == pytest.approx(row.values[7], abs=0.011), row.method


# ---------------------------------------------------------------------------------------------------------
# Benchmarks through their real loaders, on tiny trees in the official layouts
# ---------------------------------------------------------------------------------------------------------

def write_image(path, height, width, value=128):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path)


def write_mask(path, mask):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(path)


def test_pf_pascal_protocol_through_the_loader(tmp_path, capsys):
    import scipy.io

    base = tmp_path / "PF-dataset-PASCAL"
    for stem in ("img1", "img2", "img3"):
        write_image(base / "JPEGImages" / f"{stem}.jpg", 48, 64)
        (base / "Annotations" / "bird").mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(base / "Annotations" / "bird" / f"{stem}.mat",
                         {"kps": np.ones((3, 2)), "bbox": np.array([[1.0, 1.0, 40.0, 30.0]])})
    (tmp_path / "test_pairs_pf_pascal.csv").write_text(  # 1-based keypoints, class 3 = bird
        "source_image,target_image,class,XA,YA,XB,YB\n"
        "JPEGImages/img1.jpg,JPEGImages/img2.jpg,3,11;31,21;41,12;14,22;24\n"
        "JPEGImages/img1.jpg,JPEGImages/img3.jpg,3,11,21,1,1\n")
    out = tmp_path / "pascal.json"
    assert evaluate_cli.run(parse(["--dataset", "pf-pascal", "--data-root", str(tmp_path), "--method", "identity",
                        "--image-size", "32", "--json", str(out), "--quiet"])) == 0
    s = json.loads(out.read_text())
    # same image sizes, so the identity predicts B's keypoints in A. Errors rescaled to 224 x 224
    # (x * 224/64, y * 224/48): pair 1: (1, 1) -> 5.8 ok, (-17, -17) -> 99 wrong; pair 2: (-10, -20) wrong
    assert s["normalizer"] == "scnet" and s["direction"] == "B_to_A" and s["split"] == "test"
    assert s["pck"]["0.1"] == pytest.approx(0.25) and s["per_class"] == {"bird": {"0.1": 0.25}}
    ours = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("this run"))
    assert ours.split()[-1] == "25.0" and ours.split().count("-") == 19  # mean and bird in %, 19 classes absent


def test_spair_protocol_through_the_loader(tmp_path):
    base = tmp_path / "SPair-71k"
    for stem in ("2008_000001", "2008_000002"):
        write_image(base / "JPEGImages" / "cat" / f"{stem}.jpg", 30, 40)
    name = "000001-2008_000001-2008_000002:cat"
    annotation = {"src_imname": "2008_000001.jpg", "trg_imname": "2008_000002.jpg", "src_kps": [[1, 2], [3, 4]],
                  "trg_kps": [[5, 6], [7, 8]], "src_bndbox": [0, 1, 20, 21], "trg_bndbox": [2, 3, 30, 25],
                  "category": "cat"}
    (base / "PairAnnotation" / "test").mkdir(parents=True)
    (base / "PairAnnotation" / "test" / f"{name}.json").write_text(json.dumps(annotation))
    # A_to_B: the identity leaves the source keypoints in place in the (same-size) target: errors (4, 4) = 5.66;
    # the target box is 28 x 22 -> L = 28: wrong at alpha 0.1 (2.8), right at 0.25 (7)
    s = E.evaluate_dataset("spair", E.IdentityMethod(), root=tmp_path, image_size=32, alphas=(0.1, 0.25))
    assert s["direction"] == "A_to_B" and s["normalizer"] == "bbox" and s["split"] == "test"
    assert s["pck"] == {"0.1": 0.0, "0.25": 1.0} and s["per_class"] == {"cat": {"0.1": 0.0, "0.25": 1.0}}
    assert "target" in s["protocol"] and "object box" in s["protocol"]


def test_internet_protocol_counts_noise_images_in_p_only(tmp_path):
    fg = {"a": (slice(2, 6), slice(3, 9)), "c": (slice(2, 6), slice(3, 9)), "d": (slice(0, 6), slice(0, 16))}
    for subset, stems in (("Airplane100", "ab"), ("Car100", "cd"), ("Horse100", "h")):
        for stem in stems:
            write_image(tmp_path / "Data" / subset / f"{stem}.jpg", 12, 16)
            mask = np.zeros((12, 16))
            if stem in fg:
                mask[fg[stem]] = 1
            elif stem == "h":
                mask[:] = 1
            write_mask(tmp_path / "Data" / subset / "GroundTruth" / f"{stem}.png", mask)
    s = E.evaluate_dataset("internet", E.IdentityMethod(), root=tmp_path, image_size=16)
    # all foreground: a 24/192 = 0.125 (P = J); b is a noise image: P = 0, J skipped; c 0.125; d 96/192 = 0.5; h 1
    assert s["per_class"]["airplane"]["precision"] == pytest.approx(0.0625)
    assert s["per_class"]["airplane"]["jaccard"] == pytest.approx(0.125)
    assert s["per_class"]["car"]["precision"] == s["per_class"]["car"]["jaccard"] == pytest.approx(0.3125)
    assert s["precision"] == pytest.approx((0.0625 + 0.3125 + 1) / 3)
    assert s["jaccard"] == pytest.approx((0.125 + 0.3125 + 1) / 3)
    assert s["num_empty_gt"] == 1 and s["empty_gt"] == "skip" and s["num_pairs"] == 5
    assert "skipped in J" in s["protocol"] and [t["key"] for t in s["paper"]] == ["internet"]
    text = report.format_text(s)
    assert "paper: DOCS" in text and "1 with empty ground truth (skipped in J)" in text
