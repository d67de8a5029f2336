"""Interactive demos driven from Python, checked against independent computations of what they draw."""

import gc
import math
import weakref

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from macos_lite import metrics
from macos_lite.geometry import identity_theta, transform_points
from macos_lite.widgets import (
    affine_params,
    affine_theta,
    affine_widget,
    correlation_widget,
    draw_affine,
    draw_correlation,
    draw_masks,
    draw_model,
    draw_tps,
    encode_pair,
    masks_widget,
    model_widget,
    score_widget,
    tps_widget,
)
from macos_lite.widgets._base import artists


def smooth_image(size: int) -> torch.Tensor:
    """A smooth colour pattern: a small shift of the sampling positions gives a small change."""
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    return torch.stack((0.5 + 0.5 * torch.sin(xx / 4), 0.5 + 0.5 * torch.cos(yy / 5),
                        0.5 + 0.5 * torch.sin((xx + yy) / 7)))


def panel_image(fig, panel: int, layer: int = 0) -> np.ndarray:
    return np.asarray(fig.axes[panel].images[layer].get_array())


@pytest.fixture(scope="module")
def pairs():
    from macos_lite.data.registry import get_pairs

    return get_pairs("synthetic", image_size=64, num_pairs=3, num_images=10)


@pytest.fixture(scope="module")
def tiny_model():
    from macos_lite.model import MaCoSNet

    return MaCoSNet("lite", image_size=64, pretrained=False).eval()


# ----------------------------------------------------------------------------------------------
# Affine
# ----------------------------------------------------------------------------------------------


def test_affine_rotation_90_gives_rot90_and_rotated_keypoints():
    img = torch.rand(3, 32, 32)
    kps = torch.tensor([[3.0, 5.0], [20.0, 10.0], [31.0, 0.0]])
    demo = affine_widget(img, kps)
    demo.controls["rotation"].value = 90
    # documented convention: theta = R(90 deg) = [[0, -1, 0], [1, 0, 0]], maps target -> source
    assert [demo.controls[f"theta{i}"].value for i in range(6)] == [0, -1, 0, 1, 0, 0]
    shown = panel_image(demo.figure, 1)
    assert np.allclose(shown, torch.rot90(img, 1, dims=(-2, -1)).permute(1, 2, 0).numpy(), atol=1e-6)
    # source pixel (x, y) appears at (y, 31 - x) of the rotated image: content turns counter-clockwise
    drawn = np.asarray(artists(demo.figure, "keypoints-target")[0].get_offsets())
    assert np.allclose(drawn, [[5, 28], [10, 11], [0, 0]], atol=1e-9)
    for (x, y), (u, v) in zip(kps.long().tolist(), drawn.round().astype(int).tolist()):
        assert np.allclose(shown[v, u], img[:, y, x].numpy(), atol=1e-6)  # the keypoint stays on its pixel


def test_affine_sliders_match_torch_affine_grid():
    img = torch.rand(3, 24, 40)
    demo = affine_widget(img)
    for name, value in (("scale", 0.5), ("tx", 0.5), ("ty", -0.25)):
        demo.controls[name].value = value
    theta = torch.tensor([[0.5, 0.0, 0.5], [0.0, 0.5, -0.25]])  # written by hand
    grid = F.affine_grid(theta[None], (1, 3, 24, 40), align_corners=True)
    reference = F.grid_sample(img[None], grid, align_corners=True)[0]
    assert np.allclose(panel_image(demo.figure, 1), reference.permute(1, 2, 0).numpy(), atol=1e-5)
    assert torch.allclose(demo.theta, theta.reshape(-1).double())


def test_affine_raw_numbers_move_the_sliders():
    demo = affine_widget(torch.rand(3, 32, 32))
    params = {"scale": 0.8, "aspect": 1.3, "rotation": -30.0, "shear": 0.2, "tx": 0.1, "ty": -0.2}
    for i, v in enumerate(affine_theta(**params).tolist()):
        demo.controls[f"theta{i}"].value = v
    assert demo.params() == pytest.approx(params, abs=1e-5)
    assert demo.state["consistent"]
    # a reflection has no slider setting: drawn as typed, flagged as approximate
    for i, v in enumerate([-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]):
        demo.controls[f"theta{i}"].value = v
    assert not demo.state["consistent"]
    assert torch.equal(demo.state["theta"], torch.tensor([-1.0, 0, 0, 0, 1, 0], dtype=torch.float64))
    assert np.allclose(panel_image(demo.figure, 1), demo.state["image"].flip(-1).permute(1, 2, 0).numpy())


def test_affine_params_round_trip():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        lo = torch.tensor([0.3, 0.4, -170.0, -0.9, -1.0, -1.0])
        hi = torch.tensor([1.9, 1.9, 170.0, 0.9, 1.0, 1.0])
        values = (lo + (hi - lo) * torch.rand(6, generator=g)).tolist()
        params = dict(zip(("scale", "aspect", "rotation", "shear", "tx", "ty"), values))
        back, exact = affine_params(affine_theta(**params))
        assert exact and back == pytest.approx(params, abs=1e-9)


# ----------------------------------------------------------------------------------------------
# TPS
# ----------------------------------------------------------------------------------------------


def test_tps_control_point_moves_its_grid_node_by_the_slider_delta():
    demo = tps_widget(smooth_image(49))
    demo.controls["point"].value = 0  # P0 = (-1, -1), the top-left corner
    demo.controls["dx"].value = 0.2
    demo.controls["dy"].value = -0.1
    nodes = demo.state["grid_nodes"]  # (9, 9, 2) source pixels of the grid nodes
    assert torch.allclose(nodes[0, 0], torch.tensor([0.2 * 24, -0.1 * 24], dtype=torch.float64), atol=1e-5)
    # the drawn grid: the top horizontal line starts at the moved node
    top = artists(demo.figure, "grid-source")[0]
    assert np.allclose([top.get_xdata()[0], top.get_ydata()[0]], [4.8, -2.4], atol=1e-5)
    # lambda = 0 interpolates: the other control points stay where they are
    for i, j in [(0, 4), (0, 8), (4, 0), (4, 4), (4, 8), (8, 0), (8, 4), (8, 8)]:
        assert torch.allclose(nodes[i, j], torch.tensor([j * 6.0, i * 6.0], dtype=torch.float64), atol=1e-5)
    # with lambda > 0 the map no longer reaches Q exactly
    demo.controls["lam"].value = 1.0
    assert demo.state["grid_nodes"][0, 0, 0] < 4.8 - 0.1


def test_tps_moving_a_point_changes_the_warp_only_near_it():
    img = smooth_image(49)
    demo = tps_widget(img)
    assert np.allclose(panel_image(demo.figure, 1), img.permute(1, 2, 0).numpy(), atol=1e-5)  # identity
    demo.controls["point"].value = 8  # P8 = (1, 1), the bottom-right corner
    demo.controls["dx"].value = -0.3
    demo.controls["dy"].value = -0.2
    diff = np.abs(panel_image(demo.figure, 1) - img.permute(1, 2, 0).numpy()).mean(-1)
    near, far = diff[25:, 25:].mean(), diff[:24, :24].mean()
    assert near > 0.05 and far < 0.25 * near
    for x, y in [(0, 0), (24, 0), (48, 0), (0, 24), (24, 24), (48, 24), (0, 48), (24, 48)]:
        assert diff[y, x] < 1e-5  # pixels on the fixed control points sample themselves
    # choosing another point loads its offsets; reset restores the identity
    demo.controls["point"].value = 4
    assert (demo.controls["dx"].value, demo.controls["dy"].value) == (0.0, 0.0)
    demo.controls["point"].value = 8
    assert (demo.controls["dx"].value, demo.controls["dy"].value) == pytest.approx((-0.3, -0.2))
    demo.reset()
    assert np.allclose(panel_image(demo.figure, 1), img.permute(1, 2, 0).numpy(), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Correlation
# ----------------------------------------------------------------------------------------------


class CountingEncoder(nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder, self.calls = encoder, 0

    def forward(self, x):
        self.calls += 1
        return self.encoder(x)


def test_correlation_heatmap_is_the_dot_product_of_normalised_features(pairs, lite_encoder):
    item = pairs[0]
    a, b = item["image_A"], item["image_B"]
    counting = CountingEncoder(lite_encoder)
    demo = correlation_widget(a, b, encoder=counting)
    with torch.no_grad():
        f = lite_encoder(torch.stack((a, b)))[3]
    f = f / f.norm(dim=1, keepdim=True)
    f_a, f_b = f[0], f[1]  # (C, 4, 4)
    row, col = 1, 2  # an asymmetric cell: a row/column-major mix-up shows
    demo.controls["row"].value = row
    demo.controls["col"].value = col
    brute = torch.einsum("c,cij->ij", f_a[:, row, col], f_b)
    shown = np.asarray(artists(demo.figure, "heatmap")[0].get_array())
    assert np.allclose(shown, brute.numpy(), atol=1e-4)
    assert demo.state["channel"] == row + 4 * col
    assert demo.state["best"] == divmod(int(brute.argmax()), 4)
    # S_AB: ReLU, then L2 over all of A's cells at each cell of B
    demo.controls["measure"].value = "S_AB"
    dots = torch.relu(torch.einsum("cab,cij->abij", f_a, f_b))
    normalised = dots / dots.pow(2).sum((0, 1)).sqrt()
    shown = np.asarray(artists(demo.figure, "heatmap")[0].get_array())
    assert np.allclose(shown, normalised[row, col].numpy(), atol=1e-4)
    for r in range(4):  # features are computed once, not per slider move
        demo.controls["row"].value = r
    assert counting.calls == 1


# ----------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------


def test_masks_threshold_eq6_and_warp():
    img, prob = torch.rand(3, 32, 32), torch.rand(1, 32, 32)
    c, s = math.cos(0.3), math.sin(0.3)
    theta = torch.tensor([c, -s, 0.1, s, c, 0.0])
    demo = masks_widget(img, prob, theta=theta)
    demo.controls["threshold"].value = 0.3
    hard = prob[0] > 0.3
    assert torch.equal(demo.state["hard"], hard)
    assert np.array_equal(panel_image(demo.figure, 2), hard.float().numpy())
    assert torch.equal(demo.state["object"] + demo.state["background"], img)
    assert torch.equal(demo.state["object"], img * hard)
    grid = F.affine_grid(theta.view(1, 2, 3), (1, 1, 32, 32), align_corners=True)
    reference = F.grid_sample(hard[None, None].float(), grid, align_corners=True)[0]
    assert torch.allclose(demo.state["warped_mask"], reference, atol=1e-5)
    demo.controls["binary"].value = False  # eq 6 with the soft mask, as in training
    assert torch.allclose(demo.state["object"], prob * img)
    assert torch.allclose(demo.state["object"] + demo.state["background"], img, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Model explorer
# ----------------------------------------------------------------------------------------------


def test_model_explorer_pck_and_jaccard(pairs, tiny_model):
    demo = model_widget(pairs, tiny_model)
    demo.controls["pair"].value = 1
    item = pairs[1]
    out = tiny_model.predict(item["image_A"], item["image_B"])
    # B's keypoints into A by hand: normalise with B's size, apply the map, un-normalise with A's size
    (h_a, w_a), (h_b, w_b) = item["size_A"].tolist(), item["size_B"].tolist()
    kps_B = item["kps_B"].double()
    norm_B = torch.stack((2 * kps_B[:, 0] / (w_b - 1) - 1, 2 * kps_B[:, 1] / (h_b - 1) - 1), -1)
    p = transform_points(norm_B[None], out["theta"].double()[None], "cascade")[0]
    pred = torch.stack(((p[:, 0] + 1) * (w_a - 1) / 2, (p[:, 1] + 1) * (h_a - 1) / 2), -1)
    valid = item["kps_valid"]
    for alpha in (0.1, 0.3):
        demo.controls["alpha"].value = alpha
        expected = metrics.pck(pred, item["kps_A"], alpha, "image", valid, size=(h_a, w_a))
        assert demo.state["pck"] == pytest.approx(expected, abs=1e-9)
        correct = ((pred - item["kps_A"].double()).norm(dim=-1) <= alpha * max(h_a, w_a)) & valid
        colours = artists(demo.figure, "keypoints-pred")[0].get_facecolors()
        assert int((colours[:, 1] > 0.5).sum()) == int(correct.sum()) == int(demo.state["correct"].sum())
    assert len(demo.predictions) == 2  # pairs 0 and 1; alpha moves reuse the prediction
    expected_j = metrics.jaccard(out["mask_A"][0] > 0.5, item["mask_A"][0] > 0.5)
    assert demo.state["jaccard"]["A"] == pytest.approx(expected_j)


class IdentityModel(nn.Module):
    """Predicts no motion and a 0.7 everywhere mask: what the explorer shows is known in advance."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def predict(self, image_A, image_B, tps=True):
        kind = "cascade" if tps else "affine"
        return {"theta": identity_theta(kind)[0], "kind": kind, "mask_A": torch.full_like(image_A[:1], 0.7),
                "mask_B": torch.full_like(image_B[:1], 0.7)}


def test_model_explorer_switches_between_models(pairs, tiny_model):
    demo = model_widget(pairs, {"net": tiny_model, "identity": IdentityModel()}, index=2)
    demo.controls["model"].value = "identity"
    item = pairs[2]
    assert torch.allclose(demo.state["pred_A"][item["kps_valid"]], item["kps_B"][item["kps_valid"]].double())
    expected = metrics.pck(item["kps_B"], item["kps_A"], 0.1, "image", item["kps_valid"], size=(64, 64))
    assert demo.state["pck"] == pytest.approx(expected)
    mask = item["mask_A"][0] > 0.5  # an all-foreground prediction: J = foreground fraction
    assert demo.state["jaccard"]["A"] == pytest.approx(float(mask.float().mean()))
    assert sorted(name for name, _, _ in demo.predictions) == ["identity", "net"]


# ----------------------------------------------------------------------------------------------
# No front end, no leaks
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_makers(pairs, tiny_model, lite_encoder):
    """name -> (make the demo, a control to move, 20 values for it)."""
    item = pairs[0]
    a, b = item["image_A"], item["image_B"]
    features = encode_pair(a, b, lite_encoder)
    return {
        "affine": (lambda: affine_widget(a, item["kps_A"]), "rotation", np.linspace(-90, 90, 20)),
        "tps": (lambda: tps_widget(a), "dx", np.linspace(-0.5, 0.5, 20)),
        "correlation": (lambda: correlation_widget(a, b, features=features), "row", np.arange(20) % 4),
        "masks": (lambda: masks_widget(a, item["mask_A"]), "threshold", np.linspace(0.05, 0.95, 20)),
        "model": (lambda: model_widget(pairs, tiny_model), "alpha", np.linspace(0.02, 0.3, 20)),
        "score": (lambda: score_widget(identity_correlation(4, 4), (64, 64), a, b), "rotation",
                  np.linspace(-30, 30, 20)),
    }


def artist_count(fig) -> int:
    return len(fig.axes) + sum(len(ax.get_children()) for ax in fig.axes)


@pytest.mark.parametrize("name", ["affine", "tps", "correlation", "masks", "model", "score"])
def test_no_figure_leak_when_sliders_move(name, demo_makers):
    make, control, values = demo_makers[name]
    open_before = plt.get_fignums()
    demo = make()
    owned = demo.figure
    drawn = artist_count(owned)
    for v in values:
        demo.controls[control].value = v
        assert demo.figure is owned  # looking redraws it, in place: one figure for the demo's lifetime
    assert artist_count(owned) == drawn  # nothing piles up across redraws
    assert plt.get_fignums() == open_before  # pyplot keeps none of them
    assert demo.show(static=True) is owned  # plain Python: the static figure
    assert "image/png" in demo._repr_mimebundle_()  # what front ends without widgets show


def test_closing_a_demo_releases_its_figure(demo_makers):
    demo = demo_makers["affine"][0]()
    figure = weakref.ref(demo.figure)
    demo.close()  # ipywidgets keeps every open widget alive
    del demo
    gc.collect()
    assert figure() is None


def test_draw_functions_give_static_figures(pairs, tiny_model, lite_encoder):
    item = pairs[0]
    open_before = plt.get_fignums()
    figs = [
        draw_affine(item["image_A"], affine_theta(rotation=20), item["kps_A"]),
        draw_tps(item["image_A"], lam=0.1, surface="x"),
        draw_correlation(item["image_A"], item["image_B"], 0, 3, encoder=lite_encoder),
        draw_masks(item["image_A"], item["mask_A"], 0.5),
        draw_model(item, tiny_model, alpha=0.2),
    ]
    assert all(isinstance(f, Figure) and len(f.axes) >= 2 for f in figs)
    assert plt.get_fignums() == open_before


# ----------------------------------------------------------------------------------------------
# Matching score (eqs 1-3)
# ----------------------------------------------------------------------------------------------


def identity_correlation(h: int, w: int) -> torch.Tensor:
    """S(p, q) = 1 iff p is q (source channels column-major, as the package lays them out)."""
    corr = torch.zeros(1, h * w, h, w)
    for r in range(h):
        for c in range(w):
            corr[0, c * h + r, r, c] = 1.0
    return corr


def test_score_widget_follows_the_dragged_shift_in_closed_form():
    h = w = 6
    size = (96, 96)  # 16 px per cell
    demo = score_widget(identity_correlation(h, w), size)
    assert demo.state["score"] == pytest.approx(1.0, abs=1e-6)  # every cell lands on itself
    for tx in (0.05, 0.1, 0.2):
        demo.controls["tx"].value = tx
        shift_cells = tx * (size[1] - 1) / 2 / 16  # normalised -> pixels (align_corners) -> cells
        # the tent of eq 1 (phi = 1) keeps 1 - |dx| of each cell's own correlation
        assert demo.state["score"] == pytest.approx(1 - shift_cells, abs=1e-6)
        assert np.allclose(demo.state["score_map"].numpy(), 1 - shift_cells, atol=1e-6)
    demo.controls["phi"].value = 2.0  # a wider tent: 1 - |dx| / 2
    assert demo.state["score"] == pytest.approx(1 - 0.2 * 95 / 2 / 16 / 2, abs=1e-6)
    drawn = np.asarray(artists(demo.figure, "score-map")[0].get_array())
    assert np.allclose(drawn, demo.state["score_map"].numpy())


def test_score_widget_matches_a_brute_force_eq2_and_the_warp():
    g = torch.Generator().manual_seed(3)
    h, w, size = 4, 5, (64, 80)
    corr = torch.rand(1, h * w, h, w, generator=g)
    img_a, img_b = torch.rand(3, *size, generator=g), torch.rand(3, *size, generator=g)
    demo = score_widget(corr, size, img_a, img_b)
    demo.controls["rotation"].value = 20.0
    demo.controls["ty"].value = -0.15
    c, s = math.cos(math.radians(20)), math.sin(math.radians(20))
    theta = torch.tensor([[c, -s, 0.0], [s, c, -0.15]], dtype=torch.float64)  # written by hand
    expected = torch.zeros(h, w, dtype=torch.float64)
    for r in range(h):
        for col in range(w):  # target cell centre in pixels, normalised with align_corners=True
            x, y = col * 16 + 7.5, r * 16 + 7.5
            xn, yn = 2 * x / (size[1] - 1) - 1, 2 * y / (size[0] - 1) - 1
            u, v = (theta @ torch.tensor([xn, yn, 1.0], dtype=torch.float64)).tolist()
            cx = ((u + 1) * (size[1] - 1) / 2 - 7.5) / 16  # mapped position in source cells
            cy = ((v + 1) * (size[0] - 1) / 2 - 7.5) / 16
            for pr in range(h):
                for pc in range(w):
                    tent = max(0.0, 1 - abs(cx - pc)) * max(0.0, 1 - abs(cy - pr))
                    expected[r, col] += tent * float(corr[0, pc * h + pr, r, col])
    assert torch.allclose(demo.state["score_map"], expected, atol=1e-5)
    assert demo.state["score"] == pytest.approx(float(expected.mean()), abs=1e-5)
    grid = F.affine_grid(theta[None].float(), (1, 3, *size), align_corners=True)
    reference = F.grid_sample(img_a[None], grid, align_corners=True)[0]
    assert np.allclose(panel_image(demo.figure, 0), reference.permute(1, 2, 0).numpy(), atol=1e-5)
    assert all(demo.controls[n].continuous_update for n in ("scale", "rotation", "tx", "phi"))


def test_affine_and_tps_live_preview_is_the_warped_image():
    from io import BytesIO

    from PIL import Image as PILImage

    img = smooth_image(32)
    affine = affine_widget(img)
    assert affine.controls["rotation"].continuous_update and affine.preview is not None
    affine.controls["tx"].value = 0.25
    theta = torch.tensor([[1.0, 0.0, 0.25], [0.0, 1.0, 0.0]])
    grid = F.affine_grid(theta[None], (1, 3, 32, 32), align_corners=True)
    reference = F.grid_sample(img[None], grid, align_corners=True)[0].permute(1, 2, 0).numpy()
    shown = np.asarray(PILImage.open(BytesIO(affine.preview.value))).astype(float) / 255
    assert shown.shape == (32, 32, 3) and np.abs(shown - reference).max() <= 0.5 / 255 + 1e-6
    tps = tps_widget(img)
    assert tps.controls["dx"].continuous_update
    identity = np.asarray(PILImage.open(BytesIO(tps.preview.value))).astype(float) / 255
    assert np.abs(identity - img.permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-5
    tps.controls["dx"].value = 0.3
    moved = np.asarray(PILImage.open(BytesIO(tps.preview.value))).astype(float) / 255
    assert np.abs(moved - tps.state["warped"].permute(1, 2, 0).numpy()).max() <= 0.5 / 255 + 1e-5
    assert np.abs(moved - identity).max() > 0.05


def test_tps_demo_starts_on_the_moved_point():
    from macos_lite.widgets import tps_theta

    offsets = torch.zeros(9, 2, dtype=torch.float64)
    offsets[4] = torch.tensor([0.25, -0.15])  # what notebook 10 moves
    demo = tps_widget(smooth_image(33), theta=tps_theta(offsets))
    assert demo.controls["point"].value == 4
    assert (demo.controls["dx"].value, demo.controls["dy"].value) == pytest.approx((0.25, -0.15))
    assert torch.allclose(demo.theta, tps_theta(offsets))  # opening the demo moves nothing
    assert tps_widget(smooth_image(33)).controls["point"].value == 0  # the identity: the first point
