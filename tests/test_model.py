"""Backbones, predictor, decoder and the joint model."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from macos_lite import geometry as G
from macos_lite.backbones import build_encoder, build_perceptual, l2_normalize
from macos_lite.checkpoints import load_checkpoint, load_published_weights, save_checkpoint
from macos_lite.model import MaCoSNet


def test_lite_backbone_classifies_coffee_as_espresso():
    """The offline ImageNet weights are really loaded: scikit-image's coffee photo is class 967."""
    skimage_data = pytest.importorskip("skimage.data")
    import timm

    from macos_lite.backbones import lite_imagenet_state_dict

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(lite_imagenet_state_dict(net))
    img = torch.from_numpy(skimage_data.coffee()).permute(2, 0, 1).float().div(255)[None]
    x = (G.resize(img, (224, 224)) - 0.5) / 0.5
    assert net.eval()(x).argmax(1).item() == 967


def test_encoder_features_come_from_the_same_weights(lite_encoder):
    import timm

    from macos_lite.backbones import lite_imagenet_state_dict

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(0, 1, 2, 3))
    ref_full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    ref_full.load_state_dict(lite_imagenet_state_dict(ref_full))
    net.load_state_dict({k: v for k, v in ref_full.state_dict().items() if k in net.state_dict()}, strict=False)
    x = torch.rand(1, 3, 96, 96)
    ours = lite_encoder(x)
    theirs = net.eval()((x - 0.5) / 0.5)
    for a, b in zip(ours[:3], theirs[:3]):  # ours runs channels-last: the same sums in another order
        torch.testing.assert_close(a, b.detach(), atol=1e-4, rtol=1e-4)
    assert ours[3].shape == (1, 112, 6, 6)


@pytest.mark.parametrize("name, channels", [("lite", (16, 24, 40, 112)), ("resnet101", (64, 256, 512, 1024))])
@pytest.mark.parametrize("size", [128, 240])
def test_encoder_scales(name, channels, size):
    enc = build_encoder(name, pretrained=False).eval()
    with torch.no_grad():
        feats = enc(torch.rand(1, 3, size, size))
    for f, c, s in zip(feats, channels, (2, 4, 8, 16)):
        assert f.shape == (1, c, -(-size // s), -(-size // s))


def test_backbone_modes():
    enc = build_encoder("lite", pretrained=False, mode="frozen_bn").train()
    bns = [m for m in enc.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(not m.training for m in bns) and all(p.requires_grad for p in enc.parameters())
    before = bns[0].running_mean.clone()
    enc(torch.rand(2, 3, 64, 64))
    assert torch.equal(before, bns[0].running_mean)
    enc.set_mode("frozen")
    assert not any(p.requires_grad for p in enc.parameters())
    enc.set_mode("finetune").train()
    assert all(m.training for m in bns)
    with pytest.raises(ValueError, match="unknown backbone mode"):
        enc.set_mode("half")


def test_perceptual_net_is_frozen_but_passes_gradients_to_its_input():
    net = build_perceptual("lite", pretrained=False).train()
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    before = bn.running_mean.clone()
    y = net(x)
    y.sum().backward()
    assert y.shape == (2, 1280) and x.grad.abs().sum() > 0 and torch.equal(before, bn.running_mean)


def test_l2_normalize():
    f = torch.tensor([[[[3.0]], [[4.0]]]])
    assert torch.allclose(l2_normalize(f).flatten(), torch.tensor([0.6, 0.8]), atol=1e-6)


@pytest.fixture(scope="module")
def lite128():
    torch.manual_seed(0)
    return MaCoSNet("lite", image_size=128, pretrained=False)


def test_untrained_model_predicts_identity(lite128):
    out = lite128(torch.rand(2, 2, 3, 128, 128))
    assert torch.allclose(out.theta(0, 1), G.identity_theta("cascade", 2), atol=1e-6)
    assert torch.allclose(out.theta(1, 0, "affine"), G.identity_theta("affine", 2), atol=1e-6)


@pytest.mark.parametrize("backbone, size, grid", [("lite", 128, 8), ("lite", 240, 15), ("resnet101", 128, 8), ("resnet101", 240, 15)])
def test_model_output_shapes(backbone, size, grid):
    model = MaCoSNet(backbone, image_size=size, pretrained=False).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 3, size, size))
    assert out.pairs == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert out.theta_aff.shape == (6, 1, 6) and out.theta_tps.shape == (6, 1, 18)
    assert out.corr.shape == (6, 1, grid * grid, grid, grid)
    assert out.mask_logits.shape == (6, 1, 1, size, size)


def test_triplet_outputs_match_pairwise_forward(lite128):
    """Batching all ordered pairs in one call gives what each pair gives alone."""
    lite128.eval()
    imgs = torch.rand(2, 3, 3, 128, 128)
    with torch.no_grad():
        tri = lite128(imgs)
        pair = lite128(imgs[:, [2, 0]])  # (s, t) = (2, 0) becomes (0, 1)
    p = tri.index(2, 0)
    assert torch.allclose(tri.corr[p], pair.corr[0], atol=1e-5)
    assert torch.allclose(tri.mask_logits[p], pair.mask_logits[0], atol=1e-4)
    lite128.train()


def test_gradients_reach_heads_decoder_and_encoder(lite128):
    lite128.train()
    out = lite128(torch.rand(2, 2, 3, 128, 128))
    (out.theta_aff.sum() + out.theta_tps.sum() + out.mask_logits.mean()).backward()
    for name in ("affine_head.linear.weight", "tps_head.linear.weight", "decoder.up8.0.weight", "encoder.stem.0.weight"):
        assert dict(lite128.named_parameters())[name].grad is not None, name
    lite128.zero_grad()


def test_predict_any_size(lite128):
    res = lite128.predict(torch.rand(3, 90, 150), torch.rand(3, 200, 120))
    assert res["theta"].shape == (24,) and res["mask_A"].shape == (1, 90, 150) and res["mask_B"].shape == (1, 200, 120)
    assert 0 <= res["mask_A"].min() and res["mask_A"].max() <= 1


def test_wrong_input_size_is_explained(lite128):
    with pytest.raises(ValueError, match="built for 128x128"):
        lite128(torch.rand(1, 2, 3, 96, 96))
    with pytest.raises(ValueError, match="at least two images"):
        lite128(torch.rand(1, 1, 3, 128, 128))


def published_head(out_dim):
    """The published regression head, written independently in the official code's layout."""
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(225, 128, 7), nn.BatchNorm2d(128), nn.ReLU(),
                                      nn.Conv2d(128, 64, 5), nn.BatchNorm2d(64), nn.ReLU())
            self.linear = nn.Linear(64 * 5 * 5, out_dim)

        def forward(self, x):
            return self.linear(self.conv(x).reshape(x.shape[0], -1))
    return Head()


def test_published_weights_load_and_give_the_same_outputs(tmp_path):
    import torchvision

    trunk = torchvision.models.resnet101(weights=None)
    ref_trunk = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1, trunk.layer2, trunk.layer3)
    aff, tps = published_head(6), published_head(18)
    for head in (aff, tps):
        for m in head.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    state = {f"FeatureExtraction.model.{k}": v for k, v in ref_trunk.state_dict().items()}
    state.update({f"FeatureRegression.{k}": v for k, v in aff.state_dict().items()})
    state.update({f"FeatureRegression2.{k}": v for k, v in tps.state_dict().items()})
    path = save_checkpoint(tmp_path / "weakalign.pth.tar", {"state_dict": state})

    model = MaCoSNet("resnet101", image_size=240, pretrained=False)
    loaded = load_published_weights(model, path)
    assert any(k.startswith("encoder.layer3") for k in loaded)
    model.eval(), aff.eval(), tps.eval(), ref_trunk.eval()
    corr = torch.rand(2, 225, 15, 15)
    with torch.no_grad():
        assert torch.allclose(model.affine_head(corr), aff(corr), atol=1e-5)
        assert torch.allclose(model.tps_head(corr), tps(corr), atol=1e-5)
        x = torch.rand(1, 3, 240, 240)
        ref = ref_trunk((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        # the encoder runs channels-last: the same sums in another order, equal to float rounding relative to the
        # scale of the maps (values in the thousands with random weights)
        assert (model.encoder(x)[3] - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_published_weights_shape_mismatch_is_explained():
    model = MaCoSNet("lite", image_size=128, pretrained=False)
    state = {f"FeatureRegression.{k}": v for k, v in published_head(6).state_dict().items()}
    with pytest.raises(ValueError, match="resnet101"):
        load_published_weights(model, state)


def test_checkpoint_save_is_atomic_and_load_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"w": torch.ones(2), "step": 3})
    assert load_checkpoint(path)["step"] == 3
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="broken.pt"):
        load_checkpoint(tmp_path / "broken.pt")


def test_last_stage_mode_trains_only_the_last_stage_with_fixed_bn_statistics():
    from macos_lite.backbones import build_encoder

    enc = build_encoder("lite", pretrained=False, mode="last_stage").train()
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable and trainable == {n for n, _ in enc.named_parameters() if n.startswith("blocks.4.")}
    assert all(not m.training for m in enc.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


def test_lite2_backbone_classifies_coffee_as_espresso():
    """Lite2's offline ImageNet weights are really loaded (as Lite0's above), and its encoder has the stated maps."""
    skimage_data = pytest.importorskip("skimage.data")
    import timm

    from macos_lite.backbones import lite_imagenet_state_dict

    net = timm.create_model("tf_efficientnet_lite2", pretrained=False)
    net.load_state_dict(lite_imagenet_state_dict(net, variant=2))
    img = torch.from_numpy(skimage_data.coffee()).permute(2, 0, 1).float().div(255)[None]
    x = (G.resize(img, (260, 260)) - 0.5) / 0.5
    assert net.eval()(x).argmax(1).item() == 967
    enc = build_encoder("lite2", pretrained=False, mode="frozen", deep=True).eval()
    with torch.no_grad():
        maps = enc(torch.rand(1, 3, 64, 64))
        deep = enc.deeper(maps[3])
    assert [m.shape[1] for m in maps] == list(enc.channels) == [16, 24, 48, 120]
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4] and tuple(deep.shape) == (1, 352, 2, 2)


def test_memory_format_changes_speed_not_values():
    from macos_lite.backbones import set_memory_format

    model = MaCoSNet("lite", image_size=64, pretrained=False).eval()
    assert model.encoder.memory_format == torch.channels_last == model.decoder.memory_format  # the default
    images = torch.rand(1, 2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fast = model(images)
        set_memory_format(torch.contiguous_format, model, None)
        assert model.encoder.memory_format == torch.contiguous_format == model.decoder.memory_format
        plain = model(images)
    assert fast.mask_logits is not None
    for key in ("theta_aff", "theta_tps", "mask_logits"):
        torch.testing.assert_close(getattr(fast, key), getattr(plain, key), atol=1e-4, rtol=1e-4)
    assert fast.mask_logits.is_contiguous()  # the usual order again after the decoder
