"""The training-free co-localisation prior and the prior loss, against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from macos_lite.colocalization import (colocalize_features, ddt_projection, edge_refine, largest_component,
                                       prototype_scores)
from macos_lite.losses.prior import prior_bce, prior_loss, warm_start_bias
from macos_lite.pseudo_masks import PseudoMasks, partner_lists


def test_ddt_projection_is_the_first_principal_component_of_numpy_svd():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3, 5, 4, 4))
    x = feats.transpose(0, 2, 3, 1).reshape(-1, 5)
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    expected = (xc @ vt[0]).reshape(3, 4, 4)
    got = ddt_projection(torch.from_numpy(feats).float()).double().numpy()
    # same line up to the sign; the sign makes the border mean negative
    sign = np.sign((got * expected).sum())
    np.testing.assert_allclose(got, sign * expected, atol=1e-5)
    border = np.concatenate([got[:, 0].ravel(), got[:, -1].ravel(), got[:, 1:-1, 0].ravel(), got[:, 1:-1, -1].ravel()])
    assert border.mean() < 0


def test_ddt_finds_a_blob_that_recurs_in_every_image():
    rng = np.random.default_rng(1)
    # backgrounds: a direction of their own per image plus noise; the object: one direction shared by all
    feats = torch.from_numpy(rng.normal(scale=0.2, size=(4, 8, 6, 6))).float()
    truth = torch.zeros(4, 6, 6, dtype=torch.bool)
    for i, (y, x) in enumerate([(1, 1), (2, 2), (1, 3), (3, 1)]):
        feats[i, 4 + i] += 1.0
        feats[i, :, y:y + 2, x:x + 2] = torch.tensor([2.0, -1.0, 0, 0, 0, 0, 0, 0]).view(8, 1, 1)
        truth[i, y:y + 2, x:x + 2] = True
    plain = colocalize_features(feats, rounds=0).masks  # DDT + largest component: nearly right
    assert (plain & truth).sum() / (plain | truth).sum() >= 0.75
    assert torch.equal(colocalize_features(feats, rounds=2).masks, truth)  # refined: exactly the blobs


def test_largest_component_against_a_hand_made_grid():
    grid = np.array([[1, 1, 0, 0, 1],
                     [1, 0, 0, 1, 1],
                     [0, 0, 0, 1, 1],
                     [1, 0, 0, 0, 1]], bool)
    expected = np.array([[0, 0, 0, 0, 1],
                         [0, 0, 0, 1, 1],
                         [0, 0, 0, 1, 1],
                         [0, 0, 0, 0, 1]], bool)
    np.testing.assert_array_equal(largest_component(grid), expected)
    assert not largest_component(np.zeros((3, 3), bool)).any()
    # 4-connectivity: diagonal neighbours are separate components
    np.testing.assert_array_equal(largest_component(np.eye(3, dtype=bool)), np.diag([True, False, False]))


def test_prototype_scores_by_hand():
    # two images, two cells each, 2-d descriptors: object (1, 0), background (0, 1)
    feats = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]], [[[1.0, 0.0]], [[0.0, 1.0]]]])  # (2, 2, 1, 2)
    masks = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])
    d = prototype_scores(feats, masks)
    # cos with o = (1, 0) minus cos with b_i = (0, 1): +1 on the object cell, -1 on the background cell
    torch.testing.assert_close(d, torch.tensor([[[1.0, -1.0]], [[1.0, -1.0]]]))


def test_edge_refine_keeps_a_constant_map_and_follows_an_image_edge():
    images = torch.zeros(1, 3, 32, 32)
    images[..., 16:] = 1.0  # a vertical colour edge at x = 16
    const = edge_refine(images, torch.full((1, 1, 8, 8), 0.3), radius=0.25)
    torch.testing.assert_close(const, torch.full_like(const, 0.3), atol=1e-4, rtol=0)
    coarse = torch.zeros(1, 1, 32, 32)
    coarse[..., 12:] = 1.0  # a mask edge 4 px left of the image edge
    refined = edge_refine(images, coarse, radius=0.25, eps=1e-4)
    # the guided filter moves the mask's steepest change from its own edge (x = 11 -> 12) onto the image's
    # (x = 15 -> 16)
    step = refined[0, 0].mean(0).diff().abs()
    assert int(step.argmax()) == 15
    assert int(coarse[0, 0].mean(0).diff().abs().argmax()) == 11


def _square_mask(size=16, lo=4, hi=12):
    q = torch.zeros(1, 1, size, size)
    q[..., lo:hi, lo:hi] = 1.0
    return q


def test_prior_loss_prefers_the_true_mask_to_the_trivial_ones():
    q = _square_mask()
    big = 8.0
    candidates = {"true": big * (2 * q - 1), "empty": torch.full_like(q, -big), "full": torch.full_like(q, big),
                  "inverted": big * (1 - 2 * q), "half": torch.zeros_like(q)}
    for confidence in (True, False):
        for balanced in (True, False):
            scores = {k: float(prior_bce(v, q, confidence, balanced)) for k, v in candidates.items()}
            assert min(scores, key=scores.get) == "true", (confidence, balanced, scores)


def test_prior_loss_minimiser_is_the_calibrated_probability():
    # soft targets: the gradient of the balanced, logit-adjusted loss vanishes at z = logit(Q) (closed form)
    q = torch.tensor([0.1, 0.2, 0.8, 0.9, 0.05, 0.7]).view(1, 1, 2, 3)
    z = torch.log(q / (1 - q)).requires_grad_(True)
    prior_bce(z, q, confidence=True, balanced=True).sum().backward()
    assert z.grad.abs().max() < 1e-6
    z2 = (torch.log(q / (1 - q)) + 0.5).requires_grad_(True)  # any other logits: a non-zero gradient
    prior_bce(z2, q).sum().backward()
    assert z2.grad.abs().max() > 1e-3


def test_prior_loss_over_the_pairs_of_a_model_output():
    from macos_lite.model import MaCoSOutput

    q = _square_mask(8, 2, 6)
    logits = torch.stack([8 * (2 * q - 1), torch.zeros_like(q)])  # pair (1, 0): right mask; pair (0, 1): p = 1/2
    out = MaCoSOutput(pairs=[(1, 0), (0, 1)], theta_aff=torch.zeros(2, 1, 6), corr=torch.zeros(2, 1, 1, 1, 1),
                      mask_logits=logits)
    targets = torch.stack([q, q], dim=1)  # (B, T, 1, H, W)
    expected = (prior_bce(logits[0], q) + prior_bce(logits[1], q)) / 2
    torch.testing.assert_close(prior_loss(out, targets), expected)


def test_warm_start_bias_sets_the_foreground_probability():
    from macos_lite.decoder import Decoder

    dec = Decoder(8, (4, 4, 4), (8, 8, 8))
    warm_start_bias(dec, 0.25)
    assert math.isclose(torch.sigmoid(dec.up1.bias).item(), 0.25, rel_tol=1e-5)


def test_pseudo_masks_targets_refresh_and_state():
    prior = torch.zeros(3, 1, 16, 16)
    prior[:, :, 4:12, 4:12] = 1.0
    pm = PseudoMasks(prior, 8, momentum=1.0)
    t = pm.targets(torch.tensor([[0, 2]]))
    assert t.shape == (1, 2, 1, 8, 8)
    assert t[0, 0, 0, 4, 4] == 1.0 and t[0, 0, 0, 0, 0] == 0.0
    assert math.isclose(pm.foreground_fraction, 0.25)
    # momentum 1: a refresh keeps the prior (filtered along a flat guide: unchanged in the flat interior)
    pm.refresh(torch.zeros(3, 1, 8, 8), torch.full((3, 3, 16, 16), 0.5))
    assert pm.refreshes == 1
    state = pm.state_dict()
    other = PseudoMasks(prior, 8)
    other.load_state_dict(state)
    assert torch.equal(other.current, pm.current) and other.refreshes == 1
    with pytest.raises(ValueError):
        PseudoMasks(prior[:2], 8).load_state_dict(state)


def test_partner_lists_stay_in_the_category_and_never_pick_the_image_itself():
    labels = [0, 0, 0, 1, 1, 2]
    lists = partner_lists(labels, partners=3, seed=0)
    for i, ps in enumerate(lists):
        if labels.count(labels[i]) == 1:
            assert ps == [i]
        else:
            assert i not in ps and all(labels[p] == labels[i] for p in ps)
            assert len(ps) == min(3, labels.count(labels[i]) - 1)


def test_model_masks_average_the_partners_forward_pass():
    from macos_lite.model import MaCoSNet
    from macos_lite.pseudo_masks import model_masks

    torch.manual_seed(0)
    model = MaCoSNet("lite", 64, pretrained=False, backbone_mode="frozen").eval()
    images = torch.rand(4, 3, 64, 64)
    labels = [0, 0, 0, 1]
    got = model_masks(model, images, labels, partners=2, batch_size=3, seed=0)
    plist = partner_lists(labels, 2, seed=0)
    with torch.no_grad():  # the reference: the model's own forward pass, pair by pair
        for t, ps in enumerate(plist):
            probs = [torch.sigmoid(model(torch.stack((images[p], images[t]))[None], tps=False).mask_logits[0, 0])
                     for p in ps]
            torch.testing.assert_close(got[t], torch.stack(probs).mean(0), atol=1e-5, rtol=1e-4)


def test_grid_masks_are_resized_cell_centre_aligned():
    from macos_lite.colocalization import CoLocalization

    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 1:3, 1:3] = True  # cells 1..2 of a stride-4 grid cover pixels 4..11 of a 16-pixel image
    probs = CoLocalization(masks=masks, scores=masks.float()).probabilities(16)[0, 0]
    expected = torch.zeros(16, dtype=torch.bool)
    expected[4:12] = True
    # through the middle of the block (away from its bilinearly rounded corners): exactly pixels 4..11
    assert torch.equal(probs[8] > 0.5, expected) and torch.equal(probs[:, 8] > 0.5, expected)
