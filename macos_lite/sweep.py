"""Ablations and sensitivity sweeps on an equal budget (notebook 11): every variant of the loss starts from the
same checkpoint, trains the same number of weak steps and is scored on the same pairs, with its result cached.

* :func:`score` -- keypoint PCK@0.1 (image-size normaliser) and mask J of a model on validation pairs, with
  their standard errors;
* :class:`SweepRunner` -- trains one loss variant with :class:`macos_lite.training.Trainer` and scores it, or
  reads the result a previous run cached.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .evaluation import ModelMethod, evaluate_matching, pair_mask_jaccards
from .losses import LossConfig
from .presets import Preset

RESULT_KEYS = ("pck", "pck_se", "jaccard", "jaccard_se", "loss_first", "loss_last")


def standard_error(values) -> float:
    """Standard error of the mean, ``std(values, ddof=1) / sqrt(n)``; NaN for fewer than two values.

    Example:
        >>> standard_error([1.0, 2.0, 3.0])
        0.5773502691896258
    """
    values = list(values)
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def score(model, pairs, batch_size: int = 8, device="cpu") -> dict:
    """PCK@0.1 and mask J of ``model`` on ``pairs``, each with its standard error over pairs (images for J).

    ``pairs``: a pair dataset with keypoints and masks (e.g. ``get_pairs("synthetic", split="val")``). PCK: a
    keypoint of B sent into A counts as correct within 0.1 max(H, W) of the truth, averaged per pair (pairs
    without visible keypoints left out); J: :func:`macos_lite.evaluation.pair_mask_jaccards` (images without
    foreground left out). Returns ``{"pck", "pck_se", "jaccard", "jaccard_se"}`` as floats in [0, 1] (the
    errors NaN with fewer than two values).
    """
    method = ModelMethod(model)
    res = evaluate_matching(method, pairs, alphas=(0.1,), normalizers=("image",), batch_size=batch_size,
                            device=device)
    pck = [c / n for c, n in (r["scores"][("image", 0.1)] for r in res.records) if n > 0]
    jac = [j for j in pair_mask_jaccards(method, pairs, batch_size, device) if not math.isnan(j)]
    return {"pck": float(np.mean(pck)), "pck_se": standard_error(pck), "jaccard": float(np.mean(jac)),
            "jaccard_se": standard_error(jac)}


@dataclass
class SweepRunner:
    """Trains loss variants from one start on one budget, scores them, and caches each result as JSON.

    ``preset``: the :class:`~macos_lite.presets.Preset` whose settings train (learning rates, schedule, image
    size); ``start``: the checkpoint every variant starts from (``init_weights``, no pre-training); ``pairs``:
    the pairs :func:`score` uses; ``cache``: the folder of the result files; ``steps`` weak steps of ``batch_size``
    tuples per variant; ``overrides``: further ``TrainConfig`` settings. The co-localisation prior works at
    the model's image size (cheaper, for many runs). A result file's name holds the variant's name, its seed
    and a hash of everything the result depends on (seed, budget, loss, preset, overrides, the start's
    modification time), so a changed setting trains again, and a variant whose settings equal an earlier one's
    under another name reads that result instead of training the same run twice.

    Calling ``runner(name, loss, seed=None)`` returns ``{"pck", "pck_se", "jaccard", "jaccard_se",
    "loss_first", "loss_last", "weights", "margin", "seed", "seconds"}``; a run whose loss became NaN/inf
    (:class:`~macos_lite.training.NonFiniteLossError`) is a result too, with NaN scores. The variant's
    checkpoints are thrown away. Every variant of a seed trains on the same images from the same start, so
    the co-localisation prior of its pseudo-masks is computed once per seed and reused (``Trainer(prior=...)``).

    Example (trains; see notebook 11)::

        run = SweepRunner(course.preset, start, val_pairs, run_dir / "sweeps", steps=5, batch_size=4,
                          device=course.device)
        joint = run("joint", LossConfig())
    """

    preset: Preset
    start: Path
    pairs: object
    cache: Path
    steps: int
    batch_size: int
    device: object = "cpu"
    seed: int = 0
    overrides: dict = field(default_factory=dict)
    _priors: dict = field(default_factory=dict, init=False, repr=False)  # seed -> Trainer.prior_inputs

    def _digest(self, loss: LossConfig, seed: int) -> str:
        settings = [seed, self.steps, self.batch_size, loss.to_dict(), self.preset.to_dict(),
                    Path(self.start).stat().st_mtime_ns] + ([self.overrides] if self.overrides else [])
        return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]

    def cache_file(self, name: str, loss: LossConfig, seed: int) -> Path:
        """The result file of variant ``name`` with ``loss`` and ``seed``."""
        return Path(self.cache) / f"{name}-seed{seed}-{self._digest(loss, seed)}.json"

    def __call__(self, name: str, loss: LossConfig, seed: int | None = None) -> dict:
        from .training import NonFiniteLossError, TrainConfig, Trainer

        seed = self.seed if seed is None else seed
        file = self.cache_file(name, loss, seed)
        if file.is_file():
            return json.loads(file.read_text())
        # the same settings under another name (the sweep of m at the default margin is the lambda_contrast = 1
        # run): the result is the same, so it is read, not trained again
        twins = sorted(Path(self.cache).glob(f"*-seed{seed}-{self._digest(loss, seed)}.json"))
        if twins:
            file.write_text(twins[0].read_text())
            return json.loads(file.read_text())
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            settings = dict(preset=self.preset.name, device=str(self.device), seed=seed, out=tmp, progress=False,
                            log_every=1, init_weights=str(self.start), pretrain_steps=0, epochs=1,
                            steps_per_epoch=self.steps, batch_size=self.batch_size, val_dataset="none", loss=loss,
                            prior_size=self.preset.image_size)
            trainer = Trainer(TrainConfig(**{**settings, **self.overrides}), prior=self._priors.get(seed))
            if trainer.pseudo is not None:  # the same images and start: later variants of this seed reuse it
                self._priors.setdefault(seed, trainer.prior_inputs)
            try:
                trainer.fit()
                weak = [r for r in trainer.history if r["phase"] == "weak"]
                result = {**score(trainer.model, self.pairs, self.preset.batch_size, self.device),
                          "loss_first": weak[0]["loss"], "loss_last": weak[-1]["loss"]}
            except NonFiniteLossError as exc:  # a diverged run is a result too
                print(f"{name}: diverged ({exc})")
                result = {k: math.nan for k in RESULT_KEYS}
        result.update(weights=loss.weights, margin=loss.margin, seed=seed, seconds=time.perf_counter() - t0)
        Path(self.cache).mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(result))
        return result
