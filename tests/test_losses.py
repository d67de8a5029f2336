"""Each loss on hand-made cases, and where gradients flow."""

import pytest
import torch

from macos_lite import geometry as G
from macos_lite.losses import (COSEG_TERMS, DEFAULT_WEIGHTS, PAPER_WEIGHTS, RECIPES, LossConfig, MaCoSLoss, ablation,
                               contrastive_terms, correspondence_mask, cycle_loss,
                               matching_score, object_background, task_loss, transitivity_loss, warped_mask_bce)
from macos_lite.model import MaCoSOutput


def output_from(thetas: dict, n_images: int, tps: dict | None = None, masks: dict | None = None, size=64, grid=4):
    """A MaCoSOutput built by hand: thetas[(s, t)] (B, 6) maps t into s."""
    pairs = [(s, t) for s in range(n_images) for t in range(n_images) if s != t]
    b = next(iter(thetas.values())).shape[0]
    corr = torch.zeros(len(pairs), b, grid * grid, grid, grid)
    return MaCoSOutput(
        pairs=pairs,
        theta_aff=torch.stack([thetas[p] for p in pairs]),
        theta_tps=None if tps is None else torch.stack([tps[p] for p in pairs]),
        corr=corr,
        mask_logits=None if masks is None else torch.stack([masks[p] for p in pairs]),
        image_size=(size, size),
    )


def rand_affine(b, scale=0.15):
    return G.identity_theta("affine", b, dtype=torch.float64) + scale * torch.randn(b, 6, dtype=torch.float64)


# --- cycle and transitivity -------------------------------------------------------------------

def test_cycle_loss_zero_for_exact_inverse_positive_otherwise():
    t01 = rand_affine(3)
    out = output_from({(0, 1): t01, (1, 0): G.invert_affine(t01)}, 2)
    assert cycle_loss(out).max() < 1e-5
    bad = output_from({(0, 1): t01, (1, 0): G.invert_affine(t01) + 0.05}, 2)
    assert (cycle_loss(bad) > 1e-2).all()


def test_cycle_loss_value_for_a_translation_pair():
    # T_01 shifts by +0.1 in x, T_10 by +0.1 too: the round trip is off by 0.2 everywhere, both directions
    shift = torch.tensor([[1.0, 0.0, 0.1, 0.0, 1.0, 0.0]], dtype=torch.float64)
    out = output_from({(0, 1): shift, (1, 0): shift}, 2)
    assert cycle_loss(out).item() == pytest.approx(0.4, abs=1e-5)  # eq 4: both directions summed


def test_transitivity_zero_for_consistent_triplet():
    # images 0, 1, 2 related by arbitrary maps; all six directed transforms derived consistently
    t01, t02 = rand_affine(2), rand_affine(2)  # t01 maps 1 -> 0, t02 maps 2 -> 0
    thetas = {(0, 1): t01, (0, 2): t02, (1, 0): G.invert_affine(t01), (2, 0): G.invert_affine(t02)}
    thetas[(1, 2)] = G.compose_affine(G.invert_affine(t01), t02)  # 2 -> 0 -> 1
    thetas[(2, 1)] = G.invert_affine(thetas[(1, 2)])
    out = output_from(thetas, 3)
    assert transitivity_loss(out).max() < 1e-5
    thetas[(1, 2)] = thetas[(1, 2)] + torch.tensor([0.0, 0.0, 0.1, 0.0, 0.0, 0.0], dtype=torch.float64)
    assert (transitivity_loss(output_from(thetas, 3)) > 0.02).all()


def test_transitivity_needs_triplets():
    t = rand_affine(1)
    with pytest.raises(ValueError, match="triplets"):
        transitivity_loss(output_from({(0, 1): t, (1, 0): t}, 2))


# --- matching -----------------------------------------------------------------------------------

def test_soft_mask_is_bilinear_and_hard_mask_is_the_indicator():
    theta = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])
    m = correspondence_mask(theta, "affine", (4, 4), (64, 64), phi=1.0, soft=True)
    # identity: target cell q = (row 1, col 2) -> row-major index 6; source channel row + 4 * col = 9
    assert m[0, 9, 6] == pytest.approx(1.0, abs=1e-5) and m[0, :, 6].sum() == pytest.approx(1.0, abs=1e-5)
    # shift by half a cell (16 px cells at 64 px: 8 px = 8 * 2/63 normalised): weights 0.5 / 0.5
    half = torch.tensor([[1.0, 0.0, 8 * 2 / 63, 0.0, 1.0, 0.0]])
    m = correspondence_mask(half, "affine", (4, 4), (64, 64))
    assert m[0, 9, 6] == pytest.approx(0.5, abs=1e-4) and m[0, 13, 6] == pytest.approx(0.5, abs=1e-4)
    hard = correspondence_mask(half, "affine", (4, 4), (64, 64), phi=0.6, soft=False)
    assert hard[0, 9, 6] == 1 and hard[0, 13, 6] == 1 and hard[0, :, 6].sum() == 2


@pytest.fixture(scope="module")
def photo_pair(lite_encoder):
    """A real photo A and B = A warped by a known affine map (so theta_AB = theta_true)."""
    skimage_data = pytest.importorskip("skimage.data")
    from macos_lite.backbones import l2_normalize
    from macos_lite.correlation import correlation

    img = torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float().div(255)[None]
    a = G.resize(img, (240, 240))
    theta_true = torch.tensor([[0.85, -0.15, 0.08, 0.12, 0.9, -0.05]])
    b = G.warp_image(a, theta_true, "affine", padding_mode="reflection")
    with torch.no_grad():
        f_a, f_b = (l2_normalize(lite_encoder(x)[3]) for x in (a, b))
    return correlation(f_a, f_b), theta_true


def test_matching_score_peaks_at_the_true_transform(photo_pair):
    corr, theta_true = photo_pair
    best = matching_score(corr, theta_true, "affine").item()
    for direction in torch.eye(6):
        scores = [matching_score(corr, theta_true + eps * direction[None], "affine").item() for eps in (0.1, 0.2, 0.4)]
        assert best > scores[0] > scores[2], (direction, best, scores)
        scores_neg = [matching_score(corr, theta_true - eps * direction[None], "affine").item() for eps in (0.1, 0.4)]
        assert best > scores_neg[0] > scores_neg[1]
    assert best > matching_score(corr, G.identity_theta("affine", 1), "affine").item() + 0.05


def test_matching_weights_select_cells(photo_pair):
    corr, theta = photo_pair
    w = torch.zeros(1, 15, 15)
    w[0, 3, 4] = 1.0  # only one target cell counts: the score is its own s(q)
    m = correspondence_mask(theta, "affine", (15, 15), (240, 240))
    s_q = (m * corr.reshape(1, 225, 225)).sum(1)[0, 3 * 15 + 4]
    assert matching_score(corr, theta, "affine", w).item() == pytest.approx(s_q.item(), rel=1e-5)


# --- contrastive ----------------------------------------------------------------------------------

class LinearF(torch.nn.Module):
    """A stand-in for F whose features are the mean colour per channel (c = 3)."""
    dim = 3

    def forward(self, x):
        return x.mean(dim=(2, 3))


def test_object_background_images():
    img = torch.rand(1, 3, 4, 4)
    m = torch.zeros(1, 1, 4, 4)
    m[..., :2] = 1
    obj, bg = object_background(img, m)
    assert torch.equal(obj[..., :2], img[..., :2]) and (obj[..., 2:] == 0).all()
    assert torch.equal(obj + bg, img)


def test_contrastive_hinge_inactive_when_separated_and_active_otherwise():
    # red object on a blue background in both images, masks exact
    img = torch.zeros(1, 3, 8, 8)
    img[:, 2] = 1.0
    img[:, :, 2:6, 2:6] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    f = LinearF()
    d_plus, d_minus = contrastive_terms(f, img, img, mask, mask, margin=0.01)
    assert d_plus.item() == pytest.approx(0.0) and d_minus.item() == 0.0
    # separation: F(I^o) = (0.25, 0, 0), F(I^b) = (0, 0, 0.75) -> |.|^2 = 0.625, / c = 0.2083 per image
    d_plus, d_minus = contrastive_terms(f, img, img, mask, mask, margin=1.0)
    assert d_minus.item() == pytest.approx(1.0 - 0.625 / 3, abs=1e-6)
    # a mask cutting the image in halves sees the same mixture on both sides: no separation at all
    half = torch.zeros_like(mask)
    half[..., :4] = 1.0
    _, d_minus_half = contrastive_terms(f, img, img, half, half, margin=1.0)
    assert d_minus_half.item() == pytest.approx(1.0)


def test_contrastive_gradients_reach_masks_not_f():
    from macos_lite.backbones import build_perceptual

    net = build_perceptual("lite", pretrained=False)
    logits = torch.zeros(2, 1, 64, 64, requires_grad=True)
    img = torch.rand(2, 3, 64, 64)
    d_plus, d_minus = contrastive_terms(net, img[:1], img[1:], torch.sigmoid(logits[:1]), torch.sigmoid(logits[1:]), 10.0)
    (d_plus + d_minus).sum().backward()
    assert logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


# --- task ---------------------------------------------------------------------------------------

def test_task_loss_minimal_for_consistent_masks_and_gradients_only_into_target():
    size = 32
    theta = torch.tensor([[0.8, 0.0, 0.1, 0.0, 0.8, -0.1]])
    logits_s = torch.randn(1, 1, size, size) * 3
    # the consistent target mask: exactly the source mask warped into t's frame
    warped = G.warp_image(torch.sigmoid(logits_s), theta, "affine")
    consistent_t = torch.logit(warped.clamp(1e-6, 1 - 1e-6))
    best = warped_mask_bce(logits_s, consistent_t, theta, "affine")
    # binary entropy of the target is the minimum of the BCE
    p = warped.clamp(1e-6, 1 - 1e-6)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log()).mean()
    assert best.item() == pytest.approx(entropy.item(), rel=1e-3)
    other = warped_mask_bce(logits_s, consistent_t + torch.randn_like(consistent_t), theta, "affine")
    assert other.item() > best.item()

    ls = logits_s.clone().requires_grad_(True)
    lt = torch.zeros(1, 1, size, size, requires_grad=True)
    th = theta.clone().requires_grad_(True)
    warped_mask_bce(ls, lt, th, "affine").backward()
    assert lt.grad.abs().sum() > 0 and ls.grad is None and th.grad is None


def test_task_loss_ignores_pixels_warped_from_outside():
    theta = torch.tensor([[1.0, 0.0, 1.5, 0.0, 1.0, 0.0]])  # most of t maps outside s
    logits_s = torch.full((1, 1, 16, 16), 5.0)
    logits_t = torch.full((1, 1, 16, 16), 5.0)
    logits_t[..., :, :4] = -5.0  # wrong only where t maps outside s (x_t < -0.5 maps inside)
    grid = G.sampling_grid(theta, "affine", (16, 16))
    inside = G.inside_mask(grid)[0]
    assert inside[:, :4].all() is not None
    loss = warped_mask_bce(logits_s, logits_t, theta, "affine")
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits_t[0, 0][inside], torch.sigmoid(torch.tensor(5.0)).expand(int(inside.sum())))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_task_loss_both_directions():
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])
    logits = {(0, 1): torch.zeros(1, 1, 8, 8), (1, 0): torch.ones(1, 1, 8, 8)}
    tps = {p: G.identity_theta("tps", 1) for p in logits}
    out = output_from({(0, 1): t, (1, 0): t}, 2, tps=tps, masks=logits, size=8, grid=1)
    l01 = warped_mask_bce(logits[(1, 0)], logits[(0, 1)], t, "affine")
    l10 = warped_mask_bce(logits[(0, 1)], logits[(1, 0)], t, "affine")
    assert task_loss(out).item() == pytest.approx((l01 + l10).item(), rel=1e-5)


# --- the objective ----------------------------------------------------------------------------------

class _PriorOnlyOutput:
    """A stand-in model output for the configuration checks (never reaches a loss computation)."""

    mask_logits = torch.zeros(2, 1, 1, 8, 8)
    pairs = [(0, 1), (1, 0)]
    theta_tps = None


def test_recipes_and_ablations():
    assert LossConfig().weights == DEFAULT_WEIGHTS and DEFAULT_WEIGHTS["prior"] > 0
    assert PAPER_WEIGHTS["prior"] == 0 and PAPER_WEIGHTS["contrast"] == PAPER_WEIGHTS["task"] == 1.0
    # "w/o co-seg": no co-segmentation term of either recipe and no mask weighting; "w/o matching": no matcher
    for recipe in RECIPES:
        without_coseg = LossConfig(**ablation("w/o co-seg", recipe))
        assert not any(without_coseg.active(t) for t in COSEG_TERMS) and not without_coseg.needs_masks
        without_matching = LossConfig(**ablation("w/o matching", recipe))
        assert not any(without_matching.active(t) for t in ("matching", "cycle", "trans", "task"))
    assert LossConfig(**ablation("w/o matching", "paper")).weights["contrast"] == 1.0
    assert LossConfig(**ablation("w/o matching", "ours")).weights["prior"] == 1.0


def test_objective_switches_terms_off_and_rejects_bad_config():
    cfg = LossConfig(weights={"matching": 1.0, "cycle": 0.5})
    assert cfg.weights == {"matching": 1.0, "cycle": 0.5, "trans": 0.0, "contrast": 0.0, "task": 0.0, "prior": 0.0}
    assert not cfg.needs_triplets
    with pytest.raises(ValueError, match="unknown loss terms"):
        LossConfig(weights={"matchng": 1.0})
    with pytest.raises(ValueError, match="perceptual"):
        MaCoSLoss(LossConfig(weights=PAPER_WEIGHTS))
    with pytest.raises(ValueError, match="pseudo-masks"):  # the default recipe's prior needs its targets
        MaCoSLoss(LossConfig(weights={"prior": 1.0}))(_PriorOnlyOutput(), torch.zeros(1, 2, 3, 8, 8))


def test_full_objective_gradients_reach_model_but_not_frozen_parts():
    from macos_lite.backbones import build_perceptual
    from macos_lite.model import MaCoSNet

    model = MaCoSNet("lite", image_size=64, pretrained=False, backbone_mode="frozen")
    f = build_perceptual("lite", pretrained=False)
    loss = MaCoSLoss(LossConfig(weights={**PAPER_WEIGHTS, "prior": 1.0}), f)
    images = torch.rand(2, 3, 3, 64, 64)
    pseudo = (torch.rand(2, 3, 1, 64, 64) > 0.5).float()
    total, terms = loss(model(images), images, pseudo)
    assert set(terms) == {"matching", "cycle", "trans", "contrast", "task", "prior"}
    total.backward()
    params = dict(model.named_parameters())
    assert params["decoder.up8.0.weight"].grad.abs().sum() > 0
    assert params["affine_head.linear.weight"].grad.abs().sum() > 0
    assert params["tps_head.linear.weight"].grad.abs().sum() > 0
    assert all(p.grad is None for n, p in params.items() if n.startswith("encoder."))
    assert all(p.grad is None for p in f.parameters())
