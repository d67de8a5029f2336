"""``macos-lite assign``: write the student versions of solution notebooks, plus ``manifest.json``.

``macos-lite assign notebooks/ --out student/`` reads every ``*.ipynb`` of the folders (or the notebooks)
given, and writes to ``--out`` the same file names with the solutions blanked, the hidden checks and
all outputs removed (see :mod:`macos_lite.assignments` for the conventions). Nothing is written when a
notebook breaks the conventions; the error names the notebook and the cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .notebook import MANIFEST, AssignmentError, make_assignment

__all__ = ["add_arguments", "main", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``assign`` options to ``parser`` (a subcommand parser of ``macos-lite``)."""
    parser.add_argument("sources", nargs="+", metavar="SOURCE_DIR_OR_NOTEBOOKS",
                        help="solution notebooks, or folders holding them")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help=f"folder for the student notebooks and {MANIFEST}")


def run(args: argparse.Namespace) -> int:
    """Carry out parsed ``assign`` arguments; returns the process exit code."""
    try:
        manifest = make_assignment(args.sources, args.out)
    except AssignmentError as exc:
        from macos_lite.cli_common import debug_enabled

        if debug_enabled():
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2  # the sources or --out are wrong: a user mistake
    except OSError as exc:  # --out cannot be created or written
        from macos_lite.cli_common import debug_enabled

        if debug_enabled():
            raise
        print(f"error: --out {args.out}: cannot write the student notebooks there ({exc.strerror or exc}); choose "
              "a folder you can write", file=sys.stderr)
        return 2
    for entry in manifest["notebooks"]:
        names = ", ".join(f"{e['name']} ({e['points']:g})" for e in entry["exercises"]) or "no exercises"
        print(f"{entry['notebook']}: {names}")
    count, points = len(manifest["notebooks"]), manifest["total_points"]
    print(f"{count} student notebooks, {points:g} points, in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m macos_lite.assignments.assign ...``: the same as ``macos-lite assign ...``."""
    parser = argparse.ArgumentParser(prog="macos-lite assign", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
