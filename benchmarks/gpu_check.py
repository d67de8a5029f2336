"""The GPU check: one command, a few minutes, no network.

1. the tests marked ``gpu`` (CUDA forward/backward equals CPU; bf16 loss close to fp32);
2. a short real training run on the development data (PF-WILLOW subset + Weizmann horses, lite
   backbone), then its evaluation on PF-WILLOW (both normalisers), the TSS sample and the Weizmann subset;
3. both benchmarks (training step and evaluation throughput).

    python benchmarks/gpu_check.py [--shared-data ../shared/data] [--out runs/gpu-check] [--tiny]

Everything is printed and logged to ``<out>/gpu_check.log``. ``--tiny`` runs the same steps with tiny
settings (for checking the script on a CPU). Packages missing on a GPU machine can be installed first from
wheels carried along (``pip install --no-index --find-links wheels/ macos_lite``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared-data", default=os.environ.get("MACOS_LITE_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
    p.add_argument("--out", default=str(ROOT / "runs" / "gpu-check"))
    p.add_argument("--tiny", action="store_true", help="tiny settings, to test the script on a CPU")
    p.add_argument("--only", nargs="+", metavar="WORD",
                   help="run only the steps whose title contains one of these words (e.g. training throughput)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "gpu_check.log", "a")
    shared = Path(args.shared_data)
    py = sys.executable
    train = ["--dataset", "pf-willow+weizmann-horse", "--data-root", str(shared), "--backbone", "lite",
             "--val-dataset", "pf-willow", "--out", str(out / "train"), "--no-progress"]
    if args.tiny:
        train += ["--preset", "smoke", "--image-size", "64", "--batch-size", "2", "--pretrain-steps", "2", "--epochs",
                  "1", "--steps-per-epoch", "2", "--val-pairs", "8", "--device", "cpu", "--losses",
                  "matching,cycle,contrast,task"]
    else:
        train += ["--preset", "full", "--image-size", "240", "--batch-size", "32", "--pretrain-steps", "300",
                  "--epochs", "3", "--steps-per-epoch", "60", "--val-pairs", "90", "--num-workers", "8"]
    checkpoint = str(out / "train" / "best.pt")
    limit = ["--max-pairs", "20"] if args.tiny else []
    evaluate = [[py, "-m", "macos_lite", "evaluate", "--dataset", name, "--data-root", str(shared / folder),
                 "--checkpoint", checkpoint, "--json", str(out / f"eval-{name}.json"), "--quiet", *limit]
                for name, folder in (("pf-willow", "pf-willow-dev"), ("tss", "tss-sample"),
                                     ("weizmann-horse", "weizmann-horse-dev"))]
    steps = [
        ("gpu tests", [py, "-m", "pytest", "-m", "gpu", str(ROOT / "tests" / "test_gpu.py"), "-q", "-rs"]),
        ("training (PF-WILLOW subset + Weizmann horses, lite)", [py, "-m", "macos_lite", "train", *train]),
        *[(f"evaluation on {cmd[5]}", cmd) for cmd in evaluate],
        ("training throughput", [py, str(ROOT / "benchmarks" / "train_throughput.py")]
         + (["--backbones", "lite", "--tiny"] if args.tiny else [])),
        ("evaluation throughput", [py, str(ROOT / "benchmarks" / "eval_throughput.py")]
         + (["--pairs", "8", "--image-size", "64"] if args.tiny else [])),
    ]
    if args.only:
        steps = [(title, cmd) for title, cmd in steps if any(word in title for word in args.only)]
    failed = []
    for title, cmd in steps:
        banner = f"\n=== {title} ===\n$ {' '.join(cmd)}\n"
        print(banner, flush=True)
        log.write(banner)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        text = proc.stdout + f"[{title}: exit {proc.returncode} after {time.perf_counter() - start:.0f} s]\n"
        print(text, flush=True)
        log.write(text)
        if proc.returncode != 0:
            failed.append(title)
    summary = "all steps passed" if not failed else f"failed: {', '.join(failed)}"
    print(summary)
    log.write(summary + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
