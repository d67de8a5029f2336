"""``macos-lite assign``: write the student versions of solution notebooks, plus ``manifest.json``.

``macos-lite assign notebooks/ --out student/`` reads every ``*.ipynb`` of the folders (or the notebooks)
given, and writes to ``--out`` the same file names with the solutions blanked, the hidden checks and
all outputs removed (see :mod:`macos_lite.assignments` for the conventions). Nothing is written when a
notebook breaks the conventions; the error names the notebook and the cell.

Run again, it refreshes the copies it wrote and never replaces one a learner has edited: the new version
of an edited notebook goes beside it as ``NAME.new.ipynb`` (``make lab`` relies on this).
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
    notes: list = []
    try:
        manifest = make_assignment(args.sources, args.out, notes=notes)
    except AssignmentError as exc:
        from macos_lite.cli_common import command_error

        return command_error(exc)  # the sources or --out are wrong: a user mistake
    except OSError as exc:  # --out cannot be created or written
        from macos_lite.cli_common import command_error

        return command_error(exc, message=f"--out {args.out}: cannot write the student notebooks there "
                                          f"({exc.strerror or exc}); choose a folder you can write")
    outcomes = dict(notes)
    for entry in manifest["notebooks"]:
        names = ", ".join(f"{e['name']} ({e['points']:g}, {len(e['hidden_cases'])} hidden)"
                          for e in entry["exercises"]) or "no exercises"
        questions = (f"; {len(entry['questions'])} written questions ({entry['question_points']:g})"
                     if entry["questions"] else "")
        outcome = outcomes.get(entry["notebook"], "")
        if outcome == "kept":
            outcome = " [your edited copy kept; nothing new]"
        elif outcome.startswith("new: "):
            outcome = (f" [your edited copy kept; the new version is {outcome[5:]}: compare, then rename it to "
                       "use it]")
        else:
            outcome = ""
        print(f"{entry['notebook']}: {names}{questions}{outcome}")
    count, points = len(manifest["notebooks"]), manifest["total_points"]
    with_work = sum(1 for e in manifest["notebooks"] if e["exercises"])
    exercises = sum(len(e["exercises"]) for e in manifest["notebooks"])
    questions = sum(len(e["questions"]) for e in manifest["notebooks"])
    print(f"{count} student notebooks, {exercises} exercises in {with_work} notebooks ({points:g} points), "
          f"{questions} written questions ({manifest['total_question_points']:g} points, graded by hand), "
          f"in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m macos_lite.assignments.assign ...``: the same as ``macos-lite assign ...``."""
    parser = argparse.ArgumentParser(prog="macos-lite assign", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
