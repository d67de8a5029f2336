"""The co-segmentation decoder D: mask logits at input resolution.

Input for image A: ``C_A = [f_A, S]`` where ``S`` is a correlation laid out on A's grid (one channel
per cell of the partner image), so the decoder sees both A's appearance and which of A's cells
co-occur in the partner (docs/differences.md D12). Four stride-2 transposed convolutions bring the
stride-16 grid back to the input size; after each of the first three the encoder's feature map of the same scale is
added (skip connections at strides 8, 4, 2 -- the wiring the official code intended, docs/differences.md D4).
A 1x1 projection matches skip channels to the decoder's widths where they differ.

Initialisation (as the official code): every transposed convolution starts as a bilinear up-sampler of the
mean of its input channels, so the first masks are smooth rather than the checkerboard noise a random
stride-2 transposed convolution produces; a small random part breaks the symmetry between channels, and
the last layer starts near zero (masks of probability 1/2 everywhere).

Taught in notebook 06 (decoder and contrastive loss).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def bilinear_kernel(in_ch: int, out_ch: int) -> torch.Tensor:
    """Weights ``(in_ch, out_ch, 3, 3)`` that make a stride-2 transposed conv a bilinear up-sampler of the
    channel mean: ``[[.25, .5, .25], [.5, 1, .5], [.25, .5, .25]] / in_ch`` for every (in, out) pair."""
    k = torch.tensor([0.5, 1.0, 0.5])
    return (k[:, None] * k[None, :] / in_ch).expand(in_ch, out_ch, 3, 3).clone()


def _up(in_ch: int, out_ch: int, last: bool = False) -> nn.Module:
    deconv = nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=1, bias=last)
    with torch.no_grad():
        noise = torch.empty_like(deconv.weight).uniform_(-1, 1) / (3 * in_ch**0.5)
        deconv.weight.copy_((bilinear_kernel(in_ch, out_ch) + noise) * (0.1 if last else 1.0))
    return deconv if last else nn.Sequential(deconv, nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


def _projection(in_ch: int, out_ch: int) -> nn.Module:
    if in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))


class Decoder(nn.Module):
    """``(C_A (B, c16 + h*w, h, w), skips [s2, s4, s8]) -> mask logits (B, 1, H, W)``.

    in_channels: ``c16 + h*w``; skip_channels: encoder channels at strides 2, 4, 8; widths: decoder
    channels after the first three up-samplings (the paper's ResNet-101 decoder: 512, 256, 64).
    """

    memory_format = torch.channels_last  # of the convolutions' input (backbones.set_memory_format)

    def __init__(self, in_channels: int, skip_channels: tuple[int, int, int], widths: tuple[int, int, int]):
        super().__init__()
        w8, w4, w2 = widths
        s2, s4, s8 = skip_channels
        self.up8, self.up4, self.up2 = _up(in_channels, w8), _up(w8, w4), _up(w4, w2)
        self.skip8, self.skip4, self.skip2 = _projection(s8, w8), _projection(s4, w4), _projection(s2, w2)
        self.up1 = _up(w2, 1, last=True)
        nn.init.zeros_(self.up1.bias)  # p = 0.5 everywhere before training

    @staticmethod
    def _add(x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if skip.shape[-2:] != x.shape[-2:]:  # odd input sizes: align the scales
            skip = F.interpolate(skip, size=x.shape[-2:], mode="bilinear", align_corners=True)
        return x + skip

    def forward(self, c: torch.Tensor, skips: list[torch.Tensor], out_size: tuple[int, int]) -> torch.Tensor:
        # channels-last by default: the same values, forward + backward 1.8x faster on a CPU
        c, s2, s4, s8 = (t.contiguous(memory_format=self.memory_format) for t in (c, *skips))
        x = self._add(self.up8(c), self.skip8(s8))
        x = self._add(self.up4(x), self.skip4(s4))
        x = self._add(self.up2(x), self.skip2(s2))
        x = self.up1(x)
        if x.shape[-2:] != tuple(out_size):
            x = F.interpolate(x, size=out_size, mode="bilinear", align_corners=True)
        return x.contiguous()


DEFAULT_WIDTHS = {"lite": (128, 64, 32), "resnet101": (512, 256, 64)}
