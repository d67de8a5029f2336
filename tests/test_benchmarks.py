"""The benchmark scripts run: a change of the default recipe, a backbone or a flag cannot break them unseen.

``benchmarks/gpu_check.py --tiny`` runs every step of the GPU check with tiny settings on the CPU: the CUDA
tests (skipped here), a short training on the real data, its evaluation on three benchmarks, and both
throughput benchmarks (``train_throughput.py --tiny``, ``eval_throughput.py``). No timing is asserted.
"""

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
