"""Print PCK per PF-WILLOW fold from the JSON summary of `macos-lite evaluate --dataset pf-willow ... --json FILE`.

Fold A is scored on car(M), motorbike(M); fold B on car(G), motorbike(G), winebottle(M) (the README's folds of
the five development sub-classes). Every sub-class has 90 ordered pairs, so a fold's mean over its pairs is the
mean of its sub-classes' means.

    python benchmarks/willow_folds.py ransac240.json [more.json ...]
"""

from __future__ import annotations

import argparse
import json

FOLDS = {"A": ("car(M)", "motorbike(M)"), "B": ("car(G)", "motorbike(G)", "winebottle(M)")}


def fold_pck(summary: dict, normalizer: str = "kp_bbox") -> dict:
    """``{fold: {alpha: PCK}}`` over the pairs of each fold's sub-classes (weighted by their pair counts)."""
    per_class = summary["per_class_by_normalizer"][normalizer]
    counts = summary["num_pairs_per_class"]
    out = {}
    for fold, classes in FOLDS.items():
        present = [c for c in classes if c in per_class]
        if not present:
            continue
        total = sum(counts[c] for c in present)
        out[fold] = {a: sum(per_class[c][a] * counts[c] for c in present) / total for a in per_class[present[0]]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+")
    parser.add_argument("--normalizer", default="kp_bbox")
    args = parser.parse_args()
    for path in args.json:
        s = json.load(open(path))
        m = s["method"]
        for fold, values in fold_pck(s, args.normalizer).items():
            print(f"{path}: {m['name']} {m['image_size'][0]} px, fold {fold}, {args.normalizer}: "
                  + " / ".join(f"{values[a]:.3f}" for a in sorted(values, key=float))
                  + f" (alpha {', '.join(sorted(values, key=float))}), fallbacks {s.get('num_fallback', 0)}")


if __name__ == "__main__":
    main()
