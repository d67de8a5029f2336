"""Checkpoints: atomic saving, safe loading, and loading published CNNGeo/WeakAlign weights.

Our checkpoints are plain dicts of tensors and numbers, written atomically (temporary file + rename,
so an interrupted save never leaves a truncated checkpoint) and read with ``weights_only=True``. A run
starts from weights with :func:`load_init_weights` and resumes from :func:`load_training_checkpoint`.

Taught in notebook 08 (training: checkpoints and resume); notebook 03 loads published weights.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

# published key prefix -> our module (torchvision ResNet-101 trunk kept as nn.Sequential in the official code)
_TRUNK_MAP = {"0": "encoder.stem.0", "1": "encoder.stem.1", "4": "encoder.layer1", "5": "encoder.layer2",
              "6": "encoder.layer3"}


class CheckpointError(ValueError, RuntimeError):
    """A checkpoint file cannot be used (empty, not a checkpoint, damaged, or holding NaN/inf weights).

    The message names the file and what to do. (A ``RuntimeError`` too, for code written before it existed.)
    """


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (the old file stays intact until the new one is complete).

    A full disk raises :class:`~macos_lite.cli_common.NoSpaceError` naming the file (torch's own writer error
    on a full disk is recognised too); the previous checkpoint of that name is then intact.
    """
    from .cli_common import atomic_write

    return atomic_write(path, lambda f: torch.save(state, f), fsync=True)


def load_checkpoint(path: str | Path, map_location="cpu", check_finite: bool = True) -> dict:
    """Read a checkpoint with ``weights_only=True``; errors name the file and what to do.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` for an empty file, a file
    that is not a ``torch.save`` checkpoint, or (``check_finite``) weights holding NaN or inf -- a model with
    such weights would score silently wrong numbers.
    """
    path = Path(path)
    if not path.is_file():
        last = path.with_name("last.pt")
        if path.name == "best.pt" and last.is_file():  # a run that validated nothing keeps only its last weights
            raise FileNotFoundError(f"checkpoint {path} does not exist: its run held out no validation pairs (e.g. a "
                                    f"dataset without keypoints), so it chose no best checkpoint; use {last}")
        raise FileNotFoundError(f"checkpoint {path} does not exist; check the path (train one with `macos-lite train`)")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): its write was cut short. Use another "
                              "checkpoint (e.g. best.pt of the same run) or re-train.")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # the published files carry their args
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        with open(path, "rb") as f:
            head = f.read(64)
        looks_text = all(32 <= b < 127 or b in (9, 10, 13) for b in head)
        what = ("it holds text, not a checkpoint written by torch.save" if looks_text else
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'unreadable'}")
        raise CheckpointError(f"could not read checkpoint {path} ({size} bytes): {what}. Is it the right file, and "
                              "complete? Re-download or re-train it.") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint dictionary; save checkpoints "
                              "with `macos-lite train` (or torch.save of a state dict)")
    if check_finite:
        _check_finite_weights(path, state)
    return state


def _check_finite_weights(path: Path, state: dict) -> None:
    weights = state.get("model", state.get("state_dict", state))
    if not isinstance(weights, dict):
        return
    bad = [k for k, v in weights.items()
           if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds NaN or infinite weights in {len(bad)} tensor(s) (e.g. {bad[0]}): the training "
            "that wrote it diverged, so every number computed with it would be wrong. Use an earlier checkpoint "
            "(best.pt of the run) or re-train with a lower --lr.")


def map_published_keys(state: dict, single_head: str = "affine") -> dict:
    """Rename the keys of a CNNGeo/WeakAlign state dict to MaCoSNet's.

    ``FeatureExtraction.model.{0,1,4,5,6}`` -> the ResNet-101 trunk, ``FeatureRegression`` -> the affine
    head (or the TPS head for a single-stage TPS checkpoint: ``single_head="tps"``), ``FeatureRegression2``
    -> the TPS head. Other keys are ignored.
    """
    state = state.get("state_dict", state)
    first = {"affine": "affine_head", "tps": "tps_head"}[single_head]
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        parts = key.split(".")
        if key.startswith("FeatureExtraction.model.") and parts[2] in _TRUNK_MAP:
            out[".".join([_TRUNK_MAP[parts[2]], *parts[3:]])] = value
        elif parts[0] == "FeatureRegression":
            out[".".join([first, *parts[1:]])] = value
        elif parts[0] == "FeatureRegression2":
            out[".".join(["tps_head", *parts[1:]])] = value
    return out


def load_published_weights(model: torch.nn.Module, source, single_head: str = "affine") -> list[str]:
    """Load published CNNGeo/WeakAlign weights (a path or a state dict) into a MaCoSNet.

    The heads fit only a model built for 240 px with the ResNet-101 backbone (15x15 grid, 225
    correlation channels in the official code's column-major order). Every tensor's shape is checked;
    returns the names of the loaded tensors.
    """
    state = load_checkpoint(source) if isinstance(source, (str, Path)) else source
    mapped = map_published_keys(state, single_head)
    if not mapped:
        raise ValueError("no CNNGeo/WeakAlign keys (FeatureExtraction.*, FeatureRegression*) found in the checkpoint")
    own = model.state_dict()
    problems = [f"{k}: not in the model" for k in mapped if k not in own]
    problems += [f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                 for k, v in mapped.items() if k in own and own[k].shape != v.shape]
    if problems:
        raise ValueError("the published weights do not fit this model (build it with backbone='resnet101', "
                         "image_size=240, tps_grid_size=3):\n  " + "\n  ".join(problems[:10]))
    model.load_state_dict(mapped, strict=False)
    return sorted(mapped)


def model_checkpoint(model, **extra) -> dict:
    """The portable part of a training checkpoint: ``{"model": state_dict, "model_config": ..., **extra}``."""
    net = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {"model": net.state_dict(), "model_config": dict(net.config), **extra}


def model_from_checkpoint(path: str | Path, device="cpu"):
    """Rebuild a :class:`~macos_lite.model.MaCoSNet` from one of our checkpoints (``train`` writes them).

    The encoder is built without downloading anything: its trained weights come from the checkpoint.
    """
    from .model import MaCoSNet

    state = load_checkpoint(path, map_location="cpu")
    if "model" not in state or "model_config" not in state:
        raise ValueError(f"{path} is not a macos_lite checkpoint (no 'model'/'model_config'); published "
                         "CNNGeo/WeakAlign files load with load_published_weights()")
    cfg = dict(state["model_config"])
    try:
        model = MaCoSNet(pretrained=False, **cfg)
    except TypeError as exc:
        raise CheckpointError(f"{path}: its model_config {cfg} does not describe a MaCoSNet of this version "
                              f"({exc}); use a checkpoint written by this version's `macos-lite train`") from None
    load_weights(model, state["model"], path)
    return model.to(device).eval()


def load_weights(model, weights: dict, path) -> None:
    """``model.load_state_dict(weights)``, with one paragraph instead of PyTorch's list of every key when the
    weights do not fit the model (another backbone, image size or TPS grid): how many tensors are missing,
    unexpected or of another shape, a few of each, and the model's settings.

    Raises :class:`CheckpointError` naming ``path``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in weights and hasattr(weights[k], "shape") and tuple(weights[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {what} (e.g. {', '.join(v[:2])})" for what, v in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)) if v]
        config = getattr(model, "config", None)
        raise CheckpointError(f"{path}: the weights do not fit the model built for them"
                              + (f" ({', '.join(f'{k}={v}' for k, v in config.items())})" if config else "")
                              + ": " + "; ".join(parts) + " tensors. The settings (backbone, image size, TPS grid, "
                              "feature stride) must be those the weights were trained with")
    model.load_state_dict(weights)


def load_init_weights(model, path, cfg) -> None:
    """Start ``model`` from ``path`` (``--init-weights``): a checkpoint of ours (its ``"model"``) or published
    CNNGeo/WeakAlign weights (:func:`load_published_weights`).

    Raises ``ValueError`` naming the file and the flags to pass when our checkpoint was trained with another
    ``backbone`` or ``image_size`` than ``cfg`` (a resolved :class:`~macos_lite.train_config.TrainConfig`).
    """
    state = load_checkpoint(path)
    if "model" in state:
        trained = state.get("config", {})
        mismatch = {k: (trained[k], getattr(cfg, k)) for k in ("backbone", "image_size")
                    if k in trained and trained[k] != getattr(cfg, k)}
        if mismatch:  # the heads' and decoder's shapes depend on both
            fix = " ".join(f"--{k.replace('_', '-')} {was}" for k, (was, _) in mismatch.items())
            raise ValueError(f"{path}: the checkpoint was trained with "
                             + ", ".join(f"{k} = {was}" for k, (was, _) in mismatch.items())
                             + ", this run uses " + ", ".join(f"{k} = {now}" for k, (_, now) in mismatch.items())
                             + f"; pass {fix} (or another preset)")
        load_weights(model, state["model"], path)
    else:
        load_published_weights(model, state)


def load_training_checkpoint(path: Path) -> dict:
    """The state of ``path`` (a ``last.pt`` of ``macos-lite train``) to ``--resume`` from, on the CPU.

    Raises ``FileNotFoundError`` when there is no such file and ``ValueError`` when it lacks what resuming
    needs (model, optimiser, scheduler, RNG states, step, history); both name the file and the fix.
    """
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {path}; start without --resume or point --out at the "
                                "folder of the run to continue")
    state = load_checkpoint(path, map_location="cpu")
    missing = [k for k in ("model", "optimizer", "scheduler", "rng", "step", "history") if k not in state]
    if missing:
        raise ValueError(f"--resume: {path} is not a training checkpoint (no {', '.join(missing)}); "
                         "resume needs the last.pt that `macos-lite train` wrote")
    return state
