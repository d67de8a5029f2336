"""The training-free robust-fit matcher: least squares against numpy, a known affine map recovered, the fallback."""

import warnings

import numpy as np
import pytest
import torch

from macos_lite import geometry as G
from macos_lite.backbones import l2_normalize
from macos_lite.robust_fit import RansacMethod, fit_affine, fit_tps, mutual_nearest_neighbours, ransac_affine, robust_fit


def test_fit_affine_matches_numpy_lstsq():
    rng = np.random.default_rng(0)
    pb = rng.uniform(-1, 1, (20, 2))
    pa = rng.uniform(-1, 1, (20, 2))
    X = np.concatenate([pb, np.ones((20, 1))], 1)
    sol, *_ = np.linalg.lstsq(X, pa, rcond=None)  # (3, 2)
    theta = fit_affine(torch.from_numpy(pb), torch.from_numpy(pa))
    np.testing.assert_allclose(theta.numpy(), sol.T.reshape(6), atol=1e-10)


def test_ransac_recovers_a_known_affine_map_within_a_pixel_despite_outliers():
    size = 240
    truth = G.affine_theta(scale=0.8, rotation=15, shear=0.1, tx=0.1, ty=-0.05)[None]
    gen = torch.Generator().manual_seed(1)
    pb = torch.rand(60, 2, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    pa = G.transform_points(pb[None], truth, "affine")[0]
    away = torch.rand(20, 2, generator=gen, dtype=torch.float64) * 0.5 + 0.5  # 0.5..1 (60..120 px) off the map
    pa[:20] += away * torch.where(torch.rand(20, 2, generator=gen) < 0.5, -1.0, 1.0).double()  # a third wrong
    cell = torch.tensor([2 * 16 / (size - 1)] * 2, dtype=torch.float64)
    theta, inliers = ransac_affine(pb, pa, cell, iterations=200, generator=torch.Generator().manual_seed(0))
    probe = torch.rand(100, 2, generator=gen, dtype=torch.float64) * 2 - 1
    err = (G.normalized_to_pixel(G.transform_points(probe[None], theta[None], "affine"), (size, size))
           - G.normalized_to_pixel(G.transform_points(probe[None], truth, "affine"), (size, size))).norm(dim=-1)
    assert float(err.max()) < 1.0
    assert not inliers[:20].any() and inliers[20:].all()


def test_robust_fit_of_shifted_grids_is_the_shift():
    f = l2_normalize(torch.randn(32, 15, 15, generator=torch.Generator().manual_seed(0)))
    fit = robust_fit(f[:, 2:, :], f[:, :-2, :], image_size=(208, 240))  # B row r is A row r - 2: 13 x 15 grids
    shift = 2 * 2 * 16 / (208 - 1)  # two 16-px rows in normalised units
    expected = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, -shift], dtype=torch.float64)
    assert not fit.fallback and fit.inliers == 11 * 15  # the 11 rows both grids hold
    torch.testing.assert_close(fit.theta, expected, atol=1e-6, rtol=0)


def test_tps_refinement_of_exact_affine_matches_is_the_identity_lattice():
    truth = G.affine_theta(scale=0.9, rotation=-10, tx=0.05)[None]
    pb = torch.rand(40, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    pa = G.transform_points(pb[None], truth, "affine")[0]
    q = fit_tps(pb, pa, truth[0])
    torch.testing.assert_close(q, G.identity_theta("tps", dtype=torch.float64)[0], atol=1e-9, rtol=0)


def test_featureless_pair_falls_back_to_the_identity_counted_and_warned():
    zeros = torch.zeros(16, 8, 8)
    assert mutual_nearest_neighbours(zeros, zeros)[0].numel() == 0
    method = RansacMethod(features=lambda images: torch.zeros(images.shape[0], 16, 8, 8), image_size=128)
    images = torch.full((2, 3, 128, 128), 0.5)
    with pytest.warns(UserWarning, match="identity"):
        theta = method.transforms(images, images)
    torch.testing.assert_close(theta, G.identity_theta("affine", 2))
    assert method.num_fallback == 2


def test_method_on_a_textured_pair_and_its_shifted_copy_does_not_fall_back():
    gen = torch.Generator().manual_seed(3)
    feats = l2_normalize(torch.randn(1, 24, 10, 10, generator=gen))
    calls = iter([feats[:, :, :, 1:9], feats[:, :, :, 0:8]])  # A then B: B's column c is A's column c - 1
    method = RansacMethod(features=lambda images: next(calls), image_size=128)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        theta = method.transforms(torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128))
    assert method.num_fallback == 0
    assert theta[0, 2].item() == pytest.approx(-2 * 16 / 127, abs=1e-5)


@pytest.mark.shared_data
@pytest.mark.parametrize("dataset, folder", [("pf-willow", "pf-willow-dev"), ("tss", "tss-sample")])
def test_evaluate_method_ransac_on_real_data_reports_fallbacks(dataset, folder, tmp_path, capsys):
    from macos_lite import paths
    from macos_lite.evaluate_cli import main

    shared = paths.shared_data_root()
    if shared is None:
        pytest.skip("no real data: set MACOS_LITE_SHARED_DATA to its folder")
    out = tmp_path / "ransac.json"
    rc = main(["--dataset", dataset, "--data-root", str(shared / folder), "--method", "ransac", "--image-size",
               "128", "--max-pairs", "4", "--quiet", "--json", str(out)])
    assert rc == 0
    import json

    summary = json.loads(out.read_text())
    assert summary["method"]["name"] == "ransac" and summary["num_fallback"] >= 0
    assert summary["method"]["feature_stages"] == [16] and summary["method"]["backbone"] == "lite"
    assert "ransac" in capsys.readouterr().out


def test_hyperpixel_is_the_concatenation_of_normalised_resampled_stages():
    import torch.nn.functional as F

    from macos_lite.hyperpixel import check_stages, hyperpixel

    gen = torch.Generator().manual_seed(4)
    a, b = torch.randn(2, 5, 4, 4, generator=gen), torch.randn(2, 3, 2, 2, generator=gen)
    b_up = F.interpolate(b, size=(4, 4), mode="bilinear", align_corners=False)
    expected = torch.cat((F.normalize(a, dim=1), F.normalize(b_up, dim=1)), 1) / 2 ** 0.5
    torch.testing.assert_close(hyperpixel([a, b]), expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="strides among"):
        check_stages((16, 64))


def test_lite_stride_32_stage_and_ransac_on_two_stages():
    from macos_lite.backbones import build_encoder

    enc = build_encoder("lite", pretrained=False, mode="frozen", deep=True).eval()
    with torch.no_grad():
        assert tuple(enc.deeper(enc(torch.rand(1, 3, 64, 64))[3]).shape) == (1, 320, 2, 2)
    method = RansacMethod(image_size=64, feature_stages=(16, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theta = method.transforms(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert theta.shape == (2, 6) and torch.isfinite(theta).all()


def test_deep_lite_encoder_keeps_the_default_maps():
    from macos_lite.backbones import build_encoder

    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        plain = build_encoder("lite", pretrained=True, mode="frozen").eval()(x)
        deep = build_encoder("lite", pretrained=True, mode="frozen", deep=True).eval()(x)
    for p, d in zip(plain, deep, strict=True):
        torch.testing.assert_close(p, d)
