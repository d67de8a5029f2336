"""The colour guided filter against kornia's implementation and against closed forms."""

import numpy as np
import pytest
import torch

from macos_lite.guided_filter import box_mean, guided_filter


def _box_mean_by_hand(x: np.ndarray, r: int) -> np.ndarray:
    """Window means with np.pad's "reflect" border (the edge pixel not repeated), summed window by window."""
    padded = np.pad(x, ((0, 0), (0, 0), (r, r), (r, r)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, (2 * r + 1, 2 * r + 1), axis=(2, 3))
    return windows.mean(axis=(-2, -1))


def test_box_mean_equals_the_window_means_by_hand():
    x = torch.rand(2, 3, 11, 9, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(box_mean(x, 3).numpy(), _box_mean_by_hand(x.numpy().astype(np.float64), 3),
                               atol=1e-6)


@pytest.mark.parametrize("shape, radius, eps", [((2, 40, 52), 5, 1e-3), ((1, 64, 64), 8, 1e-2), ((3, 24, 20), 1, 0.1)])
def test_guided_filter_equals_kornias(shape, radius, eps):
    kornia_filters = pytest.importorskip("kornia.filters")
    gen = torch.Generator().manual_seed(radius)
    n, h, w = shape
    guide = torch.rand(n, 3, h, w, generator=gen)
    guide[..., w // 2:] += 0.5  # a colour edge
    p = torch.rand(n, 1, h, w, generator=gen)
    ours = guided_filter(guide, p, radius, eps)
    reference = kornia_filters.guided_blur(guide, p, 2 * radius + 1, eps)  # border "reflect"
    torch.testing.assert_close(ours, reference, atol=2e-5, rtol=0)


def test_a_flat_guide_gives_the_box_mean_of_the_box_mean():
    # Sigma = 0 and cov = 0 on a constant guide: a = 0, b = mean(p), so q = mean(mean(p))
    p = torch.rand(1, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    q = guided_filter(torch.full((1, 3, 20, 20), 0.4), p, 2, 1e-2)
    by_hand = _box_mean_by_hand(_box_mean_by_hand(p.numpy().astype(np.float64), 2), 2)
    np.testing.assert_allclose(q.numpy(), by_hand, atol=1e-5)


def test_the_guide_itself_passes_through_when_eps_is_tiny():
    # p equal to one colour channel of a guide whose channels vary independently: a = e_c, b = 0 in every window
    guide = torch.rand(1, 3, 30, 30, generator=torch.Generator().manual_seed(2))
    q = guided_filter(guide, guide[:, 1:2], 3, 1e-8)
    torch.testing.assert_close(q, guide[:, 1:2], atol=1e-3, rtol=0)


def test_bad_shapes_and_radius_are_refused():
    with pytest.raises(ValueError, match="guide must be"):
        guided_filter(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), 2, 0.01)
    with pytest.raises(ValueError, match="radius must be"):
        guided_filter(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), 8, 0.01)


def test_chunks_do_not_change_the_result(monkeypatch):
    import macos_lite.guided_filter as gf

    guide, p = torch.rand(5, 3, 16, 16), torch.rand(5, 1, 16, 16)
    whole = guided_filter(guide, p, 3, 0.01)
    monkeypatch.setattr(gf, "CHUNK", 2)
    torch.testing.assert_close(guided_filter(guide, p, 3, 0.01), whole)
