"""Nothing lost in a run folder: exact resume after SIGINT/SIGTERM, no overwrite of a run, stale temp files."""

import json
import os
import signal

import pytest
import torch

from macos_lite.checkpoints import load_checkpoint
from macos_lite.run_folder import RunExistsError
from macos_lite.stop_signals import TrainingInterrupted
from macos_lite.training import Trainer
from training_configs import tiny




@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    trainer = Trainer(tiny(tmp_path_factory.mktemp("full")))
    trainer.fit()
    return trainer


def _signal_during_step(trainer, at_step: int, signum: int):
    original = trainer.train_step

    def step(i, batch):
        if i == at_step:  # arrives while the step's forward pass runs (BatchNorm statistics already moving)
            os.kill(os.getpid(), signum)
        return original(i, batch)

    trainer.train_step = step


@pytest.mark.parametrize("signum, at_step", [(signal.SIGINT, 3), (signal.SIGTERM, 4), (signal.SIGINT, 1)])
def test_signal_then_resume_is_bit_identical(tmp_path, uninterrupted, signum, at_step):
    first = Trainer(tiny(tmp_path))
    _signal_during_step(first, at_step, signum)
    with pytest.raises(TrainingInterrupted) as info:
        first.fit()
    assert info.value.signum == signum
    assert first.step == at_step + 1  # the step that was running finished; nothing after it
    assert load_checkpoint(tmp_path / "last.pt")["step"] == at_step + 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    resumed = Trainer(tiny(tmp_path, resume=True))
    resumed.fit()
    a, b = uninterrupted.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    keys = [(r["step"], r["phase"]) for r in log]
    assert len(keys) == len(set(keys))  # no record twice
    assert keys == [(r["step"], r["phase"]) for r in uninterrupted.history]
    assert [r.get("loss") for r in log] == [r.get("loss") for r in uninterrupted.history]


def test_a_run_is_never_overwritten(tmp_path):
    Trainer(tiny(tmp_path, max_steps=1)).fit()
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(RunExistsError, match=r"--resume --out .*another --out.*--overwrite"):
        Trainer(tiny(tmp_path, max_steps=1, seed=3))
    assert (tmp_path / "last.pt").read_bytes() == before


def test_overwrite_starts_afresh(tmp_path):
    Trainer(tiny(tmp_path, max_steps=2)).fit()
    trainer = Trainer(tiny(tmp_path, max_steps=1, overwrite=True))
    assert not (tmp_path / "last.pt").exists()  # the old run's checkpoints do not mix with the new one's
    trainer.fit()
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 1


def test_stale_checkpoint_temp_files_are_removed_at_start(tmp_path):
    Trainer(tiny(tmp_path, max_steps=1)).fit()
    stale = tmp_path / "last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / "notes.tmp"
    other.write_text("mine")
    Trainer(tiny(tmp_path, resume=True))
    assert not stale.exists() and other.exists()


def test_cli_sigterm_then_resume(tmp_path, monkeypatch, capsys):
    """`macos-lite train` stopped by SIGTERM exits 143 naming the resume command; `--resume` then finishes."""
    from macos_lite import cli

    original = Trainer.train_step

    def step(self, i, batch):
        if i == 2 and not self.cfg.resume:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, i, batch)

    monkeypatch.setattr(Trainer, "train_step", step)
    out = tmp_path / "run"
    argv = ["train", "--preset", "smoke", "--image-size", "64", "--batch-size", "2", "--pretrain-steps", "3",
            "--epochs", "1", "--steps-per-epoch", "2", "--val-dataset", "none", "--device", "cpu", "--no-progress",
            "--out", str(out)]
    assert cli.main(argv) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "SIGTERM" in err and f"--resume --out {out}" in err and "Traceback" not in err
    assert load_checkpoint(out / "last.pt")["step"] == 3
    assert cli.main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert load_checkpoint(out / "last.pt")["step"] == 5
    printed = capsys.readouterr().out  # the summary says how long the command trained (the value is not tested)
    assert '"train_minutes"' in printed and "trained in " in printed and "min (5 steps)" in printed
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    keys = [(r["step"], r["phase"]) for r in records]
    assert len(keys) == len(set(keys)) and [k[0] for k in keys] == sorted(k[0] for k in keys)
    assert [r["step"] for r in records if r["phase"] in ("pretrain", "weak")] == [3, 5]  # log_every 10: phase ends
