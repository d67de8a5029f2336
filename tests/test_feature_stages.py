"""Multi-layer features in the learned model's correlation (macos_lite.hyperpixel, MaCoSNet(feature_stages=...)):
checked against torch's own normalisation and resampling, not against the package's helpers."""

import pytest
import torch
import torch.nn.functional as F

from macos_lite.checkpoints import model_checkpoint, model_from_checkpoint, save_checkpoint
from macos_lite.hyperpixel import STAGE_CHOICES, check_stages, stage_names
from macos_lite.model import MaCoSNet


def test_check_stages_reads_both_forms():
    assert check_stages("32+16") == (16, 32)
    assert check_stages([16, 16, 8]) == (8, 16)
    assert stage_names((32, 16)) == "16+32"
    assert len(STAGE_CHOICES) == 7 and "8+16+32" in STAGE_CHOICES  # every non-empty subset of three strides
    for bad in ("", "24", "16+x", [], None):
        with pytest.raises(ValueError, match="feature stages"):
            check_stages(bad)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MaCoSNet("lite", 96, pretrained=False, backbone_mode="frozen", feature_stages="16+32").eval()


def test_correlated_features_concatenate_normalised_stages(model):
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        f, _ = model.encode(x)
        feats = model.encoder(x)
        f16, f32 = feats[3], model.encoder.deep(feats[3])
        up = F.interpolate(f32, size=f16.shape[-2:], mode="bilinear", align_corners=False)
        expected = F.normalize(torch.cat((F.normalize(f16, dim=1), F.normalize(up, dim=1)), 1), dim=1)
    assert f32.shape[1] == 320 and f32.shape[-1] == 3  # Lite0's stride-32 stage at 96 px
    assert f.shape == (2, 112 + 320, 6, 6)
    torch.testing.assert_close(f, expected, atol=1e-5, rtol=1e-5)


def test_forward_and_decoder_take_the_wider_descriptor(model):
    out = model(torch.rand(1, 2, 3, 96, 96))
    assert out.corr.shape == (2, 1, 36, 6, 6)  # one channel per cell of the partner, as with one stage
    assert out.mask_logits.shape == (2, 1, 1, 96, 96)
    assert model.decoder_input == "paper"


def test_the_stages_survive_a_checkpoint(model, tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", model_checkpoint(model))
    again = model_from_checkpoint(path)
    again = again[0] if isinstance(again, tuple) else again
    assert again.feature_stages == (16, 32)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(again.encode(x)[0], model.encode(x)[0])


def test_default_is_the_papers_single_stage():
    m = MaCoSNet("lite", 64, pretrained=False, backbone_mode="frozen")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m.encode(x)[0], F.normalize(m.encoder(x)[3], dim=1))
    assert not hasattr(m.encoder, "deep")
