import torch

from macos_lite.correlation import cell_to_channel, channel_to_cell, correlation, raw_correlation


def brute_force(f_A, f_B):
    """S_AB by a double loop over cells, column-major in A, then ReLU + L2 over A's cells."""
    b, c, ha, wa = f_A.shape
    hb, wb = f_B.shape[-2:]
    out = torch.zeros(b, ha * wa, hb, wb, dtype=f_A.dtype)
    for n in range(b):
        for ra in range(ha):
            for ca in range(wa):
                for rb in range(hb):
                    for cb in range(wb):
                        out[n, ra + ha * ca, rb, cb] = (f_A[n, :, ra, ca] * f_B[n, :, rb, cb]).sum()
    out = out.clamp_min(0)
    return out / torch.sqrt((out**2).sum(1, keepdim=True) + 1e-6)


def test_correlation_equals_brute_force_non_square():
    f_A = torch.randn(2, 5, 3, 4, dtype=torch.float64)
    f_B = torch.randn(2, 5, 4, 2, dtype=torch.float64)
    assert torch.allclose(correlation(f_A, f_B), brute_force(f_A, f_B), atol=1e-12)


def test_raw_correlation_channel_order_is_column_major():
    f_A = torch.zeros(1, 2, 3, 4)
    f_A[0, 0, 2, 1] = 1.0  # row 2, col 1 of A -> channel 2 + 3 * 1 = 5
    f_B = torch.zeros(1, 2, 3, 3)
    f_B[0, 0, 1, 2] = 1.0
    corr = raw_correlation(f_A, f_B)
    assert corr[0, 5, 1, 2] == 1.0 and corr.sum() == 1.0
    assert cell_to_channel(2, 1, 3) == 5 and channel_to_cell(5, 3) == (2, 1)


def test_correlation_is_not_a_transpose():
    f_A, f_B = torch.randn(1, 8, 3, 3), torch.randn(1, 8, 3, 3)
    s_ab, s_ba = correlation(f_A, f_B), correlation(f_B, f_A)
    assert torch.allclose((s_ab**2).sum(1), torch.ones(1, 3, 3), atol=1e-4)  # unit norm over A's cells
    assert not torch.allclose(s_ab.view(1, 9, 9), s_ba.view(1, 9, 9).transpose(1, 2), atol=1e-3)


def test_stride8_model_correlation_equals_brute_force():
    """feature_stride=8: the correlation is on a grid of image_size / 8 cells, and equals the double loop over
    the (dilated) encoder's cells; the encoder keeps the stride-16 network's weights."""
    from macos_lite.model import MaCoSNet

    torch.manual_seed(0)
    fine = MaCoSNet("lite", 64, pretrained=True, backbone_mode="frozen", feature_stride=8).eval()
    coarse = MaCoSNet("lite", 64, pretrained=True, backbone_mode="frozen").eval()
    assert fine.grid_size == (8, 8) and coarse.grid_size == (4, 4)
    a, b = coarse.encoder.state_dict(), fine.encoder.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    images = torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        out = fine(images, tps=False, masks=False, pairs=[(0, 1)])
        f, _ = fine.encode(images[0])
    assert f.shape == (2, 112, 8, 8)
    expected = brute_force(f[:1].double(), f[1:].double())
    assert out.corr.shape == (1, 1, 64, 8, 8)
    assert torch.allclose(out.corr[0].double(), expected, atol=1e-5)
