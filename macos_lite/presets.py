"""Presets: one name fixes the scale of every notebook and of training (docs/differences.md D21).

| preset  | where           | image size | backbone            | purpose                                   |
|---------|-----------------|------------|---------------------|-------------------------------------------|
| `smoke` | CI, 2-core CPU  | 96         | lite (frozen)       | every notebook in seconds; numbers asserted |
| `demo`  | laptop CPU      | 128        | lite (frozen)       | a real, visible learning curve in minutes |
| `full`  | GPU             | 240        | resnet101 (or lite) | the paper's training and evaluation       |

``resolve_preset()`` picks ``$MACOS_LITE_PRESET``, else ``full`` when CUDA is available, else ``demo``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

import torch

PRESET_ENV = "MACOS_LITE_PRESET"


@dataclass(frozen=True)
class Preset:
    """Everything that scales with the hardware. Steps count optimiser updates."""

    name: str
    image_size: int
    backbone: str
    backbone_mode: str  # "frozen" on CPU (the encoder's backward would dominate); "frozen_bn" as the paper on GPU
    batch_size: int
    pretrain_steps: int  # synthetic strong supervision of G (CNNGeo recipe)
    epochs: int
    steps_per_epoch: int | None  # None: one pass over the training tuples
    lr: float  # weak phase
    pretrain_lr: float
    num_train_images: int  # size of the synthetic training set
    num_val_pairs: int
    num_test_pairs: int
    num_workers: int
    pretrain_schedule: str = "constant"  # pre-training learning rate: "constant" or "cosine" (warm-up, decay to 0)
    pretrain_warmup: int = 0  # linear warm-up steps of the "cosine" pre-training schedule
    pretrain_grad_clip: float = 10.0  # gradient-norm clip during pre-training
    prior_size: int = 240  # pixels: images of the co-localisation prior (macos_lite.pseudo_masks); 15 x 15 cells
    feature_stride: int = 16  # of the correlated features: 16 (the paper's) or 8 (dilated last stage)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = {
    "smoke": Preset("smoke", 96, "lite", "frozen", batch_size=8, pretrain_steps=40, epochs=1, steps_per_epoch=20,
                    lr=1e-4, pretrain_lr=3e-4, num_train_images=100, num_val_pairs=20, num_test_pairs=40,
                    num_workers=0, prior_size=96),
    # demo: scheduled pre-training (cheap steps that pay on unseen PF-WILLOW sub-classes), then two weak epochs of
    # 50 steps: the decoder needs them (and the pseudo-mask refresh between them) to learn masks -- one epoch gave
    # J 0.65 on unseen horses, two 0.71; see the README's matching and co-segmentation sections
    "demo": Preset("demo", 128, "lite", "frozen", batch_size=8, pretrain_steps=600, epochs=2, steps_per_epoch=50,
                   lr=1e-4, pretrain_lr=3e-4, num_train_images=500, num_val_pairs=100, num_test_pairs=200,
                   num_workers=0, pretrain_schedule="cosine", pretrain_warmup=30, pretrain_grad_clip=1.0),
    "full": Preset("full", 240, "resnet101", "frozen_bn", batch_size=16, pretrain_steps=5000, epochs=60,
                   steps_per_epoch=None, lr=1e-4, pretrain_lr=3e-4, num_train_images=5000, num_val_pairs=500,
                   num_test_pairs=1000, num_workers=8, pretrain_schedule="cosine", pretrain_warmup=250,
                   pretrain_grad_clip=1.0),
}


def resolve_preset(name: str | None = None) -> str:
    """The preset to use: ``name``, else ``$MACOS_LITE_PRESET``, else ``full`` on a CUDA machine, else ``demo``."""
    name = name or os.environ.get(PRESET_ENV) or ("full" if torch.cuda.is_available() else "demo")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; the presets are {tuple(PRESETS)}")
    return name


def get_preset(name: str | None = None, **overrides) -> Preset:
    """The :class:`Preset` called ``name`` (see :func:`resolve_preset`), with fields overridden."""
    return replace(PRESETS[resolve_preset(name)], **overrides)
