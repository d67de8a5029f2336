"""Print the reference points of keypoint matching on a pair set: identity, zero-shot nearest neighbour of the
frozen ImageNet features, and the best affine fit of the true keypoints (see macos_lite.references).

    python benchmarks/matching_references.py --dataset pf-willow --data-root DIR [--image-size 128]
"""

from __future__ import annotations

import argparse
import json

from macos_lite.data.registry import get_pairs
from macos_lite.device import cap_threads
from macos_lite.references import reference_pck


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pf-willow")
    p.add_argument("--data-root", default=None)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--feature-stride", type=int, default=16, choices=(8, 16))
    p.add_argument("--json", default=None, help="also write the numbers to this file")
    args = p.parse_args()
    cap_threads()
    pairs = get_pairs(args.dataset, root=args.data_root, image_size=args.image_size)
    res = reference_pck(pairs, image_size=args.image_size, feature_stride=args.feature_stride)
    print(f"{args.dataset} ({len(pairs)} pairs, {args.image_size} px, stride {args.feature_stride})")
    for method, by_norm in res.items():
        cells = "  ".join(f"{n}: " + "/".join(f"{v:.3f}" for v in by_alpha.values()) for n, by_alpha in by_norm.items())
        print(f"  {method:18s} PCK@0.05/0.1/0.15  {cells}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"num_pairs": len(pairs), "image_size": args.image_size, **res}, f, indent=2)


if __name__ == "__main__":
    main()
