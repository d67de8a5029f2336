"""The benchmark scripts run: a change of the default recipe, a backbone or a flag cannot break them unseen.

``benchmarks/gpu_check.py --tiny`` runs every step of the GPU check with tiny settings on the CPU: the CUDA
tests (skipped here), a short training on the real data, its evaluation on three benchmarks, and both
throughput benchmarks (``train_throughput.py --tiny``, ``eval_throughput.py``). No timing is asserted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path, **env):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MACOS_LITE_THREADS": os.environ.get("MACOS_LITE_THREADS", "2"),
           **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)


@pytest.mark.slow
@pytest.mark.shared_data
def test_gpu_check_tiny_runs_every_step(shared_data, tmp_path):
    out = tmp_path / "check"
    proc = _run([str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--shared-data", str(shared_data),
                 "--out", str(out)], tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    assert "all steps passed" in text
    steps = [line for line in text.splitlines() if line.startswith("[") and ": exit " in line]
    assert len(steps) == 7 and all(": exit 0 " in line for line in steps), steps
    # the throughput benchmark printed its table row for the lite backbone (the default recipe ran)
    assert any(line.startswith("lite ") and "|" in line for line in text.splitlines()), text[-4000:]
    log = (out / "gpu_check.log").read_text()
    assert "all steps passed" in log


def test_gpu_check_reports_a_failing_step(tmp_path):
    """A benchmark that exits non-zero makes the whole check fail (exit 1, its step named)."""
    proc = _run([str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny", "--shared-data", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "check"), "--only", "PF-WILLOW"], tmp_path,
                # no dataset anywhere: neither the shared development data nor the download folder holds it
                MACOS_LITE_SHARED_DATA=str(tmp_path / "missing"), MACOS_LITE_DATA=str(tmp_path / "empty"))
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-3000:]
    assert "failed: training" in text


def _willow_recipe():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import willow_recipe
    finally:
        sys.path.pop(0)
    return willow_recipe


def _fake_dev(root: Path, classes) -> Path:
    for c in classes:
        (root / "PF-dataset" / c).mkdir(parents=True)
        (root / "PF-dataset" / c / "marker.txt").write_text(c)
    return root


def test_willow_recipe_builds_folds_of_links_to_the_dev_subclasses(tmp_path):
    wr = _willow_recipe()
    dev = _fake_dev(tmp_path / "dev", wr.SUBCLASSES)
    roots = wr.build_folds(dev, tmp_path / "work")
    # fold A is scored on car(M), motorbike(M) and trained on the other three; fold B the other way round
    expected = {"A": ({"car(G)", "motorbike(G)", "winebottle(M)"}, {"car(M)", "motorbike(M)"}),
                "B": ({"car(M)", "motorbike(M)"}, {"car(G)", "motorbike(G)", "winebottle(M)"})}
    for fold, (train, test) in expected.items():
        for root, classes in zip(roots[fold], (train, test)):
            links = {p.name: p for p in (root / "PF-dataset").iterdir()}
            assert set(links) == classes
            assert all(p.is_symlink() and (p / "marker.txt").read_text() == name for name, p in links.items())


def test_willow_recipe_spread_is_mean_and_half_range():
    mean, half = _willow_recipe().spread([0.38, 0.42, 0.40])
    assert mean == pytest.approx(0.40) and half == pytest.approx(0.02)


def test_willow_recipe_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    wr = _willow_recipe()
    partial = _fake_dev(tmp_path / "partial", ["car(G)", "car(M)"])
    assert wr.main(["--data-root", str(partial), "--work", str(tmp_path / "w1")]) == 2
    assert "PF-dataset/motorbike(G)" in capsys.readouterr().err
    dev = _fake_dev(tmp_path / "dev", wr.SUBCLASSES)
    used = tmp_path / "used"
    (used / "old_run").mkdir(parents=True)
    assert wr.main(["--data-root", str(dev), "--work", str(used)]) == 2
    assert "not empty" in capsys.readouterr().err and (used / "old_run").is_dir()
    assert wr.main(["--data-root", str(dev), "--work", str(tmp_path / "w2"), "--", "--seed", "3"]) == 2
    assert "--seed" in capsys.readouterr().err
    assert not (tmp_path / "w2").exists()


@pytest.mark.slow
@pytest.mark.shared_data
def test_willow_recipe_trains_scores_and_tables_a_fold(shared_data, tmp_path):
    """One fold, one seed of a tiny recipe end to end: the learned row, the fit of its features, the summary."""
    work = tmp_path / "work"
    proc = _run([str(ROOT / "benchmarks" / "willow_recipe.py"), "--data-root", str(shared_data / "pf-willow-dev"),
                 "--work", str(work), "--seeds", "0", "--folds", "A", "--", "--preset", "smoke", "--epochs", "0"],
                tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    summary = json.loads((work / "summary.json").read_text())
    run = summary["runs"][0]
    assert (run["fold"], run["seed"]) == ("A", 0) and 0 <= run["pck@0.1"] <= 1
    # the table's margin is the learned PCK minus the fit's, both read back from the JSON summaries written
    ransac = json.loads((work / "A_ransac.json").read_text())
    assert ransac["method"]["image_size"] == [96, 96]  # the smoke model's size: its own features
    assert summary["mean"]["A"]["margin"] == pytest.approx(run["pck@0.1"] - summary["ransac"]["A"])
    assert f"| A | 0 | {run['pck@0.1']:.3f} |" in proc.stdout
