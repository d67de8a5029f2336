"""The course's notebook helpers: what every notebook calls after its parameters cell.

In a notebook::

    # parameters (papermill) -- literals only
    PRESET = None        # "smoke" | "demo" | "full"; None: $MACOS_LITE_PRESET, else "full" on a GPU, else "demo"
    DEVICE = "auto"
    SEED = 0
    RESULTS_PATH = None  # a .json path: the notebook writes its key numbers there
    DATA_ROOT = None     # folder holding the real benchmarks (None: $MACOS_LITE_SHARED_DATA, $MACOS_LITE_DATA)

    course = setup(PRESET, DEVICE, SEED, RESULTS_PATH, DATA_ROOT)   # the next cell
    ...
    course.results["pck"] = 0.42
    course.save_results()                                           # the last cell

The headless runner behind ``macos-lite course`` (papermill, HTML, ``summary.md``) is
:mod:`macos_lite.course_runner`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import paths
from .data.imageio import download_hint
from .data.locate import find_dataset
from .device import cap_threads, resolve_device
from .presets import Preset, get_preset
from .strict_json import dumps


@dataclass
class Course:
    """What a notebook needs after its parameters cell: preset, device, seed, data roots and results."""

    preset: Preset
    device: torch.device
    seed: int
    results_path: Path | None
    data_root: Path | None
    results: dict = field(default_factory=dict)

    def dataset_root(self, name: str) -> Path | None:
        """The folder of real dataset ``name``, or None (then say so and use the synthetic data).

        Looks in DATA_ROOT (``<DATA_ROOT>/<name>`` or the development layout), the shared development
        data (``$MACOS_LITE_SHARED_DATA``), then the download folder (``$MACOS_LITE_DATA/<name>``).
        """
        return find_dataset(name, self.data_root)

    def optional_dataset(self, name: str, fallback: str = "skipped") -> Path | None:
        """:meth:`dataset_root`, saying so when the dataset is absent: one sentence naming it, how to get it
        and what the notebook does instead (``fallback``); then None."""
        root = self.dataset_root(name)
        if root is None:
            print(f"{name}: not found on this machine (to get it, {download_hint(name)}); {fallback}.")
        return root

    def model_dir(self) -> Path:
        """The folder of the course model of this preset and seed, trained by notebook 08 and reused by
        the later notebooks: ``$MACOS_LITE_RUNS/course-models/<preset>-seed<seed>`` (:func:`trained_model`)."""
        return paths.runs_root() / "course-models" / f"{self.preset.name}-seed{self.seed}"

    def save_results(self) -> dict:
        """Write ``results`` as JSON to RESULTS_PATH (when set); returns them."""
        if self.results_path is not None:
            self.results_path.parent.mkdir(parents=True, exist_ok=True)
            self.results_path.write_text(dumps(self.results))
        return self.results


def setup(preset: str | None = None, device: str = "auto", seed: int = 0, results_path=None, data_root=None,
          quiet: bool = False) -> Course:
    """Resolve the preset and device, seed every generator, cap CPU threads, set plotting defaults."""
    import matplotlib.pyplot as plt

    p = get_preset(preset)
    dev = resolve_device(device)
    threads = cap_threads()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    plt.rcParams.update({"figure.dpi": 90, "axes.titlesize": 10, "figure.max_open_warning": 0})
    course = Course(p, dev, seed, Path(results_path) if results_path else None, Path(data_root) if data_root else None)
    course.results.update({"preset": p.name, "device": str(dev), "seed": seed})
    if not quiet:
        print(f"preset {p.name!r} ({p.image_size} px, backbone {p.backbone}) on {dev} with {threads} CPU threads, seed {seed}")
    return course


def trained_model(course: Course, cache: str | Path | None = None, **overrides):
    """A MaCoSNet trained with the course's preset (joint objective, synthetic data), cached on disk.

    Notebook 08 trains it; later notebooks reuse the checkpoint at
    ``$MACOS_LITE_RUNS/course-models/<preset>-seed<seed>/best.pt``, or train it here when it is missing,
    so that every notebook still runs on its own from a fresh kernel. Returns ``(model, history)``.
    """
    from .checkpoints import load_checkpoint, model_from_checkpoint
    from .training import Trainer, TrainConfig

    folder = Path(cache) if cache else course.model_dir()
    best = folder / "best.pt"
    if best.is_file() and not overrides:
        state = load_checkpoint(folder / "last.pt") if (folder / "last.pt").is_file() else {}
        return model_from_checkpoint(best, course.device), list(state.get("history", []))
    trainer = Trainer(TrainConfig(preset=course.preset.name, device=str(course.device), seed=course.seed,
                                  out=str(folder), progress=False, overwrite=True, **overrides))  # a cache
    trainer.fit()
    model = model_from_checkpoint(best, course.device) if best.is_file() else trainer.model.eval()
    return model, trainer.history


__all__ = ["Course", "setup", "trained_model"]
