"""Metrics on hand-computed cases and on the TSS sample folders."""

import math

import numpy as np
import pytest
import torch

from macos_lite import metrics as M


def test_pck_image_normalizer_hand_case():
    gt = torch.tensor([[[10.0, 10.0], [50.0, 50.0], [90.0, 20.0], [0.0, 0.0]]])
    pred = gt + torch.tensor([[[3.0, 4.0], [0.0, 10.5], [10.0, 0.0], [0.0, 0.0]]])  # distances 5, 10.5, 10, 0
    valid = torch.tensor([[True, True, True, False]])
    # L = max(100, 80) = 100, alpha 0.1 -> threshold 10: 5 and 10 correct, 10.5 not; the 4th is invalid
    assert M.pck(pred, gt, 0.1, "image", valid, size=(80, 100)) == pytest.approx(2 / 3)


def test_pck_scnet_rescales_to_224_anisotropically():
    gt = torch.tensor([[[100.0, 100.0], [100.0, 100.0]]])
    pred = gt + torch.tensor([[[40.0, 0.0], [0.0, 12.0]]])
    # W = 448 -> x-error 40 * 224 / 448 = 20 <= 22.4 ok; H = 112 -> y-error 12 * 2 = 24 > 22.4 wrong
    assert M.pck(pred, gt, 0.1, "scnet", size=(112, 448)) == pytest.approx(0.5)


def test_pck_kp_bbox_and_bbox_normalizers():
    gt = torch.tensor([[[10.0, 10.0], [30.0, 50.0], [1000.0, 1000.0]]])
    valid = torch.tensor([[True, True, False]])  # the invalid point must not enlarge the box
    pred = gt + torch.tensor([[[0.0, 4.0], [0.0, 4.5], [0.0, 0.0]]])
    # keypoint box 20 x 40 -> L = 40, threshold 4 at alpha 0.1: 4 correct, 4.5 wrong
    assert M.pck(pred, gt, 0.1, "kp_bbox", valid) == pytest.approx(0.5)
    # object box 60 x 45 -> L = 60, threshold 6: both correct
    assert M.pck(pred, gt, 0.1, "bbox", valid, bbox=torch.tensor([0.0, 0.0, 60.0, 45.0])) == 1.0


def test_pck_per_pair_vs_pooled():
    gt = torch.zeros(2, 4, 2)
    pred = gt.clone()
    pred[0, :3, 0] = 50.0  # pair 0: 1 of 4 correct
    valid = torch.tensor([[True] * 4, [True, False, False, False]])  # pair 1: 1 of 1 correct
    correct, counted = M.pck_per_pair(pred, gt, 0.1, "image", valid, size=(100, 100))
    assert correct.tolist() == [1, 1] and counted.tolist() == [4, 1]
    assert M.aggregate_pck(correct, counted, "per_pair") == pytest.approx((0.25 + 1.0) / 2)
    assert M.aggregate_pck(correct, counted, "pooled") == pytest.approx(2 / 5)


def test_pck_nan_predictions_are_wrong_and_empty_pairs_skipped():
    gt = torch.zeros(2, 2, 2)
    pred = torch.full((2, 2, 2), float("nan"))
    valid = torch.tensor([[True, True], [False, False]])
    assert M.pck(pred, gt, 0.1, "image", valid, size=(10, 10)) == 0.0
    assert math.isnan(M.pck(gt, gt, 0.1, "image", torch.zeros(2, 2, dtype=torch.bool), size=(10, 10)))


def test_pck_errors():
    with pytest.raises(ValueError, match="unknown PCK normalizer"):
        M.pck(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), normalizer="diag")
    with pytest.raises(ValueError, match="needs size"):
        M.pck(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), normalizer="image")
    with pytest.raises(ValueError, match="same shape"):
        M.pck(torch.zeros(1, 2, 2), torch.zeros(1, 3, 2), size=(5, 5))


def test_flow_pck_hand_case():
    gt = torch.zeros(2, 3, 2)
    gt[0, 0] = 2e9  # no ground truth
    pred = torch.zeros(2, 3, 2)
    pred[1, 2] = torch.tensor([3.0, 4.0])  # error 5 > 0.05 * 80 = 4
    pred[1, 1] = torch.tensor([0.0, 4.0])  # error 4: correct (not strictly above)
    assert M.flow_pck(pred, gt, into_size=(60, 80)) == pytest.approx(1 - 1 / 5)
    pred[0, 1] = 1e10  # a pixel the method sent outside the image
    assert M.flow_pck(pred, gt, into_size=(60, 80)) == pytest.approx(1 - 2 / 5)


def test_precision_and_jaccard_hand_case():
    gt = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0]])
    pred = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0]])
    assert M.precision(pred, gt) == pytest.approx(6 / 8)
    assert M.jaccard(pred, gt) == pytest.approx(3 / 5)


def test_empty_ground_truth_policy():
    empty = torch.zeros(3, 3)
    assert math.isnan(M.jaccard(torch.ones(3, 3), empty, "skip"))
    assert M.jaccard(torch.ones(3, 3), empty, "score") == 0.0
    assert M.jaccard(empty, empty, "score") == 1.0
    assert M.precision(empty, empty) == 1.0
    assert M.nanmean([1.0, math.nan, 0.5]) == 0.75


def test_binarize_prediction_resizes_to_ground_truth():
    prob = torch.zeros(1, 4, 4)
    prob[:, :, 2:] = 1.0
    mask = M.binarize_prediction(prob, (8, 12))
    assert mask.shape == (8, 12) and mask[:, -1].all() and not mask[:, 0].any()


def numpy_flo(path):
    """Middlebury .flo read directly with numpy (independent of the package's reader)."""
    raw = np.fromfile(path, dtype=np.float32)
    assert raw[0] == np.float32(202021.25)
    w, h = np.frombuffer(raw[1:3].tobytes(), dtype=np.int32)
    return raw[3:].reshape(h, w, 2).copy()


def test_tss_sample_flow_scores_one_against_itself_and_zero_flow_by_hand(shared_data):
    folders = sorted((shared_data / "tss-sample" / "TSS_CVPR2016").glob("*/*"))
    assert len(folders) == 6
    for folder in folders:
        from PIL import Image

        h2, w2 = Image.open(folder / "image2.png").size[::-1]
        gt = torch.from_numpy(numpy_flo(folder / "flow1.flo"))
        assert M.flow_pck(gt, gt, (h2, w2)) == 1.0
        # a zero flow: count by hand with numpy
        g = gt.numpy()
        valid = (np.abs(g) < 1e9).all(-1)
        err = np.linalg.norm(g, axis=-1)
        expected = 1 - ((err > 0.05 * max(h2, w2)) & valid).sum() / valid.sum()
        assert M.flow_pck(torch.zeros_like(gt), gt, (h2, w2)) == pytest.approx(expected)


def test_tss_sample_masks_jaccard_of_gt_is_one(shared_data):
    from PIL import Image

    folder = next(iter(sorted((shared_data / "tss-sample" / "TSS_CVPR2016").glob("*/*"))))
    gt = torch.from_numpy(np.array(Image.open(folder / "mask1.png").convert("L")) > 0)
    assert M.jaccard(gt, gt) == 1.0 and M.precision(gt, gt) == 1.0
    assert M.jaccard(torch.ones_like(gt), gt) == pytest.approx(gt.float().mean().item())
