"""The encoder's speed in the two memory orders of its input: contiguous (N, C, H, W) against channels-last.

    python benchmarks/encoder_memory_format.py [--backbone lite] [--sizes 128 240] [--batch 16] [--repeats 5]

Prints milliseconds per batch of the encoder, forward only (``no_grad``, as the frozen encoder and the
co-localisation prior run it) and forward + backward to the input images (as the contrastive loss runs the
perceptual net), and the largest difference of the outputs (the same values). The package's encoders, decoder and
perceptual net compute channels-last by default (``macos_lite.backbones.set_memory_format``; ``macos-lite train
--channels-last off`` turns it off).
"""

from __future__ import annotations

import argparse
import time

import torch

from macos_lite.backbones import available_backbones, build_encoder, set_memory_format
from macos_lite.device import cap_threads


def _time(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1000


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default="lite", choices=available_backbones())
    p.add_argument("--sizes", nargs="+", type=int, default=[128, 240])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    cap_threads()
    encoder = build_encoder(args.backbone, pretrained=False, mode="frozen").eval()
    print(f"{args.backbone}, batch {args.batch}, {torch.get_num_threads()} threads (ms per batch)")
    print("size | order | forward (no_grad) | forward + backward to the input")
    for size in args.sizes:
        images = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(0))
        outputs = {}
        for name, memory_format in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            set_memory_format(memory_format, encoder)

            def forward():
                with torch.no_grad():
                    outputs[name] = encoder(images)[3]

            def backward():
                encoder(images.clone().requires_grad_(True))[3].square().mean().backward()

            print(f"{size} | {name} | {_time(forward, args.repeats):.0f} | {_time(backward, args.repeats):.0f}")
        diff = (outputs["contiguous"] - outputs["channels_last"]).abs().max().item()
        print(f"{size}: largest difference of the stride-16 maps {diff:.1e}")


if __name__ == "__main__":
    main()
