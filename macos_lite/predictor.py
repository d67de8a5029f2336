"""The transformation predictor G: regression heads from a correlation map to transform parameters.

Architecture of CNNGeo/WeakAlign (docs/differences.md D10): conv 7x7 (hw -> 128) + BN + ReLU, conv 5x5
(128 -> 64) + BN + ReLU, flatten, linear -> 6 (affine, G1) or 2 n^2 (TPS, G2). At a 15x15 grid the convolutions
have no padding (15 -> 9 -> 5), exactly as the published weights expect. Smaller grids (8x8 at 128 px)
use 'same' padding and an adaptive pooling to 5x5, so one architecture serves every preset.

The last layer starts at zero weight with the identity transform as its bias: an untrained predictor
outputs the identity instead of a random warp.

Taught in notebook 03 (predictor and cascade).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .geometry import identity_theta

PUBLISHED_GRID = 15  # the grid the published heads were trained on (240 px, stride 16)


class RegressionHead(nn.Module):
    """Correlation ``(B, h*w, h, w)`` -> transform parameters ``(B, D)``.

    The submodule names (``conv.0``, ``conv.1``, ``conv.3``, ``conv.4``, ``linear``) follow the
    published CNNGeo/WeakAlign checkpoints so their weights load with
    :func:`macos_lite.checkpoints.load_published_weights`.
    """

    def __init__(self, grid_size: tuple[int, int], identity: torch.Tensor):
        super().__init__()
        h, w = grid_size
        pad7, pad5 = (0, 0) if min(h, w) >= PUBLISHED_GRID else (3, 2)
        self.grid_size = (h, w)
        self.conv = nn.Sequential(
            nn.Conv2d(h * w, 128, kernel_size=7, padding=pad7),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 64, kernel_size=5, padding=pad5),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(5)  # the identity at the published heads' grid
        self.linear = nn.Linear(64 * 5 * 5, identity.numel())
        nn.init.zeros_(self.linear.weight)
        with torch.no_grad():
            self.linear.bias.copy_(identity)

    def forward(self, corr: torch.Tensor) -> torch.Tensor:
        h, w = self.grid_size
        if corr.dim() != 4 or corr.shape[1:] != (h * w, h, w):
            raise ValueError(
                f"this head was built for a {h}x{w} feature grid and expects correlations of shape "
                f"(B, {h * w}, {h}, {w}), got {tuple(corr.shape)}; build the model with the image size you feed it"
            )
        return regress_theta(self, corr)


def regress_theta(head: RegressionHead, corr: torch.Tensor) -> torch.Tensor:
    """G's forward pass: ``theta = linear(flatten(pool(conv(corr))))``, ``(B, h*w, h, w)`` -> ``(B, D)``.

    The convolution stack (conv 7x7, BN, ReLU, conv 5x5, BN, ReLU) reads the correlation's h*w channels
    as features at each of B's cells; the pooling brings any grid to 5 x 5; the flattened 64 x 5 x 5
    activations (channel-major, ``torch.flatten(x, 1)``) feed the linear layer. No shape check: call the
    head itself (``head(corr)``) for that.

    Example:
        >>> head = affine_head((4, 4))                     # untrained: the last layer outputs the identity
        >>> regress_theta(head.eval(), torch.rand(2, 16, 4, 4)).shape
        torch.Size([2, 6])
    """
    x = head.pool(head.conv(corr))
    return head.linear(torch.flatten(x, 1))


def affine_head(grid_size: tuple[int, int]) -> RegressionHead:
    """G1: 6 affine parameters, initialised to the identity."""
    return RegressionHead(grid_size, identity_theta("affine", 1)[0])


def tps_head(grid_size: tuple[int, int], tps_grid_size: int = 3) -> RegressionHead:
    """G2: ``2 n^2`` TPS parameters (absolute control-point positions), initialised to the lattice."""
    return RegressionHead(grid_size, identity_theta("tps", 1, tps_grid_size)[0])
