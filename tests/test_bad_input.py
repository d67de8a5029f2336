"""Bad input through the command line: every case ends with exit code 2 (or 1), one paragraph that names the
argument or the file, and no traceback. Each case runs ``macos_lite.cli.main`` in-process (fast) and fails
before any long work starts."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from macos_lite import cli

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "assignments"


def _willow(root: Path, sizes=None, kps=None) -> Path:
    """A PF-WILLOW root with one sub-class and two images (W x H) and their .mat keypoints (1-based)."""
    sizes = sizes or {"a": (50, 40), "b": (50, 40)}
    folder = root / "PF-dataset" / "car(G)"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, (w, h) in sizes.items():
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(folder / f"{stem}.png")
        x = np.arange(1, 11) * 4.0
        y = np.full(10, min(h, 20.0))
        pts = (kps or {}).get(stem, np.stack([x, y]))
        scipy.io.savemat(folder / f"{stem}.mat", {"pts_coord": pts})
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.pt").write_bytes(b"")
    (d / "notes.pt").write_text("these are my notes, not weights\n")
    (d / "a_file").write_text("a file where a folder should be")
    from macos_lite.checkpoints import model_checkpoint
    from macos_lite.model import MaCoSNet

    model = MaCoSNet("lite", image_size=64, pretrained=False)
    state = model_checkpoint(model)
    key = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][key] = state["model"][key].clone().fill_(float("nan"))
    torch.save(state, d / "diverged.pt")
    # a run folder (its config and a checkpoint file), as `macos-lite train` leaves it
    from macos_lite.training import TrainConfig

    run = d / "run"
    run.mkdir()
    cfg = TrainConfig(preset="smoke", out=str(run)).resolved()
    (run / "config.json").write_text(json.dumps(cfg.to_dict(), default=str))
    torch.save({"step": 1}, run / "last.pt")
    (d / "no_config").mkdir()
    torch.save({"step": 1}, d / "no_config" / "last.pt")
    (d / "empty_dir").mkdir()
    # PF-WILLOW roots: a header-only pair list, keypoints far outside, a 1-pixel-high image
    header_only = _willow(d / "header_only")
    (header_only / "test_pairs_pf.csv").write_text("imageA,imageB," + ",".join(
        f"{c}{i}" for c in ("XA", "YA", "XB", "YB") for i in range(1, 11)) + "\r\n")
    far = np.stack([np.arange(1, 11) * 4.0, np.full(10, 20.0)])
    far[0, 3] = 5000.0
    _willow(d / "far_keypoints", kps={"b": far})
    _willow(d / "strip", sizes={"normal": (50, 40), "strip": (50, 1)})
    subs = d / "submissions"
    (subs / "alice").mkdir(parents=True)
    return d


def _cases(d: Path):
    """(id, argv, exit codes allowed, words the message must hold)."""
    repo_nb = str(REPO / "notebooks")
    nested = str(d / "a_file" / "sub")
    return [
        # train
        ("train-batch-size-0", ["train", "--batch-size", "0"], {2}, ["--batch-size", "at least 1"]),
        ("train-steps-per-epoch-0", ["train", "--steps-per-epoch", "0"], {2}, ["--steps-per-epoch"]),
        ("train-epochs-negative", ["train", "--epochs", "-1"], {2}, ["--epochs", "at least 0"]),
        ("train-image-size-text", ["train", "--image-size", "big"], {2}, ["--image-size", "'big'"]),
        # every numeric setting is finite and within its bounds (a NaN rate or a zero clip would train nothing)
        ("train-lr-nan", ["train", "--lr", "nan"], {2}, ["--lr", "above 0", "nan"]),
        ("train-lr-negative", ["train", "--pretrain-lr", "-0.001"], {2}, ["--pretrain-lr", "above 0"]),
        ("train-grad-clip-0", ["train", "--grad-clip", "0"], {2}, ["--grad-clip", "above 0"]),
        ("train-weight-decay-negative", ["train", "--weight-decay", "-1"], {2}, ["--weight-decay", "at least 0"]),
        ("train-warmup-negative", ["train", "--pretrain-warmup", "-5"], {2}, ["--pretrain-warmup", "at least 0"]),
        ("train-val-fraction-1", ["train", "--val-fraction", "1"], {2}, ["--val-fraction", "below 1"]),
        ("train-momentum-above-1", ["train", "--prior-momentum", "5"], {2}, ["--prior-momentum", "from 0 to 1"]),
        ("train-lambda-negative", ["train", "--lambda-task", "-1"], {2}, ["--lambda-task", "at least 0"]),
        ("train-margin-inf", ["train", "--margin", "inf"], {2}, ["--margin", "inf"]),
        ("train-unknown-dataset", ["train", "--dataset", "pf-nowhere"], {2}, ["--dataset pf-nowhere", "pf-willow"]),
        ("train-unknown-joined-dataset", ["train", "--dataset", "pf-willow+horses"], {2}, ["'horses'"]),
        ("train-unknown-val-dataset", ["train", "--val-dataset", "pascal"], {2}, ["--val-dataset", "'pascal'"]),
        ("train-unknown-loss", ["train", "--losses", "matching,glue"], {2}, ["--losses", "glue"]),
        ("train-unwritable-out", ["train", "--preset", "smoke", "--out", nested], {2}, ["--out", nested]),
        ("train-into-existing-run", ["train", "--preset", "smoke", "--out", str(d / "run")], {2},
         ["already holds a run", "--resume", "--overwrite"]),
        ("train-resume-without-run", ["train", "--resume", "--out", str(d / "empty_dir")], {2},
         ["--resume", "no checkpoint", "empty_dir"]),
        ("train-resume-without-out", ["train", "--resume"], {2}, ["--resume needs --out"]),
        ("train-resume-other-preset", ["train", "--resume", "--out", str(d / "run"), "--preset", "demo"], {2},
         ["--preset demo", "the run used smoke", "config.json"]),
        ("train-resume-without-config", ["train", "--resume", "--out", str(d / "no_config")], {2},
         ["config.json", "--resume"]),
        ("train-resume-and-overwrite", ["train", "--resume", "--overwrite", "--out", str(d / "run")], {2},
         ["--resume", "--overwrite"]),
        # evaluate
        ("evaluate-empty-checkpoint", ["evaluate", "--dataset", "synthetic", "--checkpoint", str(d / "empty.pt")],
         {2}, ["empty.pt", "empty"]),
        ("evaluate-text-checkpoint", ["evaluate", "--dataset", "synthetic", "--checkpoint", str(d / "notes.pt")],
         {2}, ["notes.pt", "text"]),
        ("evaluate-nan-checkpoint", ["evaluate", "--dataset", "synthetic", "--checkpoint", str(d / "diverged.pt")],
         {2}, ["diverged.pt", "NaN"]),
        ("evaluate-missing-checkpoint", ["evaluate", "--dataset", "synthetic", "--checkpoint", str(d / "gone.pt")],
         {2}, ["gone.pt", "does not exist"]),
        # a run that held out no validation pairs keeps last.pt only: the message names it
        ("evaluate-best-of-unvalidated-run", ["evaluate", "--dataset", "synthetic", "--checkpoint",
                                              str(d / "no_config" / "best.pt")], {2},
         ["best.pt does not exist", "no validation pairs", str(d / "no_config" / "last.pt")]),
        ("evaluate-unwritable-json", ["evaluate", "--dataset", "synthetic", "--method", "identity", "--json",
                                      str(d / "a_file" / "out.json")], {2}, ["--json", "a_file", "Nothing was evaluated"]),
        ("evaluate-json-is-a-folder", ["evaluate", "--dataset", "synthetic", "--method", "identity", "--json",
                                       str(d / "empty_dir")], {2}, ["--json", "is a folder"]),
        ("evaluate-alpha-nan", ["evaluate", "--dataset", "synthetic", "--method", "identity", "--alpha", "0.1", "nan"],
         {2}, ["--alpha", "above 0", "nan"]),
        ("evaluate-batch-size-0", ["evaluate", "--dataset", "synthetic", "--method", "identity", "--batch-size", "0"],
         {2}, ["--batch-size"]),
        ("evaluate-unknown-dataset", ["evaluate", "--dataset", "pf-nowhere", "--method", "identity"], {2},
         ["--dataset", "pf-nowhere"]),
        ("evaluate-header-only-pair-list", ["evaluate", "--dataset", "pf-willow", "--data-root",
                                            str(d / "header_only"), "--method", "identity", "--quiet"], {2},
         ["test_pairs_pf.csv", "no line follows"]),
        ("evaluate-keypoints-far-outside", ["evaluate", "--dataset", "pf-willow", "--data-root",
                                            str(d / "far_keypoints"), "--method", "identity", "--quiet"], {2},
         ["b.png", "far outside", "5000"]),
        ("evaluate-one-pixel-high-image", ["evaluate", "--dataset", "pf-willow", "--data-root", str(d / "strip"),
                                           "--method", "identity", "--quiet"], {2}, ["strip.png", "50 x 1"]),
        # demo
        ("demo-pair-beyond-the-set", ["demo", "--pair", "100000"], {2}, ["--pair 100000", "0..19"]),
        ("demo-negative-pair", ["demo", "--pair", "-1"], {2}, ["--pair -1"]),
        ("demo-unwritable-out", ["demo", "--out", nested], {2}, ["--out", nested]),
        ("demo-text-checkpoint", ["demo", "--checkpoint", str(d / "notes.pt"), "--out", str(d / "demo")], {2},
         ["notes.pt"]),
        # course
        ("course-outside-the-repository", ["course", "--notebooks", str(d / "nowhere")], {2},
         ["repository root", "--notebooks"]),
        ("course-folder-without-notebooks", ["course", "--notebooks", str(d / "empty_dir")], {2},
         ["no course notebooks"]),
        ("course-only-matches-nothing", ["course", "--notebooks", repo_nb, "--only", "99"], {2},
         ["--only 99", "00_setup_and_data"]),
        ("course-unwritable-out", ["course", "--notebooks", repo_nb, "--only", "00", "--out", nested], {2},
         ["--out", nested]),
        # assign / grade
        ("assign-missing-source", ["assign", str(d / "nowhere"), "--out", str(d / "student")], {1, 2},
         ["nowhere", "neither a notebook"]),
        ("assign-unwritable-out", ["assign", str(FIXTURES), "--out", nested], {2}, ["--out", nested]),
        ("grade-missing-submissions", ["grade", str(d / "nowhere"), "--solutions", str(FIXTURES), "--out",
                                       str(d / "grades")], {2}, ["nowhere", "does not exist"]),
        ("grade-unwritable-out", ["grade", str(d / "submissions"), "--solutions", str(FIXTURES), "--out", nested],
         {2}, ["--out", nested]),
        ("grade-jobs-0", ["grade", str(d / "submissions"), "--solutions", str(FIXTURES), "--out", str(d / "g"),
                          "--jobs", "0"], {2}, ["--jobs"]),
        # download
        ("download-unknown-dataset", ["download", "pf-nowhere"], {2}, ["pf-nowhere"]),
        ("download-without-name", ["download", "--root", str(d)], {2}, ["name a dataset"]),
        ("download-manual-dataset", ["download", "weizmann-horse", "--root", str(d / "data")], {1, 2},
         ["Weizmann Horse", "figure_ground", "cannot be downloaded automatically"]),
    ]


CASE_IDS = [c[0] for c in _cases(Path("/x"))]


def run_cli(argv, capsys):
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's own errors (usage + one line)
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_table_is_big_enough():
    assert len(CASE_IDS) >= 25 and len(set(CASE_IDS)) == len(CASE_IDS)


@pytest.mark.parametrize("case", CASE_IDS)
def test_bad_input_gets_one_clear_message(case, files, capsys, monkeypatch):
    monkeypatch.setenv("MACOS_LITE_THREADS", "1")
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.chdir(files)  # nothing lands in the repository
    _, argv, codes, words = next(c for c in _cases(files) if c[0] == case)
    code, out, err = run_cli(argv, capsys)
    assert code in codes, (code, err[-2000:])
    assert "Traceback" not in err + out
    message = err.strip()
    assert message and "\n\n" not in message, message  # one paragraph
    for word in words:
        assert word in message, (word, message)
    assert not (files / "a_file").is_dir()


def test_debug_shows_the_traceback(files, capsys, monkeypatch):
    monkeypatch.chdir(files)
    argv = ["evaluate", "--dataset", "synthetic", "--checkpoint", str(files / "empty.pt")]
    from macos_lite.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="empty"):
        cli.main([*argv, "--debug"])
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(CheckpointError):
        cli.main(argv)


def test_an_unexpected_error_is_one_line_with_the_debug_hint(files, capsys, monkeypatch):
    import macos_lite.demo as demo

    def broken(args):
        raise KeyError("internal state")

    monkeypatch.setattr(demo, "run", broken)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    code, out, err = run_cli(["demo"], capsys)
    assert code == 1
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "KeyError" in err and "--debug" in err
