"""``macos-lite train``: command-line front end of :mod:`macos_lite.training`."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from .cli import UserError, non_negative_int, positive_int
from .losses import ABLATIONS, TERMS, LossConfig, ablation
from .presets import PRESETS

# options that may differ when a run is resumed (they do not change what is computed)
RESUME_MAY_CHANGE = ("max_steps", "device", "num_workers", "checkpoint_every", "resume", "out", "progress")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help="synthetic (default), pf-pascal, pf-willow, tss, "
                   "internet, weizmann-horse, spair")
    p.add_argument("--data-root", help="the dataset's folder (default $MACOS_LITE_DATA/<dataset>)")
    p.add_argument("--preset", choices=tuple(PRESETS), help="smoke / demo / full (default: full on CUDA, else demo)")
    p.add_argument("--recipe", choices=("ours", "paper", "reference"), default="ours",
                   help="ours (default): eq 12 plus the co-localisation prior loss that lets the decoder learn; "
                        "paper: eq 12 as published (its co-segmentation terms alone do not learn masks here); "
                        "reference: the official script's settings and eq 12 (PF-PASCAL, lr 5e-8, batch 4, 60 "
                        "epochs, early stopping; start from --init-weights WeakAlign); explicit options still override")
    p.add_argument("--out", help="run folder for checkpoints and logs (default runs/train-<dataset>-<time>)")
    p.add_argument("--backbone", choices=("lite", "resnet101"))
    p.add_argument("--backbone-mode", choices=("frozen", "finetune", "frozen_bn", "last_stage"))
    p.add_argument("--pretrain-backbone-mode", choices=("frozen", "last_stage"),
                   help="the encoder during pre-training: frozen (default) or its last stage trained, BN fixed")
    p.add_argument("--backbone-weights", help="local ImageNet weights file for resnet101 (default: torchvision's)")
    p.add_argument("--image-size", type=positive_int)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--epochs", type=non_negative_int)
    p.add_argument("--steps-per-epoch", type=positive_int)
    p.add_argument("--lr", type=float)
    p.add_argument("--pretrain-steps", type=non_negative_int, help="synthetic strong-supervision steps before the weak phase")
    p.add_argument("--pretrain-lr", type=float, help="peak learning rate of pre-training")
    p.add_argument("--pretrain-schedule", choices=("cosine", "constant"),
                   help="pre-training learning rate: linear warm-up then cosine decay to 0, or constant")
    p.add_argument("--pretrain-warmup", type=int, help="warm-up steps of the cosine pre-training schedule")
    p.add_argument("--pretrain-grad-clip", type=float, help="gradient-norm clip during pre-training")
    p.add_argument("--pretrain-images", metavar="DIR|NAMES",
                   help="pre-training pool (no labels used): a folder of images, or dataset names joined by '+' "
                        "(default: the training images plus the Weizmann horses when found; never add the "
                        "images you evaluate on)")
    p.add_argument("--feature-stride", type=int, choices=(16, 8),
                   help="stride of the correlated features: 16 (paper) or 8 (dilated last stage, 2x finer grid)")
    p.add_argument("--losses", help=f"comma-separated terms to use with lambda 1 (of {', '.join(TERMS)})")
    p.add_argument("--ablation", choices=tuple(ABLATIONS), help="one of the paper's ablations")
    for term in TERMS:
        p.add_argument(f"--lambda-{term}", type=float, help=f"weight of L_{term}")
    p.add_argument("--weighting", choices=("mask", "corr_max", "none"), help="foreground guidance of L_matching")
    p.add_argument("--phi", type=float, help="matching tolerance in feature cells")
    p.add_argument("--margin", type=float, help="contrastive margin m")
    p.add_argument("--tps-lambda", type=float, help="TPS regulariser inside the losses")
    p.add_argument("--tuple-size", type=int, choices=(2, 3))
    p.add_argument("--prior-size", type=int, help="image size of the co-localisation prior (default: the preset's, 240 px but smoke's 96)")
    p.add_argument("--prior-rounds", type=int, help="prototype-refinement rounds of the prior (default 3)")
    p.add_argument("--prior-refresh", type=int,
                   help="refresh the pseudo-masks from the model every N epochs (default 1; 0: never)")
    p.add_argument("--prior-momentum", type=float, help="the prior's share in a refreshed pseudo-mask (default 0.5)")
    p.add_argument("--prior-partners", type=int, help="partners averaged in a refreshed mask (default 3)")
    p.add_argument("--augment", action="store_true", help="random crops/flips as in the reference training")
    p.add_argument("--val-dataset", help="dataset for the per-epoch validation PCK ('none' to skip)")
    p.add_argument("--val-root")
    p.add_argument("--val-pairs", type=positive_int)
    p.add_argument("--val-fraction", type=float,
                   help="share of each category's images held out of training to validate on (PF-WILLOW; "
                        "default 0.3; 0: no validation)")
    p.add_argument("--early-stop-drop", type=float, help="stop when val PCK < best - this (reference: 0.05)")
    p.add_argument("--init-weights", help="start from a macos_lite checkpoint or a WeakAlign/CNNGeo file")
    p.add_argument("--device")
    p.add_argument("--amp", choices=("auto", "bf16", "off"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--num-workers", type=non_negative_int)
    p.add_argument("--seed", type=int)
    p.add_argument("--max-steps", type=non_negative_int, help="stop after this global step (resume later with --resume)")
    p.add_argument("--checkpoint-every", type=non_negative_int, help="also save last.pt every N steps")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where it stopped, with the settings of its config.json")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds a run, deleting its checkpoints (without it, "
                        "train refuses to touch an existing run)")
    p.add_argument("--no-progress", action="store_true")


def loss_config_from_args(args) -> LossConfig:
    recipe = "ours" if getattr(args, "recipe", "ours") == "ours" else "paper"
    cfg = ablation(args.ablation or "joint", recipe)
    weights = {t: 0.0 for t in TERMS}
    weights.update(cfg.get("weights", {}))
    if args.losses:
        names = [t.strip() for t in args.losses.split(",") if t.strip()]
        unknown = set(names) - set(TERMS)
        if unknown:
            raise UserError(f"--losses: unknown terms {sorted(unknown)}; choose from {', '.join(TERMS)}")
        weights = {t: 1.0 if t in names else 0.0 for t in TERMS}
    for term in TERMS:
        value = getattr(args, f"lambda_{term}")
        if value is not None:
            weights[term] = value
    cfg["weights"] = weights
    for key in ("weighting", "phi", "margin"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.tps_lambda is not None:
        cfg["tps_lambda"] = args.tps_lambda
    return LossConfig(**cfg)


def _check_datasets(args) -> None:
    from .data.registry import NAMES

    for option in ("dataset", "val_dataset"):
        value = getattr(args, option)
        if not value:
            continue
        allowed = NAMES + (("none",) if option == "val_dataset" else ())
        unknown = [n for n in value.split("+") if n not in allowed]
        if unknown:
            raise UserError(f"--{option.replace('_', '-')} {value}: unknown dataset {unknown[0]!r}; the datasets "
                            f"are {', '.join(allowed)} (join several with '+', e.g. pf-willow+weizmann-horse)")


def _resumed_config(args, given: dict, loss: LossConfig):
    """The run's own TrainConfig (from ``<out>/config.json``); options given now must agree with it."""
    from .training import TrainConfig

    if not args.out:
        raise UserError("--resume needs --out: the folder of the run to continue")
    out = Path(args.out)
    config_file, last = out / "config.json", out / "last.pt"
    if not last.is_file():
        raise UserError(f"--resume: no checkpoint {last}, so there is no run to continue in --out {out}; start "
                        "without --resume, or point --out at the folder of the run to continue")
    try:
        saved = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"--resume: cannot read the run's settings {config_file} ({exc}); it is written at the "
                        "start of every run: restore it, or start a new run with another --out") from exc
    known = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in saved.items() if k in known}
    run_loss = LossConfig(**values.pop("loss", {}))
    differ = [f"--{k.replace('_', '-')} {given[k]} (the run used {values.get(k)})" for k in given
              if k not in RESUME_MAY_CHANGE and k in values and values.get(k) != given[k]
              and not (k == "data_root" and str(Path(given[k])) == str(Path(values.get(k) or "")))]
    if loss.to_dict() != run_loss.to_dict() and _loss_options_given(args):
        differ.append("the loss options (the run used " + json.dumps(run_loss.to_dict()["weights"]) + ")")
    if differ:
        raise UserError(f"--resume continues the run in {out} with its own settings from {config_file}, but "
                        f"this command asks for {'; '.join(differ)}. Drop those options to resume, or start a new "
                        "run with another --out")
    values.update({k: v for k, v in given.items() if k in RESUME_MAY_CHANGE})
    values.update(resume=True, out=str(out))
    return TrainConfig(loss=run_loss, **values)


def _loss_options_given(args) -> bool:
    return bool(args.losses or args.ablation or any(getattr(args, f"lambda_{t}") is not None for t in TERMS)
                or any(getattr(args, k) is not None for k in ("weighting", "phi", "margin", "tps_lambda")))


def run(args) -> int:
    from .device import cap_threads
    from .training import TrainConfig, Trainer

    cap_threads()  # $MACOS_LITE_THREADS: oversubscribed threads on a shared machine are many times slower

    names = ("dataset", "data_root", "preset", "out", "backbone", "backbone_mode", "image_size", "batch_size",
             "epochs", "steps_per_epoch", "lr", "pretrain_steps", "pretrain_lr", "pretrain_schedule",
             "pretrain_warmup", "pretrain_grad_clip", "pretrain_images", "pretrain_backbone_mode", "feature_stride", "val_fraction",
             "tuple_size", "augment", "val_dataset", "val_root",
             "val_pairs", "early_stop_drop", "init_weights", "device", "amp", "compile", "num_workers", "seed",
             "max_steps", "checkpoint_every", "resume", "overwrite", "prior_size", "prior_rounds", "prior_refresh",
             "prior_momentum", "prior_partners")
    from .training import reference_recipe

    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite contradict each other: --resume continues the run in --out, "
                        "--overwrite replaces it; choose one")
    _check_datasets(args)
    # `is` tests: 0 == False, and 0 is a real value here (--pretrain-steps 0, --seed 0)
    given = {f: getattr(args, f) for f in names if getattr(args, f) is not None and getattr(args, f) is not False}
    loss = loss_config_from_args(args)
    if args.resume:
        cfg = _resumed_config(args, given, loss)
        cfg.progress = not args.no_progress
    else:
        values = reference_recipe() if args.recipe == "reference" else {}
        values.update(given)
        if args.recipe == "reference" and not args.init_weights:
            print("warning: the reference recipe fine-tunes a WeakAlign checkpoint (--init-weights); from ImageNet "
                  "weights its learning rate of 5e-8 cannot learn")
        cfg = TrainConfig(loss=loss, progress=not args.no_progress, **values)
        if args.backbone_weights:
            cfg.pretrained = args.backbone_weights
    trainer = Trainer(cfg)
    if trainer.is_main:
        print(f"training {cfg.dataset} with preset {trainer.cfg.preset} on {trainer.device} -> {trainer.out}")
    summary = trainer.fit()
    if trainer.is_main:
        print(json.dumps(summary, indent=2))
    return 0
