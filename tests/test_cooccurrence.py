"""The decoder's co-occurrence input (macos_lite.cooccurrence) against hand computations in numpy."""

import numpy as np
import pytest
import torch

from macos_lite.checkpoints import model_checkpoint, model_from_checkpoint, save_checkpoint
from macos_lite.colocalization import colocalize_features
from macos_lite.cooccurrence import (EXTRA_CHANNELS, colocalization_channels, decoder_input, match_statistics)
from macos_lite.model import MaCoSNet
from macos_lite.pseudo_masks import group_colocalization
from macos_lite.train_config import TrainConfig


def _unit(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=1)


def test_match_statistics_equal_a_numpy_loop():
    f_s, f_t = _unit(2, 5, 3, 2, seed=0), _unit(2, 5, 2, 4, seed=1)
    tau = 0.1
    got = match_statistics(f_s, f_t, tau).numpy()
    assert got.shape == (2, 2, 2, 4)
    for b in range(2):
        src = f_s[b].numpy().reshape(5, -1)  # (C, p)
        tgt = f_t[b].numpy().reshape(5, -1)  # (C, q)
        c = src.T @ tgt  # cosines (p, q)
        e = np.exp(c / tau)
        soft_p = e / e.sum(0, keepdims=True)  # over the partner's cells, for each target cell
        soft_q = e / e.sum(1, keepdims=True)  # over the target's cells, for each partner cell
        np.testing.assert_allclose(got[b, 0].ravel(), c.max(0), atol=1e-12)
        np.testing.assert_allclose(got[b, 1].ravel(), (soft_p * soft_q).max(0), atol=1e-12)


def test_mutual_score_is_high_for_mutual_matches_and_low_for_ambiguous_ones():
    """Target cell 0 and partner cell 0 pick each other; target cell 1 is equally close to two partner cells."""
    e = torch.eye(3, dtype=torch.float64)
    f_s = torch.stack((e[0], e[1], e[1])).T.reshape(1, 3, 1, 3)  # partner cells: x, y, y
    f_t = torch.stack((e[0], e[1])).T.reshape(1, 3, 1, 2)  # target cells: x, y
    stats = match_statistics(f_s, f_t, tau=0.01)
    assert stats[0, 0].flatten().tolist() == pytest.approx([1.0, 1.0])
    assert stats[0, 1, 0, 0] == pytest.approx(1.0, abs=1e-6)
    assert stats[0, 1, 0, 1] == pytest.approx(0.5, abs=1e-6)  # each of the two y cells gets half


def test_colocalization_channels_are_the_standardised_evidence_and_the_mask():
    f = torch.zeros(3, 4, 5, 5)
    f[:, 0] = 0.1
    f[:, 1, 1:4, 1:4] = 1.0  # a blob that recurs in every image
    f = f + 0.01 * torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    ch = colocalization_channels(f)
    ref = colocalize_features(f)
    assert torch.equal(ch[:, 1], ref.masks.float())
    np.testing.assert_allclose(ch[:, 0].numpy(), (ref.scores / ref.scores.std()).numpy(), rtol=1e-5)
    assert ch[:, 1, 2, 2].tolist() == [1.0, 1.0, 1.0] and ch[:, 1, 0, 0].tolist() == [0.0, 0.0, 0.0]
    assert torch.count_nonzero(colocalization_channels(f[:1])) == 0  # one image shares nothing


def test_decoder_input_layout_and_bad_coloc_shape():
    f_s, f_t = _unit(2, 6, 4, 4, seed=2).float(), _unit(2, 6, 4, 4, seed=3).float()
    coloc = torch.rand(2, 2, 4, 4)
    x = decoder_input(f_t, f_s, coloc)
    assert x.shape == (2, 6 + EXTRA_CHANNELS, 4, 4)
    assert torch.equal(x[:, :6], f_t) and torch.equal(x[:, 8:], coloc)
    with pytest.raises(ValueError, match="coloc must be"):
        decoder_input(f_t, f_s, coloc[:, :1])


@pytest.mark.parametrize("stride", [16, 8])
def test_cooccurrence_model_decodes_pairs_like_its_tuple_forward(stride):
    """A pair's masks from forward() equal decode_masks() of the same encodings with the pair co-localised."""
    torch.manual_seed(0)
    model = MaCoSNet("lite", 64, pretrained=False, decoder_input="cooccurrence", feature_stride=stride).eval()
    assert model.decoder.up8[0].in_channels == model.encoder.channels[3] + EXTRA_CHANNELS
    imgs = torch.rand(1, 2, 3, 64, 64)
    with torch.no_grad():
        out = model(imgs, tps=False)
        f, skips = model.encode(imgs[0])
        logits = model.decode_masks(f[:1], f[1:], [s[1:] for s in skips])
    assert torch.allclose(out.mask_logits_of(1, 0)[0], logits[0], atol=1e-5)


def test_unknown_decoder_input_is_refused():
    with pytest.raises(ValueError, match="decoder_input must be one of paper, cooccurrence"):
        MaCoSNet("lite", 64, pretrained=False, decoder_input="raw")


def test_checkpoint_round_trip_keeps_the_decoder_input(tmp_path):
    model = MaCoSNet("lite", 64, pretrained=False, decoder_input="cooccurrence")
    path = save_checkpoint(tmp_path / "m.pt", model_checkpoint(model))
    loaded = model_from_checkpoint(path)
    assert loaded.decoder_input == "cooccurrence"
    assert loaded.decoder.up8[0].in_channels == model.decoder.up8[0].in_channels


def test_group_colocalization_uses_the_whole_category():
    model = MaCoSNet("lite", 64, pretrained=False, decoder_input="cooccurrence").eval()
    f = _unit(5, model.encoder.channels[3], 4, 4, seed=4).float()
    got = group_colocalization(model, f, ["a", "a", "a", "b", "b"])
    assert torch.allclose(got[:3], colocalization_channels(f[:3])) and torch.allclose(got[3:], colocalization_channels(f[3:]))
    paper = MaCoSNet("lite", 64, pretrained=False)
    assert group_colocalization(paper, f, ["a"] * 5) is None


def test_the_decoder_input_is_a_training_setting():
    assert TrainConfig(preset="smoke", out="-").resolved().decoder_input == "cooccurrence"
    cfg = TrainConfig(preset="smoke", out="-", decoder_input="paper").resolved()
    assert cfg.decoder_input == "paper"


def test_the_papers_recipes_train_the_papers_decoder_input():
    import argparse

    from macos_lite import train_cli

    def config(*argv):
        p = argparse.ArgumentParser()
        train_cli.add_arguments(p)
        return train_cli.config_from_args(p.parse_args(list(argv)))

    assert config().decoder_input == "cooccurrence"
    assert config("--recipe", "paper").decoder_input == "paper"
    assert config("--recipe", "official").decoder_input == "paper"
    assert config("--recipe", "paper", "--decoder-input", "cooccurrence").decoder_input == "cooccurrence"


def test_a_cooccurrence_model_cosegments_each_category_as_one_set(tmp_path):
    """Evaluated as a set (SetModelMethod): an image's mask depends on the images of its own category only."""
    from macos_lite.evaluation import ModelMethod, SetModelMethod, method_from_checkpoint

    torch.manual_seed(0)
    model = MaCoSNet("lite", 64, pretrained=False, backbone_mode="frozen", decoder_input="cooccurrence").eval()
    method = SetModelMethod(model, partners=2)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(5, 3, 64, 64, generator=g)
    labels = [0, 0, 0, 1, 1]
    probs = method.cosegment_set(images, labels)
    assert probs.shape == (5, 1, 64, 64) and bool(((probs >= 0) & (probs <= 1)).all())
    changed = images.clone()
    changed[3:] = torch.rand(2, 3, 64, 64, generator=g)  # another category's images replaced
    again = method.cosegment_set(changed, labels)
    torch.testing.assert_close(again[:3], probs[:3])
    assert not torch.allclose(again[3:], probs[3:])
    path = save_checkpoint(tmp_path / "c.pt", model_checkpoint(model))
    assert isinstance(method_from_checkpoint(path), SetModelMethod)
    paper = MaCoSNet("lite", 64, pretrained=False, backbone_mode="frozen")
    with pytest.raises(ValueError, match="cooccurrence"):
        SetModelMethod(paper)
    path = save_checkpoint(tmp_path / "p.pt", model_checkpoint(paper))
    assert type(method_from_checkpoint(path)) is ModelMethod
