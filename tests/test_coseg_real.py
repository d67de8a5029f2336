"""Co-segmentation on real images (Weizmann horses of the development data): the training-free references and a
short training that learns masks from co-occurrence alone, scored on horses it never saw."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

SHARED = os.environ.get("MACOS_LITE_SHARED_DATA")
HORSES = Path(SHARED) / "weizmann-horse-dev" if SHARED else None
pytestmark = pytest.mark.skipif(HORSES is None or not (HORSES / "rgb").is_dir(),
                                reason="needs the Weizmann horses of $MACOS_LITE_SHARED_DATA")


def _horse_folder(root: Path, names: list[str]) -> Path:
    """A Weizmann-layout folder holding only ``names`` (symbolic links to the development copy)."""
    for sub in ("rgb", "figure_ground"):
        (root / sub).mkdir(parents=True)
        for name in names:
            (root / sub / name).symlink_to(HORSES / sub / name)
    return root


def _all_foreground_jaccard(folder: Path) -> float:
    """J of the all-foreground mask, from the ground truth alone: each image's foreground fraction."""
    fractions = [(np.asarray(Image.open(p).convert("L")) > 127).mean() for p in sorted((folder / "figure_ground").glob("*.jpg"))]
    return float(np.mean(fractions))


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    names = sorted(p.name for p in (HORSES / "rgb").glob("*.jpg"))
    base = tmp_path_factory.mktemp("horses")
    return _horse_folder(base / "train", names[:24]), _horse_folder(base / "test", names[-12:])


def test_ddt_reference_beats_the_all_foreground_mask_and_says_it_saw_the_set(split, tmp_path):
    from macos_lite.cli import main

    _, test = split
    out = tmp_path / "ddt.json"
    assert main(["evaluate", "--dataset", "weizmann-horse", "--data-root", str(test), "--method", "ddt",
                 "--image-size", "160", "--json", str(out), "--quiet"]) == 0
    summary = json.loads(out.read_text())
    assert summary["num_images"] == 12 and summary["method"]["name"] == "ddt"
    assert "never their masks" in summary["protocol"]
    print("J", summary["jaccard"], "all-foreground", _all_foreground_jaccard(test))
    assert summary["jaccard"] > _all_foreground_jaccard(test) + 0.15


def test_a_short_training_from_co_occurrence_alone_beats_all_foreground_on_unseen_horses(split, tmp_path):
    from macos_lite.evaluation import ModelMethod, evaluate_dataset
    from macos_lite.losses import LossConfig
    from macos_lite.training import Trainer, TrainConfig

    train, test = split
    torch.manual_seed(0)
    trainer = Trainer(TrainConfig(
        dataset="weizmann-horse", data_root=str(train), preset="smoke", out=str(tmp_path / "run"), image_size=64,
        prior_size=128, batch_size=4, pretrain_steps=0, epochs=1, steps_per_epoch=16, lr=3e-4, progress=False,
        device="cpu", loss=LossConfig(weights={"prior": 1.0}), val_dataset="none"))
    trainer.fit()
    summary = evaluate_dataset("weizmann-horse", ModelMethod(trainer.model), root=str(test), image_size=64,
                               partners=2)
    assert summary["num_images"] == 12
    print("J", summary["jaccard"], "all-foreground", _all_foreground_jaccard(test))
    assert summary["jaccard"] > _all_foreground_jaccard(test) + 0.1
