"""Bad input, third round: nothing overwritten or mixed, no silent wrong number, one message and no traceback.

Each kind is walked here with tiny inputs: the command line runs in-process (``macos_lite.cli.main``), and every
case asserts the behaviour (exit code 2, the message names the file or flag, no "Traceback", files that must
survive are byte-identical), never a hard-coded score.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from macos_lite import cli, cli_common
from macos_lite import metrics as M

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "assignments"


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.setenv("MACOS_LITE_THREADS", "1")
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    monkeypatch.delenv("MACOS_LITE_PRESET", raising=False)
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository


def run_cli(argv, capsys):
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors (usage + one line)
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_paragraph(err: str) -> str:
    message = err.strip()
    assert message and "\n\n" not in message and "Traceback" not in message, message
    return message


def _willow(root: Path, stems=("a", "b", "c"), kps=None) -> Path:
    """A PF-WILLOW root: one sub-class, 50 x 40 images and their 1-based .mat keypoints."""
    folder = root / "PF-dataset" / "car(G)"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem in stems:
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(folder / f"{stem}.png")
        pts = (kps or {}).get(stem, np.stack([np.arange(1, 11) * 4.0, np.full(10, 20.0)]))
        scipy.io.savemat(folder / f"{stem}.mat", {"pts_coord": pts})
    return root


def _tss(shared: Path, dest: Path) -> Path:
    """A copy of one TSS sample pair in the dataset's own layout."""
    src = shared / "tss-sample" / "TSS_CVPR2016" / "FG3DCar"
    pair = sorted(p for p in src.iterdir() if p.is_dir())[0]
    (dest / "TSS_CVPR2016" / "FG3DCar").mkdir(parents=True)
    shutil.copytree(pair, dest / "TSS_CVPR2016" / "FG3DCar" / pair.name)
    return dest


def _bytes(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------------
# 1. nothing overwritten or mixed
# ---------------------------------------------------------------------------------------------------------

def _live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    return proc


def test_a_second_train_on_a_locked_folder_is_refused_and_touches_nothing(tmp_path, capsys):
    from macos_lite.run_lock import LOCK_NAME

    run = tmp_path / "run"
    run.mkdir()
    other = _live_pid()
    try:
        (run / LOCK_NAME).write_text(json.dumps({"pid": other.pid, "started": "just now"}))
        (run / ".last.pt.abc123.tmp").write_bytes(b"the other run's checkpoint being written")
        (run / "log.jsonl").write_text('{"step": 0}\n')
        before = _bytes(run)
        code, out, err = run_cli(["train", "--preset", "smoke", "--out", run, "--no-progress"], capsys)
    finally:
        other.kill()
        other.wait()
    assert code == 2
    message = one_paragraph(err)
    assert str(run) in message and f"pid {other.pid}" in message and "in use" in message
    assert _bytes(run) == before  # the other run's temporary file and log are still there, unchanged


def test_a_stale_lock_is_taken_over_with_a_note_and_released(tmp_path):
    from macos_lite.run_lock import LOCK_NAME, RunLock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid}))
    with RunLock(tmp_path) as lock:
        assert lock.held and str(dead.pid) in lock.note and "took over" in lock.note
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_lock_is_exclusive_between_processes(tmp_path):
    """Two processes racing for one folder: exactly one holds it (O_EXCL), the other is told who does."""
    code = ("import sys, time; from macos_lite.run_lock import RunLock\n"
            "try:\n    RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(3)\n"
            "except Exception as e:\n    print('refused', e, flush=True)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert sorted(o.split()[0] for o in outs) == ["held", "refused"], outs
    assert "in use by another run" in next(o for o in outs if o.startswith("refused"))


def test_train_over_a_foreign_config_is_refused_unchanged(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"project": "someone else\'s settings"}\n')
    before = _bytes(run)
    code, _, err = run_cli(["train", "--preset", "smoke", "--out", run, "--no-progress"], capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "config.json" in message and "--overwrite" in message and "--resume" in message
    assert _bytes(run) == before
    assert not (run / ".lock").exists()  # released when refused


def test_evaluate_json_is_never_replaced_without_overwrite(tmp_path, capsys):
    target = tmp_path / "r.json"
    target.write_text("my earlier results\n")
    argv = ["evaluate", "--dataset", "synthetic", "--method", "identity", "--max-pairs", "2", "--quiet",
            "--json", target]
    code, out, err = run_cli(argv, capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "--json" in message and str(target) in message and "--overwrite" in message
    assert target.read_text() == "my earlier results\n" and out == ""  # refused before any work
    code, out, err = run_cli([*argv, "--overwrite"], capsys)
    assert code == 0, err
    assert json.loads(target.read_text())["num_pairs"] == 2


def test_demo_refuses_to_replace_its_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.png").write_bytes(b"an earlier figure")
    code, _, err = run_cli(["demo", "--out", out], capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "demo.png" in message and "--overwrite" in message
    assert (out / "demo.png").read_bytes() == b"an earlier figure"


def test_flow_out_inside_the_data_root_is_refused_and_the_ground_truth_kept(shared_data, tmp_path, capsys):
    root = _tss(shared_data, tmp_path / "tss")
    before = _bytes(root)
    for flow_out in (root / "TSS_CVPR2016", root, root / "TSS_CVPR2016" / "FG3DCar"):
        code, _, err = run_cli(["evaluate", "--dataset", "tss", "--data-root", root, "--method", "identity",
                                "--quiet", "--flow-out", flow_out, "--overwrite"], capsys)
        assert code == 2, err
        message = one_paragraph(err)
        assert "--flow-out" in message and "inside the dataset" in message
    assert _bytes(root) == before


def test_flow_out_through_a_link_to_the_ground_truth_is_refused(shared_data, tmp_path, capsys):
    root = _tss(shared_data, tmp_path / "tss")
    pair = next((root / "TSS_CVPR2016" / "FG3DCar").iterdir())
    linked = tmp_path / "flows" / "FG3DCar"
    linked.mkdir(parents=True)
    (linked / pair.name).symlink_to(pair)  # the flows' layout leads into the data
    before = _bytes(root)
    code, _, err = run_cli(["evaluate", "--dataset", "tss", "--data-root", root, "--method", "identity",
                            "--quiet", "--flow-out", tmp_path / "flows", "--overwrite"], capsys)
    assert code == 2
    assert "ground-truth" in one_paragraph(err)
    assert _bytes(root) == before


def test_flow_out_keeps_earlier_flows_without_overwrite(shared_data, tmp_path, capsys):
    root = _tss(shared_data, tmp_path / "tss")
    flows = tmp_path / "flows"
    argv = ["evaluate", "--dataset", "tss", "--data-root", root, "--method", "identity", "--quiet",
            "--flow-out", flows]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    written = _bytes(flows)
    assert written and all(str(p).endswith(".flo") for p in written)
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "--overwrite" in one_paragraph(err) and _bytes(flows) == written
    assert run_cli([*argv, "--overwrite"], capsys)[0] == 0


# disk full ------------------------------------------------------------------------------------------------

def _enospc(f):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("previous")
    with pytest.raises(cli_common.NoSpaceError, match="no space left on device while writing .*results.json"):
        cli_common.atomic_write(target, _enospc)
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file left


def test_torch_writer_error_on_a_full_disk_is_recognised(tmp_path, monkeypatch):
    def torch_error(f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 14631040 vs 14630932")

    with pytest.raises(RuntimeError, match="inline_container"):  # a disk with room: not a full disk
        cli_common.atomic_write(tmp_path / "a.pt", torch_error)
    monkeypatch.setattr(cli_common.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(cli_common.NoSpaceError, match="a.pt"):
        cli_common.atomic_write(tmp_path / "a.pt", torch_error)
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_on_a_full_disk_says_which_checkpoint_is_intact(tmp_path, monkeypatch, capsys):
    import macos_lite.checkpoints as C
    from macos_lite.training import Trainer

    (tmp_path / "last.pt").write_bytes(b"step 3")
    trainer = Trainer.__new__(Trainer)  # only what save() reads
    trainer.rank, trainer.out, trainer.step, trainer._saved_step = 0, tmp_path, 5, 3
    trainer.state_dict = lambda: {"step": 5}
    monkeypatch.setattr(C.torch, "save", lambda state, f: _enospc(f))
    with pytest.raises(cli_common.NoSpaceError) as info:
        trainer.save("best.pt")
    message = str(info.value)
    assert "no space left" in message and "best.pt" in message and "last.pt (step 3) is intact" in message
    assert "--resume" in message and (tmp_path / "last.pt").read_bytes() == b"step 3"
    assert not (tmp_path / "best.pt").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_flows_on_a_full_disk_keep_the_scores_and_the_json(shared_data, tmp_path, monkeypatch, capsys):
    import macos_lite.evaluation.tss as tss

    def full(path, flow, overwrite=True):
        cli_common.atomic_write(path, _enospc)

    monkeypatch.setattr(tss, "write_flo", full)
    root = _tss(shared_data, tmp_path / "tss")
    code, out, err = run_cli(["evaluate", "--dataset", "tss", "--data-root", root, "--method", "identity",
                              "--quiet", "--flow-out", tmp_path / "flows", "--json", tmp_path / "r.json"], capsys)
    assert code == 2
    assert "no space left" in err and ("flow1.flo" in err or "flow2.flo" in err)
    assert "Traceback" not in err
    summary = json.loads((tmp_path / "r.json").read_text())  # the scores were kept
    assert summary["num_pairs"] == 2 and summary["flow_out_error"] and "tss" in out


def test_a_real_full_disk_while_saving_a_checkpoint(tmp_path):
    """A 30 MB tmpfs: last.pt (about 17 MB) fits, best.pt does not (needs root; skipped otherwise)."""
    disk = tmp_path / "full"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30M", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and permission to mount a tmpfs")
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO), "MACOS_LITE_THREADS": "1"}
        proc = subprocess.run([sys.executable, "-m", "macos_lite", "train", "--preset", "smoke", "--pretrain-steps",
                               "2", "--steps-per-epoch", "2", "--no-progress", "--out", str(disk / "run")],
                              capture_output=True, text=True, env=env, timeout=600)
        assert proc.returncode == 2, proc.stderr
        assert "no space left" in proc.stderr and "Traceback" not in proc.stderr
        assert "is intact" in proc.stderr and (disk / "run" / "last.pt").is_file()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# ---------------------------------------------------------------------------------------------------------
# 2. no silent wrong number
# ---------------------------------------------------------------------------------------------------------

def test_jaccard_and_precision_refuse_probability_maps():
    prob = torch.tensor([[0.3, 0.6], [0.2, 0.9]])
    gt = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    for fn in (M.jaccard, M.precision):
        with pytest.raises(ValueError, match=r"pred .*binarize_prediction"):
            fn(prob, gt)
        with pytest.raises(ValueError, match=r"gt .*binarize_prediction"):
            fn(gt, prob)
    # thresholded at 0.5, as the protocol does: the same numbers as numpy's
    p, g = prob.numpy() > 0.5, gt.numpy() > 0.5
    assert M.jaccard(prob > 0.5, gt) == pytest.approx((p & g).sum() / (p | g).sum())
    assert M.precision(prob > 0.5, gt) == pytest.approx((p == g).mean())
    assert M.jaccard(torch.from_numpy(p).float(), gt) == pytest.approx((p & g).sum() / (p | g).sum())
    # 0/255 masks stay masks
    assert M.jaccard(np.where(p, 255, 0).astype(np.uint8), gt) == pytest.approx((p & g).sum() / (p | g).sum())


@pytest.mark.parametrize("alpha", [0.0, -0.1, float("nan")])
def test_pck_refuses_a_threshold_that_is_not_above_zero(alpha):
    P = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])
    with pytest.raises(ValueError, match="alpha"):
        M.pck(P, P, alpha=alpha, normalizer="image", size=torch.tensor([[100, 100]]))


def test_pairs_without_keypoints_and_duplicates_are_counted_and_named(tmp_path, capsys):
    root = _willow(tmp_path / "pfw", kps={"b": np.full((2, 10), np.nan)})  # b is not annotated
    code, out, err = run_cli(["evaluate", "--dataset", "pf-willow", "--data-root", root, "--method", "identity",
                              "--quiet", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "r.json").read_text())
    involving_b = [p for p in summary["without_keypoints"]]
    assert summary["num_pairs"] == 6 and summary["num_without_keypoints"] == 4  # the 4 ordered pairs with b
    assert all("b" in p.split(" -> ")[0][-1] + p.split(" -> ")[1][-1] for p in involving_b)
    assert any("no keypoint" in w for w in summary["warnings"]) and "no keypoint" in err
    assert "4 without" in out
    # a pair list with a row given twice
    rows = (tmp_path / "pfw" / "test_pairs_pf.csv")
    header = "imageA,imageB," + ",".join(f"{c}{i}" for c in ("XA", "YA", "XB", "YB") for i in range(1, 11))
    pts = ",".join(str(v) for v in [*range(4, 44, 4), *[20] * 10, *range(4, 44, 4), *[20] * 10])
    line = f"PF-dataset/car(G)/a.png,PF-dataset/car(G)/c.png,{pts}"
    rows.write_text("\n".join([header, line, line]) + "\n")
    code, _, err = run_cli(["evaluate", "--dataset", "pf-willow", "--data-root", root, "--method", "identity",
                            "--quiet", "--json", tmp_path / "d.json"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "d.json").read_text())
    assert summary["num_duplicates"] == 1 and any("more than once" in w for w in summary["warnings"])


def test_the_json_records_the_image_size_used(tmp_path, capsys):
    code, _, err = run_cli(["evaluate", "--dataset", "synthetic", "--method", "identity", "--max-pairs", "2",
                            "--image-size", "33", "--quiet", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["settings"]["image_size"] == [33, 33] and summary["method"]["image_size"] == [33, 33]


# ---------------------------------------------------------------------------------------------------------
# 3. one message, no traceback
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_reads_the_same_with_data_loader_workers(tmp_path, capsys, workers):
    root = _willow(tmp_path / "pfw")
    image = root / "PF-dataset" / "car(G)" / "b.png"
    image.write_bytes(image.read_bytes()[:200])  # truncated
    code, _, err = run_cli(["evaluate", "--dataset", "pf-willow", "--data-root", root, "--method", "identity",
                            "--quiet", "--num-workers", workers], capsys)
    assert code == 2
    message = one_paragraph(err)
    assert len(message.splitlines()) == 1 and "b.png" in message and "Caught" not in message


def test_worker_error_message_is_the_original_sentence():
    wrapped = ("Caught DataError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 3, in f\n    raise DataError(m)\nmacos_lite.data.imageio.DataError: x.png: '
               "cannot decode the image")
    assert cli_common.worker_error_message(wrapped) == "x.png: cannot decode the image"
    assert cli_common.worker_error_message("plain") == "plain"


@pytest.mark.parametrize("argv", [
    ["evaluate", "--dataset", "synthetic", "--method", "identity", "--image-size", "30000"],
    ["train", "--preset", "smoke", "--image-size", "30000", "--out", "r"],
])
def test_sizes_that_cannot_fit_in_memory_are_refused_before_allocating(argv, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "--image-size 30000" in message and "GiB" in message
    assert not Path("r").exists()


@pytest.mark.parametrize("name, value, argv, words", [
    ("MACOS_LITE_PRESET", "bogus", ["train", "--out", "r", "--no-progress"], ["$MACOS_LITE_PRESET", "'bogus'", "smoke"]),
    ("MACOS_LITE_THREADS", "abc", ["evaluate", "--dataset", "synthetic", "--method", "identity"],
     ["$MACOS_LITE_THREADS", "'abc'"]),
    ("MACOS_LITE_DEBUG", "maybe", ["evaluate", "--dataset", "synthetic", "--method", "identity"],
     ["$MACOS_LITE_DEBUG", "'maybe'"]),
    ("MACOS_LITE_RUNS", "a_file", ["demo"], ["$MACOS_LITE_RUNS", "a_file", "not a folder"]),
    ("MACOS_LITE_DATA", "a_file", ["evaluate", "--dataset", "tss", "--method", "identity"],
     ["$MACOS_LITE_DATA", "a_file", "not a folder"]),
])
def test_bad_environment_variables_are_named(name, value, argv, words, monkeypatch, capsys):
    Path("a_file").write_text("x")
    monkeypatch.delenv("MACOS_LITE_SHARED_DATA", raising=False)
    monkeypatch.setenv(name, value)
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    message = one_paragraph(err)
    for word in words:
        assert word in message, (word, message)


def test_a_missing_shared_data_folder_is_named_in_the_not_found_message(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("MACOS_LITE_SHARED_DATA", str(tmp_path / "no-such-folder"))
    monkeypatch.setenv("MACOS_LITE_DATA", str(tmp_path / "empty"))
    code, _, err = run_cli(["evaluate", "--dataset", "tss", "--method", "identity", "--quiet"], capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "$MACOS_LITE_SHARED_DATA" in message and "no-such-folder" in message and "does not exist" in message


def test_threads_variable_is_validated_and_omp_still_counts(monkeypatch):
    from macos_lite.device import cap_threads

    monkeypatch.setenv("MACOS_LITE_THREADS", "abc")
    with pytest.raises(ValueError, match=r"\$MACOS_LITE_THREADS is 'abc'"):
        cap_threads()
    monkeypatch.delenv("MACOS_LITE_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert cap_threads() == 1
    finally:
        cap_threads(2)  # as conftest set it


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_predict_takes_any_float_dtype(dtype):
    from macos_lite.model import MaCoSNet

    model = MaCoSNet("lite", image_size=64, pretrained=False).eval()
    image = np.random.default_rng(0).random((40, 50, 3))
    reference = model.predict(image.astype(np.float32), image.astype(np.float32))
    other = model.predict(image.astype(dtype), torch.from_numpy(image.astype(dtype)).permute(2, 0, 1))
    assert other["mask_A"].dtype == torch.float32
    tol = 1e-5 if dtype == np.float64 else 5e-3
    assert torch.allclose(other["mask_A"], reference["mask_A"], atol=tol)
    assert torch.allclose(other["theta"], reference["theta"], atol=tol * 10)


@pytest.mark.parametrize("size", [-96, 0, 17])
def test_model_image_size_is_checked(size):
    from macos_lite.model import MaCoSNet

    with pytest.raises(ValueError, match=f"image_size .*got {size}"):
        MaCoSNet("lite", image_size=size, pretrained=False)


def test_messages_name_the_flag_and_what_is_in_the_way(tmp_path, capsys):
    Path("afile").write_text("x")
    base = ["evaluate", "--dataset", "synthetic", "--method", "identity", "--quiet"]
    code, _, err = run_cli([*base, "--device", "gpu0"], capsys)
    assert code == 2 and "--device gpu0: expected auto, cpu, cuda, cuda:N or mps" in one_paragraph(err)
    for argv, flag in (([*base, "--json", "afile/r.json"], "--json"), (["demo", "--out", "afile"], "--out"),
                       (["train", "--preset", "smoke", "--out", "afile/run"], "--out"),
                       (["download", "pf-willow", "--root", "afile/data"], "--root")):
        code, _, err = run_cli(argv, capsys)
        message = one_paragraph(err)
        assert code == 2 and flag in message and "afile is a file, not a folder" in message, message
        assert "File exists" not in message
    assert Path("afile").read_text() == "x"


def _weizmann(root: Path, stems=("horse001", "horse002", "horse003")) -> Path:
    """A Weizmann horse root: 50 x 40 RGB images and their 0/255 masks."""
    rng = np.random.default_rng(0)
    for sub in ("rgb", "figure_ground"):
        (root / sub).mkdir(parents=True)
    for stem in stems:
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(root / "rgb" / f"{stem}.jpg")
        Image.fromarray(np.where(rng.random((40, 50)) > 0.5, 255, 0).astype(np.uint8)).save(
            root / "figure_ground" / f"{stem}.jpg")
    return root


@pytest.mark.parametrize("what", ["folder", "broken link"])
@pytest.mark.parametrize("dataset, make, inside", [
    ("pf-willow", _willow, "PF-dataset/car(G)/b.png"),  # an image
    ("weizmann-horse", _weizmann, "figure_ground/horse002.jpg"),  # a mask
])
def test_a_data_path_that_is_a_folder_or_a_broken_link_says_so(tmp_path, capsys, dataset, make, inside, what):
    root = make(tmp_path / "data")
    path = root / inside
    path.unlink()
    target = tmp_path / f"moved-away{path.suffix}"
    if what == "folder":
        path.mkdir()
    else:
        path.symlink_to(target)
    code, _, err = run_cli(["evaluate", "--dataset", dataset, "--data-root", root, "--method", "identity",
                            "--quiet"], capsys)
    assert code == 2
    message = one_paragraph(err)
    expected = "is a folder, not a file" if what == "folder" else f"broken symbolic link to {target}"
    assert f"{path}" in message and expected in message, message
    assert "file not found" not in message and "download" not in message


def test_non_numeric_keypoints_name_the_file(tmp_path, capsys):
    root = _willow(tmp_path / "pfw")
    scipy.io.savemat(root / "PF-dataset" / "car(G)" / "b.mat", {"pts_coord": np.array(["left eye", "nose"])})
    code, _, err = run_cli(["evaluate", "--dataset", "pf-willow", "--data-root", root, "--method", "identity",
                            "--quiet"], capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "b.mat" in message and "pts_coord" in message and "text, not real numbers" in message


def test_weights_that_do_not_fit_the_config_are_one_paragraph(tmp_path, capsys):
    from macos_lite.checkpoints import model_checkpoint
    from macos_lite.model import MaCoSNet

    state = model_checkpoint(MaCoSNet("lite", image_size=64, pretrained=False))
    state["model_config"]["tps_grid_size"] = 4  # the TPS head no longer fits
    torch.save(state, tmp_path / "edited.pt")
    code, _, err = run_cli(["evaluate", "--dataset", "synthetic", "--checkpoint", tmp_path / "edited.pt",
                            "--quiet"], capsys)
    assert code == 2
    message = one_paragraph(err)
    assert "edited.pt" in message and "do not fit" in message and len(message.splitlines()) == 1
    assert "of another shape" in message


def test_assign_into_its_own_sources_is_a_user_mistake(tmp_path, capsys):
    nb = tmp_path / "nb"
    shutil.copytree(FIXTURES, nb)
    before = _bytes(nb)
    code, _, err = run_cli(["assign", nb, "--out", nb], capsys)
    assert code == 2 and "--out" in one_paragraph(err) and _bytes(nb) == before


@pytest.mark.parametrize("flag, value", [("--num-workers", "-1"), ("--batch-size", "0"), ("--max-pairs", "0"),
                                         ("--partners", "0"), ("--image-size", "-33")])
def test_evaluate_numbers_are_bounded_by_their_flag(flag, value, capsys):
    code, _, err = run_cli(["evaluate", "--dataset", "synthetic", "--method", "identity", flag, value], capsys)
    assert code == 2 and flag in err and "whole number" in err and "Traceback" not in err
