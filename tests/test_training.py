"""The trainer: learning on the synthetic data, exact resume, clear NaN stops, torchrun."""

import json
import os
import subprocess
import sys

import pytest
import torch

from macos_lite.checkpoints import load_checkpoint
from macos_lite.losses import LossConfig
from macos_lite.training import NonFiniteLossError, Trainer, TrainConfig
from training_configs import tiny




@pytest.mark.slow
def test_smoke_training_lowers_the_loss_and_beats_identity(tmp_path):
    from macos_lite.data.registry import get_pairs
    from macos_lite.evaluation import IdentityMethod, ModelMethod, evaluate_matching

    trainer = Trainer(TrainConfig(preset="smoke", out=str(tmp_path), progress=False, val_pairs=30))
    trainer.fit()
    pre = [r for r in trainer.history if r["phase"] == "pretrain"]
    assert pre[-1]["grid_cascade"] < pre[0]["grid_cascade"]
    test_pairs = get_pairs("synthetic", split="test", image_size=trainer.cfg.image_size, num_pairs=40)
    identity = evaluate_matching(IdentityMethod(), test_pairs, normalizers=("image",)).pck()
    model = evaluate_matching(ModelMethod(trainer.model), test_pairs, normalizers=("image",)).pck()
    assert model > identity + 0.1, (model, identity)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any(r["phase"] == "epoch_end" and "val_pck@0.1" in r for r in log)
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "last.pt").is_file()


def test_checkpoint_holds_everything_needed_to_resume(tmp_path):
    trainer = Trainer(tiny(tmp_path, epochs=1))
    trainer.fit()
    state = load_checkpoint(tmp_path / "last.pt")
    assert {"model", "model_config", "optimizer", "scheduler", "rng", "step", "best", "history", "config"} <= set(state)
    assert state["step"] == 3 + 2
    assert state["config"]["loss"]["weights"]["matching"] == 1.0


def test_interrupt_and_resume_is_bit_identical(tmp_path):
    full = Trainer(tiny(tmp_path / "full"))
    full.fit()
    first = Trainer(tiny(tmp_path / "split", max_steps=4))  # stops inside the first weak epoch
    first.fit()
    assert first.step == 4
    resumed = Trainer(tiny(tmp_path / "split", resume=True))
    assert resumed.step == 4
    resumed.fit()
    assert resumed.step == full.step == 3 + 2 * 2
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r.get("loss") for r in full.history] == [r.get("loss") for r in resumed.history]


def test_resume_without_checkpoint_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Trainer(tiny(tmp_path, resume=True))


def test_nan_stops_with_step_and_term(tmp_path, monkeypatch):
    trainer = Trainer(tiny(tmp_path, pretrain_steps=0, loss=LossConfig(weights={"matching": 1.0, "cycle": 1.0})))
    original = trainer.criterion.forward

    def poisoned(out, images, pseudo_masks=None):
        total, terms = original(out, images, pseudo_masks)
        terms["cycle"] = terms["cycle"] * float("nan")
        return total, terms

    monkeypatch.setattr(trainer.criterion, "forward", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"step 0 .*'cycle'"):
        trainer.fit()


def test_triplets_when_transitivity_is_on(tmp_path):
    trainer = Trainer(tiny(tmp_path))
    assert trainer.cfg.tuple_size == 3
    pairs_only = Trainer(tiny(tmp_path / "p", loss=LossConfig(weights={"matching": 1.0, "cycle": 1.0})))
    assert pairs_only.cfg.tuple_size == 2
    with pytest.raises(ValueError, match="triplets"):
        Trainer(tiny(tmp_path / "q", tuple_size=2))


@pytest.mark.slow
def test_torchrun_two_processes_train_and_save_one_checkpoint(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "macos_lite", "train", "--preset", "smoke", "--image-size", "64", "--batch-size", "4",
           "--pretrain-steps", "2", "--epochs", "1", "--steps-per-epoch", "2", "--val-dataset", "none",
           "--device", "cpu", "--out", str(out), "--no-progress", "--losses", "matching,cycle,contrast,task"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.pt")) == ["last.pt"]
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 4


def test_init_weights_of_another_image_size_name_the_fix(tmp_path):
    ckpt = tmp_path / "demo.pt"
    torch.save({"model": {}, "config": {"image_size": 128, "backbone": "lite"}}, ckpt)
    with pytest.raises(ValueError, match=r"demo\.pt.*image_size = 128.*--image-size 128"):
        Trainer(TrainConfig(preset="smoke", out=str(tmp_path / "run"), progress=False, init_weights=str(ckpt)))


def test_cli_zero_values_are_kept(monkeypatch):
    """`--pretrain-steps 0 --seed 0` must reach the trainer as 0, not fall back to the preset's values."""
    import argparse

    import macos_lite.training as training
    from macos_lite import train_cli

    seen = {}

    class Recorder:
        def __init__(self, cfg):
            seen["cfg"], self.is_main = cfg, False

        def fit(self):
            return {}

    monkeypatch.setattr(training, "Trainer", Recorder)
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    train_cli.run(parser.parse_args(["--preset", "smoke", "--pretrain-steps", "0", "--seed", "0", "--epochs", "3"]))
    cfg = seen["cfg"].resolved()
    assert (cfg.pretrain_steps, cfg.seed, cfg.epochs) == (0, 0, 3)


def test_a_fresh_run_in_an_old_folder_keeps_the_old_log_apart(tmp_path):
    Trainer(tiny(tmp_path, max_steps=2)).fit()
    Trainer(tiny(tmp_path, max_steps=1, overwrite=True)).fit()
    steps = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert steps and max(steps) <= 1  # only the new run's records
    assert len(list(tmp_path.glob("log-before-*.jsonl"))) == 1


def test_holdout_names_takes_a_fixed_share_of_every_category():
    from types import SimpleNamespace

    from macos_lite.data.split import holdout_names, pairs_among, without_images

    records = [SimpleNamespace(name=f"c{c}/{i:02d}", category=c) for c in range(3) for i in range(10)]
    records += [SimpleNamespace(name="small/0", category=3), SimpleNamespace(name="small/1", category=3)]
    images = SimpleNamespace(records=records)
    held = holdout_names(images, 0.3)
    assert held == holdout_names(SimpleNamespace(records=records[::-1]), 0.3)  # order-free, seed-free
    for c in range(3):
        assert sum(n.startswith(f"c{c}/") for n in held) == 3
    assert not any(n.startswith("small/") for n in held)  # too small to split: all training
    train = without_images(images, held)
    assert {r.name for r in train.records} == {r.name for r in records} - held
    pairs = SimpleNamespace(records=[SimpleNamespace(name_A=a.name, name_B=b.name) for a in records
                                     for b in records if a is not b and a.category == b.category])
    val = pairs_among(pairs, held)
    assert len(val.records) == 3 * 3 * 2


def test_pf_willow_validation_pairs_never_share_an_image_with_training(tmp_path, shared_data):
    """Held-out validation (PF-WILLOW): no validation image is in the weak tuples or the pre-training pool, and
    log.jsonl names the validation pairs."""
    cfg = TrainConfig(dataset="pf-willow", preset="smoke", out=str(tmp_path), image_size=64, pretrain_steps=0,
                      epochs=0, progress=False, device="cpu")
    trainer = Trainer(cfg)
    val_images = set()
    for rec in trainer.val_pairs.records:
        val_images |= {rec.name_A, rec.name_B}
        assert rec.name_A.split("/")[0] == rec.name_B.split("/")[0]
    assert len(trainer.val_pairs) == 5 * 3 * 2  # 3 of the 10 images of each of the 5 sub-classes, ordered pairs
    train_names = set(trainer.view.images.names)
    assert len(train_names) == 5 * 7 and not (train_names & val_images)
    pool = trainer.images.datasets if hasattr(trainer.images, "datasets") else [trainer.images]
    pool_names = {n for part in pool for n in part.names}
    assert train_names <= pool_names and not (pool_names & val_images)
    for i in range(len(trainer.view)):  # every weak tuple draws from training images only
        assert all(trainer.view.images.names[j] not in val_images for j in trainer.view.tuple_indices(i))
    trainer.fit()
    setup = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    assert setup["phase"] == "setup" and len(setup["val_pairs"]) == 30
    assert set(setup["held_out_images"]) == val_images


def test_scheduled_pretraining_on_real_photographs_lowers_the_grid_loss(tmp_path, shared_data):
    """Warm-up + cosine decay: the grid loss on real photographs falls window after window (no climb back)."""
    cfg = TrainConfig(dataset="pf-willow", preset="smoke", out=str(tmp_path), image_size=64, batch_size=8,
                      pretrain_steps=80, pretrain_schedule="cosine", pretrain_warmup=8, pretrain_lr=3e-4,
                      pretrain_grad_clip=1.0, pretrain_images="pf-willow", epochs=0, progress=False, device="cpu",
                      log_every=1, val_fraction=0)
    trainer = Trainer(cfg)
    lrs = [trainer._lr_factor(s) * trainer.cfg.lr for s in range(80)]
    assert lrs[0] == pytest.approx(3e-4 / 9) and lrs[7] == pytest.approx(3e-4 * 8 / 9)
    assert lrs[8] == pytest.approx(3e-4) and lrs[-1] < 3e-6 and all(a >= b for a, b in zip(lrs[8:], lrs[9:]))
    trainer.fit()
    losses = [r["loss"] for r in trainer.history if r.get("phase") == "pretrain"]
    assert len(losses) == 80
    windows = [sum(losses[i:i + 20]) / 20 for i in range(0, 80, 20)]
    assert all(a > b for a, b in zip(windows, windows[1:])), windows
    assert windows[-1] < 0.8 * windows[0], windows


def test_default_pretraining_pool_adds_real_photographs_but_no_evaluated_benchmark(tmp_path, monkeypatch):
    from macos_lite.data.pool import pool_sources

    for name in ("weizmann-horse", "tss", "pf-pascal", "photos"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.jpg").write_bytes(b"x")
    monkeypatch.setenv("MACOS_LITE_SHARED_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("MACOS_LITE_DATA", str(tmp_path / "elsewhere"))
    assert pool_sources(None, ["pf-willow"], tmp_path) == [("pf-willow", None), ("weizmann-horse", tmp_path / "weizmann-horse")]
    assert pool_sources(None, ["synthetic"], tmp_path) == [("synthetic", None)]  # synthetic runs keep their images
    assert pool_sources("pf-willow+tss", ["pf-willow"], tmp_path) == [("pf-willow", None), ("tss", tmp_path / "tss")]
    assert pool_sources(str(tmp_path / "photos"), ["pf-willow"], tmp_path) == [("folder", tmp_path / "photos")]
    with pytest.raises(ValueError, match="neither a folder nor a real dataset"):
        pool_sources("pf-willow+holiday-snaps", ["pf-willow"], tmp_path)
    with pytest.raises(FileNotFoundError, match="spair"):
        pool_sources("spair", ["pf-willow"], tmp_path)


def test_summary_without_validation_is_strict_json(tmp_path):
    summary = Trainer(tiny(tmp_path, max_steps=2)).fit()  # stops before any validation
    assert summary["best_val_pck@0.1"] is None
    json.dumps(summary, allow_nan=False)  # -Infinity is not JSON


def test_validation_reports_the_ransac_reference_of_the_frozen_features(tmp_path, shared_data):
    """val_pck_ransac@0.1: the robust fit of the model's own frozen features on the validation pairs, the same
    number as the reference evaluated from a separately built frozen ImageNet encoder."""
    import warnings

    from macos_lite.evaluation import RansacMethod, evaluate_matching

    cfg = TrainConfig(dataset="pf-willow", preset="smoke", out=str(tmp_path), image_size=64, pretrain_steps=0,
                      epochs=0, progress=False, device="cpu", backbone_mode="frozen")
    trainer = Trainer(cfg)
    metrics = trainer.validate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = evaluate_matching(RansacMethod(image_size=64, backbone=trainer.cfg.backbone), trainer.val_pairs,
                                alphas=(0.1,), normalizers=(trainer.val_normalizer,))
    assert metrics["val_pck_ransac@0.1"] == pytest.approx(ref.pck(alpha=0.1), abs=1e-9)
    assert trainer.validate()["val_pck_ransac@0.1"] == metrics["val_pck_ransac@0.1"]  # computed once


@pytest.mark.parametrize("setting, expected", [("auto", torch.channels_last), ("off", torch.contiguous_format)])
def test_channels_last_off_means_contiguous_everywhere(tmp_path, setting, expected):
    trainer = Trainer(tiny(tmp_path / setting, channels_last=setting, loss=LossConfig(weights={"matching": 1.0,
                                                                                               "contrast": 1.0})))
    formats = {trainer.model.encoder.memory_format, trainer.model.decoder.memory_format,
               trainer.perceptual.memory_format}
    assert formats == {expected}
