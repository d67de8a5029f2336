"""Presets, and the official training script's settings: one name fixes the scale of every notebook and of
training (docs/differences.md D21). Taught in notebook 00 (setup) and notebook 08 (training).

| preset  | where           | image size | backbone            | purpose                                   |
|---------|-----------------|------------|---------------------|-------------------------------------------|
| `smoke` | CI, 2-core CPU  | 96         | lite (frozen)       | every notebook in seconds; numbers asserted |
| `demo`  | laptop CPU      | 128        | lite (frozen)       | a real, visible learning curve in minutes |
| `full`  | GPU             | 240        | resnet101 (or lite) | the paper's training and evaluation       |

A preset is a *partial* :class:`macos_lite.training.TrainConfig`: ``Preset.settings`` maps field names of
``TrainConfig`` to the preset's values, and ``TrainConfig.resolved()`` fills every field left ``None`` from
it in one step. Steps count optimiser updates. :data:`OFFICIAL` is a set of ``TrainConfig`` overrides too:
the official training script's settings, trained with the ``paper`` weights of eq 12 (``macos-lite train
--recipe official``; the recipes of weights are :data:`macos_lite.losses.RECIPES`).

``resolve_preset()`` picks ``$MACOS_LITE_PRESET``, else ``full`` when CUDA is available, else ``demo``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import torch

PRESET_ENV = "MACOS_LITE_PRESET"

# the values every preset shares unless it sets its own
_SHARED = dict(lr=1e-4,  # weak phase
               pretrain_lr=3e-4,  # peak rate of the synthetic strong supervision of G (CNNGeo recipe)
               pretrain_schedule="constant", pretrain_warmup=0, pretrain_grad_clip=10.0,
               prior_size=240,  # pixels: images of the co-localisation prior (macos_lite.pseudo_masks); 15 x 15 cells
               feature_stride=16)  # of the correlated features: 16 (the paper's) or 8 (dilated last stage)

# backbone_mode: "frozen" on CPU (the encoder's backward would dominate); "frozen_bn" as the paper on GPU.
# steps_per_epoch None: one pass over the training tuples. num_train_images: size of the synthetic training set.
_SETTINGS = {
    "smoke": dict(_SHARED, image_size=96, backbone="lite", backbone_mode="frozen", batch_size=8, pretrain_steps=40,
                  epochs=1, steps_per_epoch=20, num_train_images=100, val_pairs=20, num_workers=0, prior_size=96),
    # demo: scheduled pre-training (cheap steps that pay on unseen PF-WILLOW sub-classes), then two weak epochs of
    # 50 steps: the decoder needs the second epoch, after the pseudo-masks' first refresh, to learn masks
    # (docs/results.md, co-segmentation)
    "demo": dict(_SHARED, image_size=128, backbone="lite", backbone_mode="frozen", batch_size=8, pretrain_steps=600,
                 epochs=2, steps_per_epoch=50, num_train_images=500, val_pairs=100, num_workers=0,
                 pretrain_schedule="cosine", pretrain_warmup=30, pretrain_grad_clip=1.0),
    "full": dict(_SHARED, image_size=240, backbone="resnet101", backbone_mode="frozen_bn", batch_size=16,
                 pretrain_steps=5000, epochs=60, steps_per_epoch=None, num_train_images=5000, val_pairs=500,
                 num_workers=8, pretrain_schedule="cosine", pretrain_warmup=250, pretrain_grad_clip=1.0),
}
# synthetic test pairs the notebooks evaluate on (an evaluation size, not a training setting)
_TEST_PAIRS = {"smoke": 40, "demo": 200, "full": 1000}
# what the notebooks' own small experiments spend (not training settings): smoke keeps every notebook to seconds,
# demo to minutes on a CPU, full is the GPU's budget
_BUDGETS = {
    "smoke": dict(predictor_steps=40, matching_steps=40, cycle_steps=60, decoder_pairs=4, decoder_steps=4,
                  decoder_batch=2, decoder_set_size=12,
                  objective_schedule=(0, 3, 1),  # pre-training steps, weak steps, batch
                  sweep=dict(steps=2, batch_size=2, factors=(0.0, 1.0), margin_factors=(0.5, 1.0), seeds=1)),
    "demo": dict(predictor_steps=300, matching_steps=60, cycle_steps=150, decoder_pairs=8, decoder_steps=40,
                 decoder_batch=4, decoder_set_size=48, objective_schedule=(60, 30, 4),
                 sweep=dict(steps=40, batch_size=4, factors=(0.0, 1.0, 10.0), margin_factors=(0.5, 1.0), seeds=2)),
    "full": dict(predictor_steps=5000, matching_steps=60, cycle_steps=150, decoder_pairs=8, decoder_steps=300,
                 decoder_batch=4, decoder_set_size=164, objective_schedule=(500, 200, 8),
                 sweep=dict(steps=2000, batch_size=_SETTINGS["full"]["batch_size"],
                            factors=(0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0),
                            margin_factors=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0), seeds=3)),
}


@dataclass(frozen=True)
class Preset:
    """A named partial ``TrainConfig``: everything that scales with the hardware.

    ``settings`` maps ``TrainConfig`` field names to values; they read as attributes too
    (``preset.image_size``), and ``preset.num_val_pairs`` is ``settings["val_pairs"]``. ``num_test_pairs``
    is the number of synthetic test pairs the notebooks evaluate on; ``budgets`` what the notebooks' own
    experiments spend (``predictor_steps`` of G's pre-training in notebook 03, ``matching_steps`` of notebook 04,
    ``cycle_steps`` of 05, ``decoder_*`` of 06, ``objective_schedule`` of 07, ``sweep`` of 11). An unknown
    attribute raises ``AttributeError``.

    Example:
        >>> p = PRESETS["smoke"]
        >>> (p.name, p.image_size, p.num_val_pairs, p.num_test_pairs)
        ('smoke', 96, 20, 40)
    """

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    num_test_pairs: int = 0
    budgets: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "settings", dict(self.settings))  # its own copy

    def __getattr__(self, key: str):
        settings = self.__dict__.get("settings", {})  # __dict__: no recursion while unpickling
        if key in settings:
            return settings[key]
        raise AttributeError(f"preset {self.__dict__.get('name')!r} has no setting {key!r}; its settings are "
                             f"{', '.join(settings)}")

    @property
    def num_val_pairs(self) -> int:
        return self.settings["val_pairs"]

    def to_dict(self) -> dict:
        """``{"name", every setting, "num_test_pairs"}`` as plain values (JSON-ready)."""
        return {"name": self.name, **self.settings, "num_test_pairs": self.num_test_pairs}


PRESETS = {name: Preset(name, settings, _TEST_PAIRS[name], _BUDGETS[name]) for name, settings in _SETTINGS.items()}


def resolve_preset(name: str | None = None) -> str:
    """The preset to use: ``name``, else ``$MACOS_LITE_PRESET``, else ``full`` on a CUDA machine, else ``demo``."""
    if not name and os.environ.get(PRESET_ENV):
        if os.environ[PRESET_ENV] not in PRESETS:
            raise ValueError(f"${PRESET_ENV} is {os.environ[PRESET_ENV]!r}; the presets are {', '.join(PRESETS)} "
                             f"(set it to one of them, or unset it)")
        name = os.environ[PRESET_ENV]
    name = name or ("full" if torch.cuda.is_available() else "demo")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; the presets are {', '.join(PRESETS)}")
    return name


def get_preset(name: str | None = None, **overrides) -> Preset:
    """The :class:`Preset` called ``name`` (see :func:`resolve_preset`), with settings (or ``num_test_pairs``)
    overridden; ``num_val_pairs`` is another name of the ``val_pairs`` setting."""
    p = PRESETS[resolve_preset(name)]
    if "num_val_pairs" in overrides:
        overrides["val_pairs"] = overrides.pop("num_val_pairs")
    test_pairs = overrides.pop("num_test_pairs", p.num_test_pairs)
    return replace(p, settings={**p.settings, **overrides}, num_test_pairs=test_pairs)


# The official training script's settings (docs/differences.md D16): PF-PASCAL training pairs (with their flip
# flags and random crops), ResNet-101 at 240 px with frozen BN statistics, Adam at lr 5e-8 without weight decay,
# batch 4, 60 epochs, seed 1, validation PCK on PF-PASCAL val after every epoch and early stopping when it falls
# 0.05 below the best. It starts from the WeakAlign checkpoint (``init_weights``).
OFFICIAL = dict(dataset="pf-pascal", preset="full", backbone="resnet101", image_size=240, backbone_mode="frozen_bn",
                lr=5e-8, weight_decay=0.0, batch_size=4, epochs=60, steps_per_epoch=None, pretrain_steps=0,
                scheduler="constant", early_stop_drop=0.05, augment=True, seed=1, val_dataset="pf-pascal",
                val_split="val", val_pairs=10**9, backbone_lr_scale=1.0)
"""``TrainConfig`` overrides reproducing the official training script (read them through
:func:`macos_lite.train_config.official_recipe`, which copies them)."""
