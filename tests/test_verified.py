"""A learned matcher checked against the robust fit of its own features (evaluation.verified)."""

import argparse
import json

import numpy as np
import pytest
import torch

from macos_lite import evaluate_cli
from macos_lite import geometry as G
from macos_lite.backbones import l2_normalize
from macos_lite.evaluation import VerifiedMethod
from macos_lite.evaluation.verified import FINE_MARGIN, MARGIN
from macos_lite.robust_fit import agreeing_matches

SIZE = (96, 64)  # 6 x 4 cells of 16 px
SHIFT = -2 * 2 * 16 / (SIZE[1] - 1)  # A's grid is B's moved by two 16-px columns: tx of the true map B -> A


class FixedFeatures(torch.nn.Module):
    """A stand-in model: ``encode`` returns the same feature grid for every image of a batch."""

    def __init__(self, grid):
        super().__init__()
        self.grid = grid

    def encode(self, images):
        return (self.grid.expand(images.shape[0], -1, -1, -1),)


class FixedMap:
    """A stand-in learned matcher whose map is ``theta`` for every pair, on the features ``grid`` of A or B."""

    name, image_size = "fixed", SIZE

    def __init__(self, theta, kind, grid_A, grid_B):
        self.theta, self.kind = theta, kind
        self.models = {"A": FixedFeatures(grid_A), "B": FixedFeatures(grid_B)}
        self.model = _Switch(self.models)

    def transforms(self, images_A, images_B):
        return self.theta.float().expand(images_A.shape[0], -1)

    def masks(self, images_A, images_B):
        return torch.ones_like(images_A[:, :1]), torch.ones_like(images_B[:, :1])


class _Switch(torch.nn.Module):
    """encode() of A's images first, then B's (VerifiedMethod encodes A's batch, then B's)."""

    image_size = SIZE  # as a MaCoSNet's

    def __init__(self, models):
        super().__init__()
        self.models, self.calls = models, 0

    def encode(self, images):
        side = "A" if self.calls % 2 == 0 else "B"
        self.calls += 1
        return self.models[side].encode(images)


def shifted_grids():
    f = l2_normalize(torch.randn(16, 6, 6, generator=torch.Generator().manual_seed(0)))
    return f[:, :, 2:], f[:, :, :-2]  # (16, 6, 4) each; A's column j is B's column j + 2


def images(b=2):
    return torch.rand(b, 3, *SIZE), torch.rand(b, 3, *SIZE)


def test_agreeing_matches_counts_by_hand():
    pb = torch.tensor([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2], [0.9, -0.9]], dtype=torch.float64)
    pa = pb.clone()
    pa[1] += torch.tensor([0.3, 0.0], dtype=torch.float64)  # 3 cells off in x (cell 0.1)
    pa[3] += torch.tensor([0.0, 0.05], dtype=torch.float64)  # half a cell off: agrees
    cell = torch.tensor([0.1, 0.1], dtype=torch.float64)
    identity = G.identity_theta("affine", dtype=torch.float64)[0]
    residual = np.linalg.norm((pb.numpy() - pa.numpy()) / 0.1, axis=1)
    assert agreeing_matches(identity, "affine", pb, pa, cell) == int((residual < 1).sum()) == 3
    cascade = G.identity_theta("cascade", dtype=torch.float64)[0]
    assert agreeing_matches(cascade, "cascade", pb, pa, cell, threshold=4.0) == 4
    assert agreeing_matches(identity, "affine", pb[:0], pa[:0], cell) == 0


def test_a_wrong_learned_map_is_replaced_by_the_fit_of_the_features():
    grid_A, grid_B = shifted_grids()
    wrong = G.identity_theta("cascade", dtype=torch.float64)[0]  # no motion: two cells off everywhere
    method = VerifiedMethod(FixedMap(wrong, "cascade", grid_A, grid_B))
    theta = method.transforms(*images())
    expected = torch.cat((torch.tensor([1.0, 0.0, SHIFT, 0.0, 1.0, 0.0]), G.identity_theta("tps")[0]))
    assert theta.shape == (2, 24)
    torch.testing.assert_close(theta, expected.expand(2, -1), atol=1e-5, rtol=0)
    assert method.num_replaced == method.num_pairs == 2 and method.name == "fixed+verify"


def test_a_right_learned_map_is_kept_exactly():
    grid_A, grid_B = shifted_grids()
    right = torch.tensor([1.0, 0.0, SHIFT, 0.0, 1.0, 0.01], dtype=torch.float64)  # a hundredth of a cell off in y
    method = VerifiedMethod(FixedMap(right, "affine", grid_A, grid_B))
    theta = method.transforms(*images(3))
    assert torch.equal(theta, right.float().expand(3, -1)) and method.num_replaced == 0


def test_the_margin_decides_and_bad_settings_are_refused():
    grid_A, grid_B = shifted_grids()
    wrong = G.identity_theta("affine", dtype=torch.float64)[0]
    # the fit agrees with all 24 mutual matches, the identity with none: a margin of all 24 cells keeps it
    method = VerifiedMethod(FixedMap(wrong, "affine", grid_A, grid_B), margin=1.0)
    assert torch.equal(method.transforms(*images(1)), wrong.float()[None]) and method.num_replaced == 0
    with pytest.raises(ValueError, match="margin"):
        VerifiedMethod(FixedMap(wrong, "affine", grid_A, grid_B), margin=-0.1)


def parse(argv):
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_verify_writes_num_replaced_and_refuses_a_reference(tmp_path, capsys):
    from macos_lite.checkpoints import model_checkpoint, save_checkpoint
    from macos_lite.model import MaCoSNet

    path = save_checkpoint(tmp_path / "tiny.pt", model_checkpoint(MaCoSNet("lite", image_size=64, pretrained=False)))
    out = tmp_path / "tiny.json"
    args = parse(["--dataset", "synthetic", "--checkpoint", str(path), "--verify", "ransac", "--verify-size", "96",
                  "--json", str(out),
                  "--max-pairs", "3", "--device", "cpu", "--quiet"])
    assert evaluate_cli.run(args) == 0
    s = json.loads(out.read_text())
    assert s["method"]["name"] == "tiny+verify" and 0 <= s["num_replaced"] <= 3
    assert all(0 <= v <= 1 for v in s["pck"].values())
    capsys.readouterr()
    assert evaluate_cli.run(parse(["--dataset", "synthetic", "--method", "ransac", "--verify", "ransac"])) == 2
    err = capsys.readouterr().err
    assert "--checkpoint" in err and len(err.strip().splitlines()) == 1


def test_the_check_at_another_image_size_fits_on_that_grid():
    # the same 6 x 4 feature grids read as the grid of a 96 x 96 input: cells of 24 x 16 px, so the fit's shift
    # of two columns is 48 px, not the 32 px of the model's 96 x 64 input
    grid_A, grid_B = shifted_grids()
    fixed = FixedMap(G.identity_theta("affine", dtype=torch.float64)[0], "affine", grid_A, grid_B)
    seen = []
    encode = fixed.model.encode
    fixed.model.encode = lambda images: (seen.append(tuple(images.shape[-2:])), encode(images))[1]
    method = VerifiedMethod(fixed, image_size=96)
    theta = method.transforms(*images(1))
    assert seen == [(96, 96), (96, 96)] and method.check_size == (96, 96) and method.num_replaced == 1
    torch.testing.assert_close(theta[0], torch.tensor([1.0, 0.0, -2 * 48 / 95, 0.0, 1.0, 0.0]), atol=1e-5, rtol=0)
    assert method.image_size == SIZE  # what the evaluation loads and G sees stays the model's
    # a finer grid than G's takes the bare-majority margin; the model's own grid the clear-majority one
    assert method.margin == FINE_MARGIN == 0 and VerifiedMethod(fixed).margin == MARGIN > 0
    with pytest.raises(ValueError, match="image_size"):
        VerifiedMethod(fixed, image_size=16)


def test_cli_verify_size_needs_verify(capsys):
    assert evaluate_cli.run(parse(["--dataset", "synthetic", "--checkpoint", "x.pt", "--verify-size", "240"])) == 2
    err = capsys.readouterr().err
    assert "--verify ransac" in err and len(err.strip().splitlines()) == 1
