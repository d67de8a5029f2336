"""Training throughput of the joint MaCoSNet step, against the bound set by its encoder passes.

For each backbone and batch size it measures, in one run and on one device:

* encoder passes alone: the 9 encoder passes of a triplet step (3 images + 6 affine-warped re-encodings)
  as forward+backward on 9 x B images -> img/s and the encoder-bound triplets/s;
* the full joint step of the default recipe (the five losses of eq 12 and the co-localisation prior
  loss, whose pseudo-masks are made as the trainer makes them, affine->TPS cascade, triplets, backward,
  Adam) with the fast settings (bf16 autocast, channels-last, optionally torch.compile) -> triplets/s, img/s, peak memory,
  and its ratio to the encoder bound;
* the same step in plain fp32 eager -> the speed-up of the fast settings;
* data loading: tuples/s of the training view through a DataLoader with workers, vs the step's need.

Targets (GPU): joint step >= 70 % of the encoder bound, >= 3x the fp32 eager step, data >= 2x the step.
On a CPU it runs with tiny settings and says so (the figures then only show that everything works).

    python benchmarks/train_throughput.py [--backbones lite resnet101] [--batch-sizes 16 64] [--compile] [--tiny]

``--tiny`` (forced on a CPU): batch 2, 96 px, 2 steps -- the figures then only show that everything runs.
"""

from __future__ import annotations

import argparse
import time

import torch

from macos_lite import geometry as G
from macos_lite.backbones import available_backbones, build_perceptual
from macos_lite.device import cap_threads, resolve_device
from macos_lite.losses import LossConfig, MaCoSLoss
from macos_lite.model import MaCoSNet
from macos_lite.pseudo_masks import PseudoMasks
from macos_lite.train_config import TrainConfig


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, steps: int, warmup: int, device) -> float:
    """Seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps


def encoder_step(model, images, fast: bool, device):
    x = images.flatten(0, 1)  # (B*3, 3, S, S) -> 9 passes = the 3 images + 6 warped ones
    x = torch.cat([x, x, x])
    if fast and device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast and device.type == "cuda"):
            feats = model.encoder(x)
        feats[3].float().mean().backward()
    return step


def pseudo_targets(model, images: torch.Tensor, prior_size: int, device) -> torch.Tensor:
    """The targets of the prior loss for a batch of tuples ``(B, T, 3, S, S)``, made as the trainer makes them
    (:meth:`macos_lite.pseudo_masks.PseudoMasks.from_images`: each tuple co-localised as one category)."""
    b, t = images.shape[:2]
    flat = G.resize(images.flatten(0, 1).float().cpu(), (prior_size, prior_size))
    labels = [i // t for i in range(b * t)]
    pseudo = PseudoMasks.from_images(flat, labels, model.encoder, images.shape[-2:], device=device)
    return pseudo.targets(torch.arange(b * t).view(b, t)).to(device)


def joint_step(model, forward, loss_fn, optimizer, images, pseudo, fast: bool, device):
    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast and device.type == "cuda"):
            out = forward(images, tps=True, masks=True)
            total, _ = loss_fn(out, images, pseudo)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    return step


def data_rate(image_size: int, batch: int, workers: int, steps: int) -> float:
    from torch.utils.data import DataLoader

    from macos_lite.data.registry import get_images
    from macos_lite.data.views import WeakTuples

    images = get_images("synthetic", split="train", image_size=image_size, num_images=batch * (steps + 2))
    view = WeakTuples(images, tuple_size=3, num_tuples=batch * (steps + 2))
    loader = DataLoader(view, batch_size=batch, num_workers=workers, pin_memory=torch.cuda.is_available(),
                        persistent_workers=False)
    it = iter(loader)
    next(it)
    start = time.perf_counter()
    n = 0
    for _ in range(steps):
        n += next(it)["images"].shape[0]
    return n / (time.perf_counter() - start)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbones", nargs="+", default=["lite", "resnet101"], choices=available_backbones())
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    p.add_argument("--image-size", type=int, default=240)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--tiny", action="store_true", help="tiny settings (forced on a CPU)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    if device.type != "cuda":
        cap_threads()
    if device.type != "cuda" or args.tiny:
        args.batch_sizes, args.image_size, args.steps, args.warmup, args.workers = [2], 96, 2, 1, 0
        print(f"{'CPU' if device.type != 'cuda' else '--tiny'}: tiny settings (batch 2, 96 px, 2 steps): these "
              "figures only show that the benchmark runs")
    torch.backends.cudnn.benchmark = True
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    header = (f"{'backbone':10s} {'batch':>5s} | {'enc img/s':>9s} {'bound tr/s':>10s} | {'step tr/s':>9s} "
              f"{'img/s':>7s} {'of bound':>8s} {'peak GiB':>8s} | {'fp32 tr/s':>9s} {'speed-up':>8s}")
    print(header)
    print("-" * len(header))
    prior_size = min(args.image_size, TrainConfig(preset="full").resolved().prior_size)
    for backbone in args.backbones:
        model = MaCoSNet(backbone, args.image_size, pretrained=False, backbone_mode="frozen_bn").to(device)
        perceptual = build_perceptual(backbone, pretrained=False).to(device)
        loss_fn = MaCoSLoss(LossConfig(), perceptual)  # the default recipe, as `macos-lite train` runs it
        optimizer = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=1e-5)
        for batch in args.batch_sizes:
            images = torch.rand(batch, 3, 3, args.image_size, args.image_size, device=device)
            pseudo = pseudo_targets(model, images, prior_size, device) if loss_fn.config.active("prior") else None
            rows = {}
            for fast in (True, False):
                if device.type == "cuda":
                    model.to(memory_format=torch.channels_last if fast else torch.contiguous_format)
                forward = torch.compile(model) if (fast and args.compile) else model
                enc = timed(encoder_step(model, images, fast, device), args.steps, args.warmup, device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                step = timed(joint_step(model, forward, loss_fn, optimizer, images, pseudo, fast, device), args.steps,
                             args.warmup, device)
                peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
                rows[fast] = (9 * batch / enc, batch / enc, batch / step, peak)
            (enc_img, bound, tps_fast, peak), (_, _, tps_fp32, _) = rows[True], rows[False]
            print(f"{backbone:10s} {batch:5d} | {enc_img:9.1f} {bound:10.1f} | {tps_fast:9.2f} {9 * tps_fast:7.1f} "
                  f"{tps_fast / bound:8.0%} {peak:8.2f} | {tps_fp32:9.2f} {tps_fast / tps_fp32:7.1f}x")
    need = max(args.batch_sizes)
    rate = data_rate(args.image_size, need, args.workers, args.steps)
    print(f"data loading (synthetic triplets, {args.workers} workers): {rate:.1f} triplets/s "
          f"= {3 * rate:.0f} images/s (compare with the step's triplets/s above; target >= 2x)")


if __name__ == "__main__":
    main()
