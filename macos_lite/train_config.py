"""The settings of a training run, :class:`TrainConfig`: each declared once, with its ``macos-lite train`` flag.

Every field that has a flag is declared with :func:`setting`: its default, and in the field's ``metadata``
the help text, choices and least value of the flag. :mod:`macos_lite.train_cli` builds the flags from these
fields (``--image-size`` for ``image_size``), so a new setting is one new field. Fields left ``None`` take
the preset's value (:mod:`macos_lite.presets`) when the config is :meth:`TrainConfig.resolved`.

Taught in notebook 08 (training).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

from . import paths
from .backbones import MODES, PRETRAIN_MODES, available_backbones
from .cooccurrence import INPUTS as DECODER_INPUTS
from .hyperpixel import STAGE_CHOICES as FEATURE_STAGE_CHOICES
from .losses import RECIPES, LossConfig
from .presets import OFFICIAL, get_preset
from .pretrain import SCHEDULES


def setting(default=None, help: str = "", *, choices: tuple | None = None, minimum: float | None = None,
            maximum: float | None = None, above: float | None = None, below: float | None = None,
            metavar: str | None = None):
    """A :class:`TrainConfig` field with a command-line flag: ``dataclasses.field(default, metadata=...)``.

    ``help`` (without the default: the flag's help adds it), ``choices`` (the allowed values), the bounds
    ``minimum``/``maximum`` (inclusive) and ``above``/``below`` (exclusive), and ``metavar`` describe the flag;
    a numeric flag also refuses NaN and infinities (:func:`macos_lite.cli_common.number`).
    """
    meta = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "above": above,
            "below": below, "metavar": metavar}
    return field(default=default, metadata={k: v for k, v in meta.items() if v is not None})


@dataclass
class TrainConfig:
    """Settings of a training run; ``None`` fields take the preset's value (see :mod:`macos_lite.presets`).

    Lengths are in pixels, steps count optimiser updates, learning rates are Adam's. The module docstring of
    :mod:`macos_lite.training` describes the two phases these settings drive.
    """

    dataset: str = "synthetic"  # a name of macos_lite.data.registry, or several joined by '+'
    data_root: str | None = None
    preset: str | None = None
    out: str | None = None
    backbone: str | None = setting(help="the encoder", choices=available_backbones())
    backbone_mode: str | None = setting(help="the encoder during the weak phase",
                                        choices=MODES)
    pretrained: bool | str = True  # ImageNet weights: torchvision's (True), a local file, or none (False)
    image_size: int | None = setting(help="input images are resized to this square size in pixels", minimum=1)
    batch_size: int | None = setting(help="tuples (or pre-training images) per global step", minimum=1)
    epochs: int | None = setting(help="epochs of the weak phase", minimum=0)
    steps_per_epoch: int | None = setting(help="weak steps per epoch (None: one pass over the training tuples)",
                                          minimum=1)
    lr: float | None = setting(help="peak learning rate of the weak phase", above=0)
    pretrain_steps: int | None = setting(help="synthetic strong-supervision steps before the weak phase", minimum=0)
    pretrain_lr: float | None = setting(help="peak learning rate of pre-training", above=0)
    pretrain_schedule: str | None = setting(
        help="pre-training learning rate: linear warm-up then cosine decay to 0, or constant",
        choices=SCHEDULES)
    pretrain_warmup: int | None = setting(help="warm-up steps of the cosine pre-training schedule", minimum=0)
    pretrain_grad_clip: float | None = setting(help="gradient-norm clip during pre-training", above=0)
    pretrain_backbone_mode: str = setting("frozen", "the encoder during pre-training: frozen, or its last stage "
                                          "trained with BN fixed", choices=PRETRAIN_MODES)
    pretrain_images: str | None = setting(
        help="pre-training pool (no labels used): a folder of images, or dataset names joined by '+' "
             "(default: the training images plus the Weizmann horses when found; never add the images you "
             "evaluate on)", metavar="DIR|NAMES")
    feature_stride: int | None = setting(
        help="stride of the correlated features: 16 (paper) or 8 (dilated last stage, 2x finer grid)",
        choices=(16, 8))
    feature_stages: str = setting(
        "16", help="encoder stages (strides) whose L2-normalised maps are concatenated into the correlated "
                   "descriptor, joined by '+' (16: the paper's; 16+32 adds Lite's stride-32 stage, multi-layer "
                   "'hyperpixel' features)", choices=FEATURE_STAGE_CHOICES)
    decoder_input: str = setting(
        "cooccurrence", help="what the decoder sees besides the target's features: cooccurrence (statistics of the "
             "correlation and the co-localisation of the images seen together, for any category) or paper "
             "([f_t, S_st], eq 6; the default of --recipe paper and official) (docs/differences.md D23)",
        choices=DECODER_INPUTS)
    backbone_lr_scale: float = setting(0.1, "the encoder's learning rate as a multiple of --lr", minimum=0)
    decoder_lr_scale: float = setting(10.0, "the decoder's learning rate as a multiple of --lr (the decoder "
                                            "starts from scratch; G starts pre-trained)", minimum=0)
    weight_decay: float = setting(0.0, "Adam's weight decay", minimum=0)
    scheduler: str = setting("cosine", "learning rate of the weak phase: cosine decay or constant",
                             choices=SCHEDULES)
    grad_clip: float = setting(10.0, "gradient-norm clip of the weak phase (against spikes only: a tight clip "
                                     "lets the consistency terms' large gradients scale the matching gradient away)",
                               above=0)
    seed: int = setting(0, "seed of every random choice (images, warps, initialisation)")
    device: str = setting("auto", "auto (CUDA when available), cpu, cuda or cuda:N")
    amp: str = setting("auto", "mixed precision: auto (bf16 autocast on CUDA), bf16, off",
                       choices=("auto", "bf16", "off"))
    channels_last: str = setting("auto", "channels-last memory format: auto (the convolutions' inputs on every "
                                 "device, weights and batches too on CUDA), on (weights and batches too on any "
                                 "device), off (contiguous everywhere)", choices=("auto", "on", "off"))
    compile: bool = setting(False, "torch.compile the model")
    num_workers: int | None = setting(help="data-loading processes", minimum=0)
    tuple_size: int | None = setting(help="images per weak tuple (default: triplets when the transitivity loss is "
                                          "on, else pairs)", choices=(2, 3))
    augment: bool = setting(False, "random crops/flips as in the official training script")
    loss: LossConfig = field(default_factory=LossConfig)
    # the co-localisation prior behind L_prior (used when its weight is > 0; see macos_lite.pseudo_masks)
    prior_size: int | None = setting(help="image size of the co-localisation prior")
    prior_rounds: int = setting(3, "prototype-refinement rounds of the prior")
    prior_refresh: int = setting(1, "refresh the pseudo-masks from the model every N epochs (0: never)")
    prior_momentum: float = setting(0.5, "the prior's share in a refreshed pseudo-mask", minimum=0, maximum=1)
    prior_partners: int = setting(3, "partners of the same category each image's refreshed mask is averaged over")
    num_train_images: int | None = setting(help="size of the synthetic training set (synthetic only)", minimum=1)
    val_dataset: str | None = setting(help="dataset for the per-epoch validation PCK ('none' to skip; default: "
                                           "synthetic val pairs for synthetic, else the dataset's val split)")
    val_root: str | None = setting(help="the validation dataset's folder")
    val_split: str = setting("val", "split of --val-dataset (PF-PASCAL, SPair-71k)")
    val_pairs: int | None = setting(help="validation pairs: how many synthetic pairs are drawn, or at most this "
                                          "many (an even spread) of a real set", minimum=1)
    val_fraction: float = setting(0.3, "share of each category's images held out of training to validate on "
                                       "(PF-WILLOW; 0: no validation)", minimum=0, below=1)
    early_stop_drop: float | None = setting(help="stop when val PCK < best - this (the official script: 0.05)", minimum=0)
    log_every: int = setting(10, "log the losses every N steps", minimum=1)
    checkpoint_every: int = setting(0, "also save last.pt every N steps (0: at the end of epochs only)", minimum=0)
    max_steps: int | None = setting(help="stop after this global step (resume later with --resume)", minimum=0)
    init_weights: str | None = setting(help="start from a macos_lite checkpoint or a WeakAlign/CNNGeo file")
    resume: bool = False
    overwrite: bool = False  # start afresh in a folder holding a run (its checkpoints are deleted)
    progress: bool = True

    def resolved(self) -> "TrainConfig":
        """A copy with every preset-dependent field filled in: the preset's settings replace the ``None`` fields
        in one step; ``tuple_size`` follows the loss, ``out`` gets a time-stamped folder.

        Raises ``ValueError`` for an unknown preset, or pairs with the transitivity loss on.
        """
        p = get_preset(self.preset)
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update({k: v for k, v in p.settings.items() if values[k] is None}, preset=p.name)
        if values["tuple_size"] is None:
            values["tuple_size"] = 3 if self.loss.needs_triplets else 2
        if self.loss.needs_triplets and values["tuple_size"] < 3:
            raise ValueError("the transitivity loss needs triplets: set tuple_size=3 or lambda_trans=0")
        if values["out"] is None:
            values["out"] = str(paths.runs_root() / f"train-{values['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}")
        check_bounds(values)
        return TrainConfig(**values)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["loss"] = self.loss.to_dict()
        return d


BOUNDS = ("minimum", "maximum", "above", "below")


def check_bounds(values: dict) -> None:
    """Raise ``ValueError`` naming the setting, its flag and its range when a numeric setting of ``values`` (a
    ``{field: value}`` dict) is NaN, infinite or outside the bounds its :func:`setting` declares -- the rule the
    command line applies to its flags, for configs built in Python."""
    from .cli_common import bounds_text, within_bounds

    for f in fields(TrainConfig):
        bounds = {k: f.metadata[k] for k in BOUNDS if k in f.metadata}
        value = values.get(f.name)
        if not bounds or value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not within_bounds(value, **bounds):
            kind = int if isinstance(value, int) else float
            raise ValueError(f"{f.name} (--{f.name.replace('_', '-')}) must be {bounds_text(kind, **bounds)}, "
                             f"got {value}")


RECIPE_CHOICES = (*RECIPES, "official")
"""The values of ``macos-lite train --recipe``: the recipes of weights of eq 12 (:data:`macos_lite.losses.RECIPES`),
and ``official``, the ``paper`` weights with the official script's settings (:func:`official_recipe`)."""


def official_recipe() -> dict:
    """A copy of the TrainConfig overrides reproducing the official training script (docs/differences.md D16),
    :data:`macos_lite.presets.OFFICIAL`; trained with the ``paper`` weights of eq 12.

    PF-PASCAL training pairs (with their flip flags and random crops), ResNet-101 at 240 px with frozen BN
    statistics, Adam at lr 5e-8 without weight decay, batch 4, 60 epochs, seed 1, validation PCK on
    PF-PASCAL val after every epoch and early stopping when it falls 0.05 below the best. The official run
    starts from the WeakAlign checkpoint (``init_weights``); from ImageNet weights that learning rate is
    far too small to learn anything, so use the ``full`` preset instead.

    Example:
        >>> official_recipe()["lr"]
        5e-08
    """
    return dict(OFFICIAL)


TABLE_SETTINGS = ("image_size", "backbone", "backbone_mode", "feature_stride", "feature_stages", "decoder_input",
                  "batch_size",
                  "pretrain_steps", "pretrain_lr", "pretrain_schedule", "pretrain_warmup", "pretrain_grad_clip", "epochs",
                  "steps_per_epoch", "lr", "scheduler", "backbone_lr_scale", "decoder_lr_scale", "num_train_images",
                  "val_pairs", "amp", "num_workers", "early_stop_drop")


def recipe_table(configs: dict[str, TrainConfig], settings: tuple[str, ...] = TABLE_SETTINGS) -> str:
    """A Markdown table of resolved settings: one row per setting, one column per ``{title: config}``, and a
    last row with the loss weights λ.

    Raises ``ValueError`` (from :meth:`TrainConfig.resolved`) for an unknown preset.

    Example:
        >>> print(recipe_table({"smoke": TrainConfig(preset="smoke", out="-")}, ("image_size",)))
        | setting | smoke |
        |---|---|
        | `image_size` | 96 |
        | loss weights λ | matching 1, cycle 0.01, trans 0.01, contrast 0, task 0.1, prior 1 |
    """
    resolved = [cfg.resolved() for cfg in configs.values()]
    rows = [f"| setting | {' | '.join(configs)} |", "|---" * (len(configs) + 1) + "|"]
    rows += [f"| `{k}` | " + " | ".join(str(getattr(cfg, k)) for cfg in resolved) + " |" for k in settings]
    weights = [", ".join(f"{t} {w:g}" for t, w in cfg.loss.weights.items()) for cfg in resolved]
    rows.append("| loss weights λ | " + " | ".join(weights) + " |")
    return "\n".join(rows)
