"""``macos-lite demo``: one synthetic pair through MaCoSNet, drawn as a figure.

Without ``--checkpoint`` it first trains G briefly with synthetic strong supervision (the smoke preset's
pre-training, seconds on a CPU) so that the transform means something.

Notebook 10 (interactive demos) shows the same pair interactively.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from . import paths


NUM_PAIRS = 20  # the demo's synthetic validation pairs (--pair 0..19)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="a macos_lite checkpoint (default: a quick pre-training)")
    p.add_argument("--pair", type=int, default=0, help=f"index of the synthetic validation pair (0..{NUM_PAIRS - 1})")
    p.add_argument("--out", help="folder for demo.png (default runs/demo-<time>)")
    p.add_argument("--device", default="auto")
    p.add_argument("--overwrite", action="store_true",
                   help="replace demo.png and demo.json of an earlier demo in --out (without it, demo refuses)")


def run(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .checkpoints import model_from_checkpoint
    from .data.registry import get_pairs
    from .device import cap_threads, resolve_device
    from .evaluation import ModelMethod, evaluate_matching
    from .training import Trainer, TrainConfig
    from .viz import pair_figure

    from .cli_common import UserError, atomic_write, writable_file, writable_folder

    if not 0 <= args.pair < NUM_PAIRS:
        raise UserError(f"--pair {args.pair}: the demo shows one of its {NUM_PAIRS} synthetic validation pairs; "
                        f"choose 0..{NUM_PAIRS - 1}")
    cap_threads()
    device = resolve_device(args.device)
    out = writable_folder(Path(args.out) if args.out else paths.runs_root() / f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    for name in ("demo.png", "demo.json"):  # before the work: never replace an earlier demo silently
        writable_file(out / name, "--out", overwrite=getattr(args, "overwrite", False))
    if args.checkpoint:
        model = model_from_checkpoint(args.checkpoint, device)
    else:
        print("no --checkpoint: pre-training the transformation predictor for a few seconds ...")
        trainer = Trainer(TrainConfig(preset="smoke", out=str(out / "pretrain"), epochs=0, device=str(device),
                                      progress=False, val_dataset="none", overwrite=True))
        trainer.fit()
        model = trainer.model.eval()
    size = model.image_size[0]
    pairs = get_pairs("synthetic", split="val", image_size=size, num_pairs=NUM_PAIRS)
    item = pairs[args.pair]
    prediction = model.predict(item["image_A"].to(device), item["image_B"].to(device))
    fig = pair_figure(item, {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in prediction.items()})
    atomic_write(out / "demo.png", lambda f: fig.savefig(f, dpi=120, format="png"))
    scores = {name: evaluate_matching(method, pairs, normalizers=("image",), device=device).pck()
              for name, method in (("identity", __import__("macos_lite.evaluation", fromlist=["IdentityMethod"])
                                    .IdentityMethod()), ("model", ModelMethod(model)))}
    atomic_write(out / "demo.json", json.dumps({"pck@0.1": scores, "pairs": len(pairs)}, indent=2))
    print(f"PCK@0.1 on {len(pairs)} synthetic pairs: identity {scores['identity']:.3f}, model {scores['model']:.3f}")
    print(f"figure: {out / 'demo.png'}")
    return 0
