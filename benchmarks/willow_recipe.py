"""Score a training recipe on the two PF-WILLOW folds, over several seeds, beside the robust fit of its own features.

A recipe is a set of ``macos-lite train`` arguments. For every fold and seed the script trains on the fold's
training sub-classes (``--seed S`` and the recipe's arguments, ``--dataset pf-willow``), scores ``best.pt`` on the
sub-classes it never saw, and scores ``--method ransac`` on the same pairs at the model's image size, backbone and
feature stages (with a frozen encoder, as the ``demo`` preset has, these are the model's own features; a run whose
encoder was not frozen is named in a note, since the fit then reads the ImageNet features, not those G reads). It prints PCK@0.1
(``kp_bbox``) per run, the margin of the learned model over the fit, and each fold's mean and half-range over the
seeds: the spread between re-trainings of one recipe is as large as the differences between most recipes, so
compare means over seeds.

Folds (of the five development sub-classes): fold A trains on car(G), motorbike(G), winebottle(M) and is scored on
car(M), motorbike(M); fold B the other way round (``benchmarks/willow_folds.py``).

    python benchmarks/willow_recipe.py --data-root DEV --work DIR [--seeds 0 1 2] [--folds A B] \\
        [-- --preset demo --pretrain-steps 600 ...]

DEV holds ``PF-dataset/<sub-class>/`` for the five sub-classes; DIR must not exist yet (or be empty): it receives
the folds (symbolic links to DEV's folders), every run, every JSON summary and ``summary.json``. Nothing is
overwritten. Exit 2 with one message for a bad argument; exit 1 if a training or an evaluation fails (its log named).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from willow_folds import FOLDS, fold_pck  # noqa: E402

SUBCLASSES = tuple(sorted({c for classes in FOLDS.values() for c in classes}))  # the five development sub-classes
ALPHA = "0.1"


class Refused(Exception):
    """A bad argument: the message names it and the fix."""


def build_folds(dev: Path, work: Path, folds=("A", "B")) -> dict:
    """Make ``work/folds/<fold>_{train,test}/PF-dataset/<sub-class>`` links to ``dev``'s sub-class folders.

    Returns ``{fold: (train_root, test_root)}``. Raises :class:`Refused` naming a missing sub-class.
    """
    src = dev / "PF-dataset"
    missing = [c for c in SUBCLASSES if not (src / c).is_dir()]
    if missing:
        raise Refused(f"--data-root {dev}: no folder PF-dataset/{missing[0]} (the five development sub-classes "
                      f"{', '.join(SUBCLASSES)} are needed); point it at the folder that holds PF-dataset/")
    roots = {}
    for fold in folds:
        scored = FOLDS[fold]
        parts = {"train": [c for c in SUBCLASSES if c not in scored], "test": list(scored)}
        for part, classes in parts.items():
            dest = work / "folds" / f"{fold}_{part}" / "PF-dataset"
            dest.mkdir(parents=True)
            for c in classes:
                (dest / c).symlink_to((src / c).resolve(), target_is_directory=True)
        roots[fold] = (dest.parent.parent / f"{fold}_train", dest.parent.parent / f"{fold}_test")
    return roots


def spread(values) -> tuple[float, float]:
    """``(mean, half-range)`` of a list of numbers, e.g. ``[0.38, 0.40, 0.42] -> (0.40, 0.02)``."""
    values = list(values)
    return sum(values) / len(values), (max(values) - min(values)) / 2


def _run(cmd: list[str], log: Path) -> float:
    start = time.time()
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited with {code}; see {log}")
    return time.time() - start


def _pck(path: Path, fold: str) -> float:
    return fold_pck(json.loads(path.read_text()))[fold][ALPHA]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    recipe = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", required=True, type=Path, help="the folder holding PF-dataset/<sub-class>/")
    p.add_argument("--work", required=True, type=Path, help="a new folder for the folds, runs and summaries")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", nargs="+", choices=sorted(FOLDS), default=sorted(FOLDS))
    args = p.parse_args(argv)
    try:
        if args.work.exists() and (not args.work.is_dir() or any(args.work.iterdir())):
            raise Refused(f"--work {args.work} exists and is not empty: name a new folder (no run is overwritten)")
        for flag in ("--out", "--seed", "--dataset", "--data-root"):
            if any(a == flag or a.startswith(flag + "=") for a in recipe):
                raise Refused(f"the recipe sets {flag}, which this script sets itself: drop it after '--'")
        roots = build_folds(args.data_root, args.work, args.folds)
    except Refused as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cli = [sys.executable, "-m", "macos_lite"]
    rows, summary = [], {"recipe": recipe, "seeds": args.seeds, "runs": [], "ransac": {}}
    try:
        for fold in args.folds:
            train_root, test_root = roots[fold]
            for seed in args.seeds:
                run = args.work / "runs" / f"{fold}_seed{seed}"
                minutes = _run(cli + ["train", "--dataset", "pf-willow", "--data-root", str(train_root),
                                      "--seed", str(seed), "--out", str(run), "--no-progress", *recipe],
                               args.work / f"{fold}_seed{seed}.train.log") / 60
                out = args.work / f"{fold}_seed{seed}.json"
                _run(cli + ["evaluate", "--dataset", "pf-willow", "--data-root", str(test_root), "--checkpoint",
                            str(run / "best.pt"), "--json", str(out), "--quiet"], args.work / f"{fold}_seed{seed}.eval.log")
                rows.append((fold, seed, _pck(out, fold), minutes))
                summary["runs"].append({"fold": fold, "seed": seed, "pck@0.1": rows[-1][2], "train_min": minutes})
                print(f"fold {fold} seed {seed}: learned {rows[-1][2]:.3f} ({minutes:.1f} min of training)", flush=True)
            config = json.loads((args.work / "runs" / f"{fold}_seed{args.seeds[0]}" / "config.json").read_text())
            stages = config.get("feature_stages") or "16"
            stages = stages.split("+") if isinstance(stages, str) else [str(s) for s in stages]
            if config.get("backbone_mode") != "frozen" or config.get("pretrain_backbone_mode") not in (None, "frozen"):
                print(f"note: fold {fold}'s encoder was not frozen: the fit reads the ImageNet features, not the "
                      "model's own", flush=True)
            out = args.work / f"{fold}_ransac.json"
            _run(cli + ["evaluate", "--dataset", "pf-willow", "--data-root", str(test_root), "--method", "ransac",
                        "--image-size", str(config["image_size"]), "--backbone", str(config["backbone"]),
                        "--feature-stages", *stages, "--json", str(out), "--quiet"], args.work / f"{fold}_ransac.log")
            summary["ransac"][fold] = _pck(out, fold)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"\nPCK@0.1 (kp_bbox) on the sub-classes each fold never trained on; recipe: {' '.join(recipe) or '(defaults)'}")
    print("| fold | seed | learned | ransac of its own features | margin | training min |")
    print("|---|---:|---:|---:|---:|---:|")
    for fold, seed, pck, minutes in rows:
        r = summary["ransac"][fold]
        print(f"| {fold} | {seed} | {pck:.3f} | {r:.3f} | {pck - r:+.3f} | {minutes:.1f} |")
    for fold in args.folds:
        mean, half = spread(pck for f, _, pck, _ in rows if f == fold)
        summary.setdefault("mean", {})[fold] = {"pck@0.1": mean, "half_range": half,
                                                "margin": mean - summary["ransac"][fold]}
        print(f"| {fold} | mean | {mean:.3f} ± {half:.3f} | {summary['ransac'][fold]:.3f} | "
              f"{mean - summary['ransac'][fold]:+.3f} | |")
    (args.work / "summary.json").write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
