"""Geometry against independent references: torch's affine_grid, a closed-form TPS solve, hand cases."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from macos_lite import geometry as G


def rand_affine(b, dtype=torch.float64, scale=0.2):
    return G.identity_theta("affine", b, dtype=dtype) + scale * torch.randn(b, 6, dtype=dtype)


def rand_tps(b, n=3, dtype=torch.float64, scale=0.1):
    return G.identity_theta("tps", b, n, dtype=dtype) + scale * torch.randn(b, 2 * n * n, dtype=dtype)


def numpy_tps(points, ctrl, target, lam=0.0):
    """Reference TPS: solve [[K + lam I, P], [P^T, 0]] [w; a] = [Q; 0] with numpy and evaluate it."""
    def u(d2):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d2 > 0, d2 * np.log(d2), 0.0)

    k = len(ctrl)
    d2 = ((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)
    p = np.hstack([np.ones((k, 1)), ctrl])
    system = np.block([[u(d2) + lam * np.eye(k), p], [p.T, np.zeros((3, 3))]])
    coef = np.linalg.solve(system, np.vstack([target, np.zeros((3, 2))]))
    d2p = ((points[:, None] - ctrl[None]) ** 2).sum(-1)
    return np.hstack([u(d2p), np.ones((len(points), 1)), points]) @ coef


def test_pixel_normalized_round_trip_and_corners():
    pts = torch.tensor([[0.0, 0.0], [79.0, 99.0], [39.5, 49.5]])
    n = G.pixel_to_normalized(pts, (100, 80))
    assert torch.allclose(n, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))
    assert torch.allclose(G.normalized_to_pixel(n, (100, 80)), pts)
    # per-sample sizes
    sizes = torch.tensor([[100, 80], [11, 21]])
    n2 = G.pixel_to_normalized(torch.tensor([[[79.0, 99.0]], [[20.0, 10.0]]]), sizes)
    assert torch.allclose(n2, torch.ones(2, 1, 2))


def test_affine_grid_matches_torch():
    theta = rand_affine(3)
    ours = G.sampling_grid(theta, "affine", (7, 11))
    ref = F.affine_grid(theta.view(3, 2, 3), (3, 1, 7, 11), align_corners=True)
    assert torch.allclose(ours, ref, atol=1e-12)
    img = torch.rand(3, 2, 9, 10, dtype=torch.float64)
    warped = G.warp_image(img, theta, "affine", out_size=(7, 11))
    assert torch.allclose(warped, F.grid_sample(img, ref, align_corners=True), atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4])
@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_tps_matches_closed_form(n, lam):
    theta = rand_tps(2, n)
    pts = torch.rand(2, 40, 2, dtype=torch.float64) * 2 - 1
    ours = G.transform_points(pts, theta, "tps", lam=lam)
    ctrl = np.stack(np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij"), -1).reshape(-1, 2)
    for b in range(2):
        target = theta[b].numpy().reshape(2, n * n).T
        ref = numpy_tps(pts[b].numpy(), ctrl, target, lam)
        np.testing.assert_allclose(ours[b].numpy(), ref, atol=1e-9)


def test_tps_interpolates_control_points_and_reproduces_affine():
    theta = rand_tps(2)
    ctrl = G.tps_control_points(3, torch.float64)
    assert torch.allclose(G.transform_points(ctrl, theta, "tps"), theta.view(2, 2, 9).transpose(1, 2), atol=1e-10)
    # control points moved by an affine map -> the TPS is that affine map everywhere
    aff = rand_affine(2)
    moved = G.transform_points(ctrl, aff, "affine")  # (2, 9, 2)
    tps_theta = moved.transpose(1, 2).reshape(2, 18)
    pts = torch.rand(2, 30, 2, dtype=torch.float64) * 2 - 1
    assert torch.allclose(G.transform_points(pts, tps_theta, "tps"), G.transform_points(pts, aff, "affine"), atol=1e-10)


def test_control_lattice_is_x_major():
    p = G.tps_control_points(3)
    assert p[:, 0].tolist() == [-1, -1, -1, 0, 0, 0, 1, 1, 1]
    assert p[:, 1].tolist() == [-1, 0, 1, -1, 0, 1, -1, 0, 1]


@pytest.mark.parametrize("kind", ["affine", "tps", "cascade"])
def test_identity_maps_points_to_themselves(kind):
    pts = torch.rand(4, 25, 2) * 2 - 1
    out = G.transform_points(pts, G.identity_theta(kind, 4), kind)
    assert torch.allclose(out, pts, atol=1e-5)
    img = torch.rand(4, 3, 12, 9)
    assert torch.allclose(G.warp_image(img, G.identity_theta(kind, 4), kind), img, atol=1e-5)


def test_cascade_is_tps_then_affine():
    aff, tps = rand_affine(3), rand_tps(3)
    pts = torch.rand(3, 20, 2, dtype=torch.float64) * 2 - 1
    expected = G.transform_points(G.transform_points(pts, tps, "tps"), aff, "affine")
    assert torch.allclose(G.transform_points(pts, G.cascade_theta(aff, tps), "cascade"), expected)
    a2, t2 = G.split_cascade(G.cascade_theta(aff, tps))
    assert torch.equal(a2, aff) and torch.equal(t2, tps)


def test_affine_compose_and_invert():
    a, b = rand_affine(2), rand_affine(2)
    pts = torch.rand(2, 10, 2, dtype=torch.float64)
    ab = G.transform_points(pts, G.compose_affine(a, b), "affine")
    assert torch.allclose(ab, G.transform_points(G.transform_points(pts, b, "affine"), a, "affine"))
    back = G.transform_points(G.transform_points(pts, a, "affine"), G.invert_affine(a), "affine")
    assert torch.allclose(back, pts)


@pytest.mark.parametrize("kind", ["affine", "tps", "cascade"])
def test_gradcheck_points_and_theta(kind):
    theta = {"affine": rand_affine(2), "tps": rand_tps(2), "cascade": G.cascade_theta(rand_affine(2), rand_tps(2))}[kind]
    theta.requires_grad_(True)
    pts = (torch.rand(2, 6, 2, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, t: G.transform_points(p, t, kind, lam=0.1), (pts, theta))


def test_warp_gradcheck_wrt_theta():
    theta = rand_affine(1).requires_grad_(True)
    img = torch.rand(1, 1, 6, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: G.warp_image(img, t, "affine"), (theta,))


@pytest.mark.parametrize("kind", ["affine", "tps"])
def test_drawn_dot_lands_where_transform_points_says(kind):
    """A dot at the source position T(q) appears at q in the warped image."""
    size = 65
    theta = rand_affine(1, torch.float32, 0.1) if kind == "affine" else rand_tps(1, 3, torch.float32, 0.08)
    q_px = torch.tensor([[[40.0, 22.0]]])
    src = G.normalized_to_pixel(G.transform_points(G.pixel_to_normalized(q_px, (size, size)), theta, kind), (size, size))
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    sx, sy = src[0, 0]
    dot = torch.exp(-((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * 1.5**2))[None, None]
    warped = G.warp_image(dot, theta, kind)[0, 0]
    peak = torch.stack(torch.where(warped == warped.max()))[:, 0]
    assert abs(peak[1].item() - 40) <= 1 and abs(peak[0].item() - 22) <= 1


def test_inverse_and_keypoint_transfer_both_directions():
    theta = G.cascade_theta(rand_affine(2, scale=0.1), rand_tps(2, scale=0.06))
    kps_B = torch.rand(2, 12, 2, dtype=torch.float64) * torch.tensor([60.0, 40.0]) + 10
    size_A, size_B = (90, 120), (60, 80)
    kps_A = G.transfer_keypoints(kps_B, theta, "cascade", size_A, size_B, "B_to_A")
    back = G.transfer_keypoints(kps_A, theta, "cascade", size_A, size_B, "A_to_B")
    assert torch.allclose(back, kps_B, atol=1e-6)


def test_flow_field_of_a_translation():
    # x_A = x_B + 0.5 in normalised units -> (W_A - 1) / 4 pixels to the right in A
    theta = torch.tensor([[1.0, 0.0, 0.5, 0.0, 1.0, 0.0]])
    flow = G.flow_field(theta, "affine", target_size=(5, 9), source_size=(5, 9))
    assert torch.allclose(flow[0, 2, 2], torch.tensor([2.0, 0.0]))
    assert (flow[0, :, -1, 0] == 1e10).all()  # mapped outside A


def test_cell_centres_at_240():
    c = G.cell_centers((15, 15), (240, 240))
    px = G.normalized_to_pixel(c, (240, 240))
    assert torch.allclose(px[0, 0], torch.tensor([7.5, 7.5])) and torch.allclose(px[14, 3], torch.tensor([55.5, 231.5]))
    assert torch.allclose(G.normalized_to_cell(c, (15, 15), (240, 240))[4, 9], torch.tensor([9.0, 4.0]))


def test_resize_preserves_normalized_coordinates():
    img = torch.zeros(1, 1, 50, 70)
    img[0, 0, 49, 0] = 1.0  # bottom-left corner
    out = G.resize(img, (20, 30))
    assert out[0, 0, 19, 0] == out.max()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: G.transform_points(torch.zeros(1, 3, 2), torch.zeros(1, 5), "affine"), "6 numbers"),
        (lambda: G.transform_points(torch.zeros(1, 3, 2), torch.zeros(1, 12), "tps"), "2\\*n\\*n"),
        (lambda: G.transform_points(torch.zeros(2, 3, 2), torch.zeros(3, 6), "affine"), "samples"),
        (lambda: G.transform_points(torch.zeros(1, 3, 3), torch.zeros(1, 6), "affine"), "last dimension"),
        (lambda: G.transform_points(torch.zeros(1, 3, 2, dtype=torch.long), torch.zeros(1, 6), "affine"), "floating"),
        (lambda: G.transform_points(torch.zeros(1, 3, 2), torch.zeros(1, 6), "homography"), "unknown transform"),
        (lambda: G.warp_image(torch.zeros(3, 5, 5), torch.zeros(1, 6), "affine"), "\\(B, C, H, W\\)"),
        (lambda: G.identity_theta("tps", 1, grid_size=1), "at least 2x2"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_affine_theta_against_a_hand_computed_matrix():
    # scale 2, rotation 30 degrees, shear 0.5, aspect 1.5, shift (0.1, -0.2):
    # L = R(30) [[1, 0.5], [0, 1]] diag(2, 3) = [[c, -s], [s, c]] [[2, 1.5], [0, 3]]
    c, s = np.sqrt(3) / 2, 0.5
    expected = [2 * c, 1.5 * c - 3 * s, 0.1, 2 * s, 1.5 * s + 3 * c, -0.2]
    theta = G.affine_theta(scale=2.0, rotation=30.0, shear=0.5, tx=0.1, ty=-0.2, aspect=1.5)
    assert theta.dtype == torch.float64 and theta.shape == (6,)
    assert theta.tolist() == pytest.approx(expected, abs=1e-12)
    radians = G.affine_theta(scale=2.0, rotation=np.pi / 6, shear=0.5, tx=0.1, ty=-0.2, aspect=1.5, degrees=False)
    assert torch.allclose(theta, radians, atol=1e-12)
    assert torch.equal(G.affine_theta(), G.identity_theta("affine", 1, dtype=torch.float64)[0])


def test_rescale_keypoints_is_corner_aligned():
    points = torch.tensor([[0.0, 0.0], [199.0, 99.0], [99.5, 49.5]])
    out = G.rescale_keypoints(points, torch.tensor([100, 200]), (11, 21))
    assert torch.allclose(out, torch.tensor([[0.0, 0.0], [20.0, 10.0], [10.0, 5.0]], dtype=torch.float64))
    back = G.rescale_keypoints(out, (11, 21), (100, 200))
    assert torch.allclose(back, points.double())
