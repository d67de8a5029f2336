"""Evaluation throughput: pairs/s of keypoint-PCK evaluation (batched), identity vs a MaCoSNet.

    python benchmarks/eval_throughput.py [--dataset synthetic|pf-willow] [--data-root DIR] [--backbone lite]
                                         [--batch-sizes 8 32] [--pairs 200]
"""

from __future__ import annotations

import argparse
import time

import torch

from macos_lite.device import cap_threads, resolve_device
from macos_lite.evaluation import IdentityMethod, ModelMethod, evaluate_matching
from macos_lite.model import MaCoSNet


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-root")
    p.add_argument("--backbone", default="lite")
    p.add_argument("--image-size", type=int, default=240)
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[8, 32])
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if device.type != "cuda":
        cap_threads()
        args.workers = 0
    from macos_lite.data.registry import get_pairs

    kw = {"num_pairs": args.pairs} if args.dataset == "synthetic" else {}
    pairs = get_pairs(args.dataset, root=args.data_root, split="test" if args.dataset != "synthetic" else "val",
                      image_size=args.image_size, **kw)
    pairs = torch.utils.data.Subset(pairs, range(min(args.pairs, len(pairs))))
    model = MaCoSNet(args.backbone, args.image_size, pretrained=False).to(device).eval()
    print(f"{args.dataset}: {len(pairs)} pairs at {args.image_size} px on {device}")
    for name, method in (("identity", IdentityMethod()), (f"{args.backbone} cascade", ModelMethod(model))):
        for batch in args.batch_sizes:
            start = time.perf_counter()
            evaluate_matching(method, pairs, batch_size=batch, device=device, num_workers=args.workers)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - start
            print(f"  {name:18s} batch {batch:3d}: {len(pairs) / dt:8.1f} pairs/s ({dt:.1f} s)")


if __name__ == "__main__":
    main()
