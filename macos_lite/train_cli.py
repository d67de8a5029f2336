"""``macos-lite train``: command-line front end of :mod:`macos_lite.training`. Taught in notebook 08 (training)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields
from pathlib import Path
from typing import get_args, get_type_hints

from .cli_common import UserError, check_fits_in_memory, number, pair_memory
from .losses import ABLATIONS, TERMS, LossConfig, ablation
from .data.registry import NAMES
from .presets import PRESETS
from .train_config import BOUNDS, RECIPE_CHOICES, TrainConfig, official_recipe

# options that may differ when a run is resumed (they do not change what is computed)
RESUME_MAY_CHANGE = ("max_steps", "device", "num_workers", "checkpoint_every", "resume", "out", "progress")


# TrainConfig fields whose flags are written here: a different name or meaning, or not a plain setting
HAND_WRITTEN = {"dataset": "--dataset", "data_root": "--data-root", "preset": "--preset", "out": "--out",
                "pretrained": "--backbone-weights", "loss": "--losses, --ablation, --lambda-*, ...",
                "resume": "--resume", "overwrite": "--overwrite", "progress": "--no-progress"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", help=f"{', '.join(NAMES)} (default synthetic), or several joined by '+'")
    p.add_argument("--data-root", help="the dataset's folder (default $MACOS_LITE_DATA/<dataset>)")
    p.add_argument("--preset", choices=tuple(PRESETS), help=f"{' / '.join(PRESETS)} (default: full on CUDA, else demo)")
    p.add_argument("--recipe", choices=RECIPE_CHOICES, default="ours",
                   help="ours (default): eq 12 plus the co-localisation prior loss that lets the decoder learn; "
                        "paper: eq 12 as published, with the paper's decoder input (its co-segmentation terms alone do not "
                        "learn masks here); "
                        "official: the official script's settings and eq 12 (PF-PASCAL, lr 5e-8, batch 4, 60 "
                        "epochs, early stopping; start from --init-weights WeakAlign); explicit options still override")
    p.add_argument("--out", help="run folder for checkpoints and logs (default runs/train-<dataset>-<time>)")
    p.add_argument("--backbone-weights", help="local ImageNet weights file for resnet101 (default: torchvision's)")
    add_setting_arguments(p.add_argument_group("training settings (the fields of TrainConfig)"))
    loss = p.add_argument_group("loss (eq 12)")
    loss.add_argument("--losses", help=f"comma-separated terms to use with lambda 1 (of {', '.join(TERMS)})")
    loss.add_argument("--ablation", choices=tuple(ABLATIONS), help="one of the paper's ablations")
    for term in TERMS:
        loss.add_argument(f"--lambda-{term}", type=number(float, minimum=0), help=f"weight of L_{term}")
    loss.add_argument("--weighting", choices=("mask", "corr_max", "none"), help="foreground guidance of L_matching")
    loss.add_argument("--phi", type=number(float, above=0), help="matching tolerance in feature cells")
    loss.add_argument("--margin", type=number(float, minimum=0), help="contrastive margin m")
    loss.add_argument("--tps-lambda", type=number(float, minimum=0), help="TPS regulariser inside the losses")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly where it stopped, with the settings of its config.json")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an --out that holds a run, deleting its checkpoints (without it, "
                        "train refuses to touch an existing run)")
    p.add_argument("--no-progress", action="store_true")


def add_setting_arguments(p) -> None:
    """One flag per :class:`~macos_lite.train_config.TrainConfig` field declared with ``setting()``:
    ``--image-size`` for ``image_size``, typed by the field's annotation, with the field's help and choices.

    Every flag defaults to None (False for a switch), meaning "not given": the field's default (or the
    preset's, added to the help) then applies, and ``--resume`` can tell given options from defaults.
    """
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if "help" not in f.metadata:
            continue
        kind = next(t for t in (get_args(hints[f.name]) or (hints[f.name],)) if t is not type(None))
        flag = "--" + f.name.replace("_", "-")
        text = "; ".join(filter(None, (f.metadata["help"], _default_text(f))))
        if kind is bool:
            p.add_argument(flag, action="store_true", help=text)
            continue
        bounds = {k: f.metadata[k] for k in BOUNDS if k in f.metadata}
        if kind in (int, float) and not f.metadata.get("choices"):
            kind = number(kind, **bounds)  # finite, within the bounds
        p.add_argument(flag, type=kind, choices=f.metadata.get("choices"), metavar=f.metadata.get("metavar"),
                       help=text)


def _default_text(f) -> str:
    """The default of field ``f`` for its help: the presets' values, or the field's own default."""
    by_preset = {name: p.settings[f.name] for name, p in PRESETS.items() if f.name in p.settings}
    if by_preset:
        return "default: the preset's (" + ", ".join(f"{name} {v}" for name, v in by_preset.items()) + ")"
    return "" if f.default is None or f.default is False else f"default: {f.default}"


def loss_config_from_args(args) -> LossConfig:
    recipe = getattr(args, "recipe", "ours")
    recipe = "paper" if recipe == "official" else recipe  # the official script trains eq 12 as published
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
    values.setdefault("decoder_input", "paper")  # runs from before the setting existed had the paper's input
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


def config_from_args(args) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``macos-lite train`` options: the recipe's settings, then every option
    given (a flag whose name is a field's), the loss options and ``--backbone-weights``; with ``--resume``,
    the run's own settings (:func:`_resumed_config`).

    Raises :class:`~macos_lite.cli_common.UserError` for contradicting options, unknown datasets or loss terms.
    """
    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite contradict each other: --resume continues the run in --out, "
                        "--overwrite replaces it; choose one")
    _check_datasets(args)
    # `is` tests: 0 == False, and 0 is a real value here (--pretrain-steps 0, --seed 0)
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None and getattr(args, f.name) is not False}
    loss = loss_config_from_args(args)
    if args.resume:
        cfg = _resumed_config(args, given, loss)
        cfg.progress = not args.no_progress
        return cfg
    values = official_recipe() if args.recipe == "official" else {}
    if args.recipe in ("paper", "official"):  # eq 12 as published: the paper's decoder input [f_t, S_st] too
        values["decoder_input"] = "paper"
    values.update(given)
    if args.recipe == "official" and not args.init_weights:
        print("warning: the official recipe fine-tunes a WeakAlign checkpoint (--init-weights); from ImageNet "
              "weights its learning rate of 5e-8 cannot learn")
    cfg = TrainConfig(loss=loss, progress=not args.no_progress, **values)
    if args.backbone_weights:
        cfg.pretrained = args.backbone_weights
    return cfg


def run(args) -> int:
    from .device import cap_threads
    from .run_state import close_distributed
    from .training import Trainer

    cap_threads()  # $MACOS_LITE_THREADS: oversubscribed threads on a shared machine are many times slower
    cfg = config_from_args(args)
    resolved = cfg.resolved()
    check_fits_in_memory(3 * pair_memory(resolved.image_size, resolved.batch_size, True, resolved.feature_stride),
                         f"--image-size {resolved.image_size} (with --batch-size {resolved.batch_size})")
    t0 = time.perf_counter()
    try:
        trainer = Trainer(cfg)
        if trainer.is_main:
            print(f"training {cfg.dataset} with preset {trainer.cfg.preset} on {trainer.device} -> {trainer.out}")
        summary = trainer.fit()
        close_distributed()
    except BaseException:
        close_distributed(wait=False)
        raise
    if trainer.is_main:
        # wall-clock time of this command's training: data, the co-localisation prior, every phase, validation
        summary["train_minutes"] = round((time.perf_counter() - t0) / 60, 2)
        print(json.dumps(summary, indent=2))
        print(f"trained in {summary['train_minutes']:.1f} min ({trainer.step} steps)")
        if not (trainer.out / "best.pt").is_file():
            print(f"no validation pairs: no best.pt; evaluate {trainer.out / 'last.pt'}")
    return 0
