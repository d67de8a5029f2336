"""The ``macos-lite evaluate`` command: ``--dataset NAME (--checkpoint FILE | --method identity) ...``.

The protocols themselves live in :mod:`macos_lite.evaluation`; this module only parses options, checks
the output paths before the long work, prints the table and writes the JSON.

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

import argparse
import errno
import sys
import tempfile
import time
from pathlib import Path

from . import metrics as M
from . import report
from .backbones import available_backbones
from .cli_common import (NoSpaceError, UserError, check_fits_in_memory, command_error, non_negative_int, number,
                         pair_memory, positive_int, writable_file)
from .data.imageio import DataError
from .data.registry import NAMES
from .device import cap_threads, resolve_device
from .evaluation.verified import MIN_CHECK_SIZE
from .evaluation import (DEFAULT_IMAGE_SIZE, DIRECTIONS, KINDS, PROTOCOLS, DDTMethod, EllipseMethod,
                         EvaluationError, IdentityMethod, RansacMethod, TeacherCheckedMethod, VerifiedMethod,
                         evaluate_dataset, method_from_checkpoint, write_json)


DEFAULT_PARTNERS = 3  # co-segmentation: a model's mask of an image is the mean over this many partners
VERIFY_CHOICES = ("none", "ransac", "ddt")  # --verify: a learned map checked by RANSAC, a learned mask by DDT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` options to ``parser`` (a subcommand parser of ``macos-lite``)."""
    parser.add_argument("--dataset", required=True, choices=NAMES, metavar="NAME",
                        help=f"benchmark: {', '.join(NAMES)}")
    parser.add_argument("--data-root", type=Path, default=None, metavar="DIR",
                        help="the dataset's folder (default: $MACOS_LITE_DATA/NAME, where `macos-lite download` puts it)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--checkpoint", type=Path, metavar="FILE", help="a checkpoint written by `macos-lite train`")
    who.add_argument("--method", choices=("identity", "ellipse", "ddt", "ransac", "ransac+tps"),
                     help="a reference instead of a model: identity (no motion, all-foreground mask), ellipse (a "
                          "centred ellipse mask), ddt (training-free co-localisation of the evaluated set with the "
                          "encoder's ImageNet features; no masks used), ransac (mutual nearest neighbours of the "
                          "frozen encoder's features and a RANSAC affine fit; ransac+tps: refined by a TPS)")
    parser.add_argument("--backbone", choices=available_backbones(), default="lite",
                        help="the frozen encoder of --method ransac (default: lite)")
    parser.add_argument("--feature-stages", type=int, nargs="+", default=[16], metavar="STRIDE",
                        help="--method ransac: the encoder stages whose L2-normalised maps are concatenated on the "
                             "correlation grid, by stride: 8, 16, 32 (default: 16; e.g. 16 32)")
    parser.add_argument("--refine", choices=("none", "edges"), default="none",
                        help="co-segmentation masks of a model or ddt: none (default; the network's mask "
                             "thresholded at 0.5) or edges (snapped to the image's colour edges by a guided filter, "
                             f"at {DEFAULT_IMAGE_SIZE} px or more)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the summary to this JSON file")
    parser.add_argument("--split", default=None,
                        help="pf-pascal: train/val/test; spair: trn/val/test; icoseg: train/test/all (a fixed group "
                             "rule) (default: test)")
    parser.add_argument("--alpha", type=number(float, above=0), nargs="+", default=None, metavar="A",
                        help="PCK thresholds (default: the benchmark's, e.g. 0.05 0.1 0.15 for PF-WILLOW)")
    parser.add_argument("--normalizer", nargs="+", default=None, choices=M.NORMALIZERS,
                        help="PCK normalisers, the first is primary (default: the benchmark's)")
    parser.add_argument("--direction", choices=DIRECTIONS, default=None,
                        help="keypoint transfer: B_to_A (PF) or A_to_B (SPair); default: the benchmark's")
    parser.add_argument("--kind", choices=KINDS, default="cascade", help="transform of a model (default: cascade)")
    parser.add_argument("--verify", choices=VERIFY_CHOICES, default="none",
                        help="--checkpoint only: ransac checks each pair's learned map against the RANSAC fit of the "
                             "model's own features and takes the fit where clearly more mutual matches agree with "
                             "it (macos_lite.evaluation.verified; the JSON counts num_replaced); ddt checks each "
                             "learned mask against the DDT co-localisation it was trained from and averages the two "
                             "where they agree (macos_lite.evaluation.teacher_checked; the JSON counts num_trusted; "
                             "co-segmentation benchmarks only) (default: none)")
    parser.add_argument("--verify-size", type=positive_int, default=None, metavar="S",
                        help="with --verify ransac: compute the check's features at S x S pixels (a finer grid of "
                             "the same encoder, e.g. 240 for 15 x 15; a finer grid than the model's takes the fit "
                             "wherever it agrees with at least as many matches) and load the images at least that "
                             "large (default: the model's input size)")
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default: auto)")
    parser.add_argument("--max-pairs", type=positive_int, default=None, metavar="N",
                        help="evaluate only the first N pairs / directed TSS items / images")
    parser.add_argument("--flow-out", type=Path, default=None, metavar="DIR",
                        help="tss: also write the flows as <DIR>/<subset>/<pair>/flow<d>.flo for the official kit")
    parser.add_argument("--partners", type=positive_int, default=DEFAULT_PARTNERS, metavar="K",
                        help="co-segmentation with a model: each image's mask is the mean over K partners of its "
                             f"category (default: {DEFAULT_PARTNERS})")
    parser.add_argument("--image-size", type=positive_int, default=None, metavar="S",
                        help=f"resize images to S x S (default: the model's, {DEFAULT_IMAGE_SIZE} for a baseline)")
    parser.add_argument("--empty-gt", choices=M.EMPTY_GT_POLICIES, default="skip",
                        help="images with empty ground truth in J: skip (default) or score")
    parser.add_argument("--num-workers", type=non_negative_int, default=0, metavar="N", help="data-loading processes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --json file or the .flo files already in --flow-out (without it, "
                             "evaluate refuses before any work)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def check_output_path(path, option: str = "--json", overwrite: bool = True) -> Path:
    """Make sure ``path`` can be written *before* a long evaluation (:func:`macos_lite.cli_common.writable_file`):
    its folder is created and probed; without ``overwrite`` an existing file is refused. Raises
    :class:`~macos_lite.cli_common.UserError` naming ``option`` and the path."""
    return writable_file(path, option, overwrite=overwrite, consequence="Nothing was evaluated.")


def _write_somewhere_safe(summary: dict, wanted: Path, exc: BaseException) -> str:
    """Write the summary next to the current folder or in the temporary folder when ``wanted`` failed late;
    returns a sentence saying where it went."""
    name = f"{wanted.stem or 'results'}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            return f"the results were written to {write_json(summary, folder / name)} instead"
        except OSError:
            continue
    return "the results could not be written anywhere; they are printed above"


def run(args: argparse.Namespace) -> int:
    """Carry out parsed ``evaluate`` arguments: print the table, write the JSON; returns the exit code.

    Exit codes: 0 done; 2 an input or option is wrong (message on stderr, nothing evaluated), or the disk
    filled up while writing the flows or the JSON (the scores are printed, the JSON written elsewhere and
    the message says where); 1 the JSON could not be written for another reason (written elsewhere too).
    """
    cap_threads()
    if args.flow_out is not None and args.dataset != "tss":
        print("error: --flow-out is for --dataset tss only", file=sys.stderr)
        return 2
    if args.verify_size is not None and args.verify != "ransac":
        print("error: --verify-size sets the size of --verify ransac's features: add --verify ransac, or drop "
              "--verify-size", file=sys.stderr)
        return 2
    if args.verify_size is not None and args.verify_size < MIN_CHECK_SIZE:
        print(f"error: --verify-size {args.verify_size} is below one stride-32 cell: give {MIN_CHECK_SIZE} pixels "
              "or more (240 for the 15 x 15 grid)", file=sys.stderr)
        return 2
    if args.verify != "none" and args.checkpoint is None:
        alone = "--method ransac is the fit alone" if args.verify == "ransac" else "--method ddt is the teacher alone"
        print(f"error: --verify {args.verify} checks a learned model: give --checkpoint FILE ({alone})",
              file=sys.stderr)
        return 2
    task = PROTOCOLS[args.dataset].task
    if args.verify == "ddt" and task == "matching":
        print(f"error: --verify ddt checks co-segmentation masks and {args.dataset} has none: use --verify ransac "
              "to check a learned matching", file=sys.stderr)
        return 2
    if args.verify == "ransac" and task == "coseg":
        print(f"error: --verify ransac checks a learned matching and {args.dataset} scores masks only: use --verify "
              "ddt to check a learned co-segmentation", file=sys.stderr)
        return 2
    try:
        if args.json is not None:  # before the long work: a bad path must not cost an evaluation
            check_output_path(args.json, "--json", overwrite=args.overwrite)
        if args.flow_out is not None:
            if Path(args.flow_out).exists() and not Path(args.flow_out).is_dir():
                raise UserError(f"--flow-out {args.flow_out} is a file, not a folder; give a folder for the flows")
            check_output_path(Path(args.flow_out) / "probe.flo", "--flow-out")
        device = resolve_device(args.device)
        if args.image_size is not None:  # refused before any allocation
            check_fits_in_memory(pair_memory(args.image_size, args.batch_size, args.checkpoint is not None),
                                 f"--image-size {args.image_size} (with --batch-size {args.batch_size})")
        if args.checkpoint is not None:
            method = method_from_checkpoint(args.checkpoint, device, args.kind, refine=args.refine,
                                            partners=args.partners)
            if args.verify == "ransac":
                method = VerifiedMethod(method, image_size=args.verify_size)
            elif args.verify == "ddt":
                method = TeacherCheckedMethod(method, device=device)
        elif args.method == "ddt":
            method = DDTMethod(refine=args.refine, device=device)
        elif args.method in ("ransac", "ransac+tps"):
            method = RansacMethod(image_size=args.image_size or DEFAULT_IMAGE_SIZE, tps=args.method == "ransac+tps",
                                  backbone=args.backbone, device=device, feature_stages=args.feature_stages)
        elif args.method == "ellipse":
            method = EllipseMethod()
        else:
            method = IdentityMethod()
        image_size = args.image_size or getattr(method, "image_size", (DEFAULT_IMAGE_SIZE,))[0]
        if args.image_size is None and args.refine == "edges":  # the edges of a larger image are worth following
            image_size = max(image_size, DEFAULT_IMAGE_SIZE)
        if args.image_size is None and args.verify_size is not None:  # the check's features need the pixels
            image_size = max(image_size, args.verify_size)
        summary = evaluate_dataset(
            args.dataset, method, root=args.data_root, split=args.split, image_size=image_size,
            alphas=args.alpha, normalizers=args.normalizer, direction=args.direction, batch_size=args.batch_size,
            device=device, max_pairs=args.max_pairs, flow_out=args.flow_out, partners=args.partners,
            empty_gt=args.empty_gt, num_workers=args.num_workers, progress=not args.quiet,
            flow_overwrite=args.overwrite)
    except (DataError, FileNotFoundError, EvaluationError, ValueError, RuntimeError, PermissionError,
            IsADirectoryError, UserError) as exc:
        return command_error(exc)
    print(report.format_text(summary))
    for warning in summary.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    code = 0
    if args.json is not None:
        try:
            print(f"wrote {write_json(summary, args.json, overwrite=args.overwrite)}")
        except OSError as exc:
            where = _write_somewhere_safe(summary, Path(args.json), exc)
            full = isinstance(exc, NoSpaceError) or exc.errno in (errno.ENOSPC, errno.EDQUOT)
            why = "no space left on device" if full else \
                "it appeared while evaluating, and is left as it is" if isinstance(exc, FileExistsError) else \
                exc.strerror or exc
            print(f"error: --json {args.json}: could not write it ({why}); {where}", file=sys.stderr)
            code = 2 if full or isinstance(exc, FileExistsError) else 1
    for key in ("flow_out_error",):
        if summary.get(key):  # the scores above stand; the flows are incomplete
            print(f"error: {summary[key]}", file=sys.stderr)
            code = 2
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m macos_lite.evaluate_cli ...``: the same as ``macos-lite evaluate ...``."""
    parser = argparse.ArgumentParser(prog="macos-lite evaluate",
                                     description="Evaluate a checkpoint or a baseline on a benchmark.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
