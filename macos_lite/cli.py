"""The ``macos-lite`` command (also ``python -m macos_lite``).

    macos-lite course     run every notebook headless into runs/<timestamp>/ (the course's main job)
    macos-lite train      weakly supervised training (synthetic or a benchmark)
    macos-lite evaluate   a checkpoint or the identity baseline on a benchmark's protocol
    macos-lite download   fetch, verify and extract a benchmark
    macos-lite demo       one synthetic pair: predicted transform, keypoints and masks, as a figure
    macos-lite assign     generate student notebooks from the solution notebooks
    macos-lite grade      grade a folder of submitted notebooks
    macos-lite gradebook  merge the teacher's manual grades into a graded batch
    macos-lite solution   print the solution of a course exercise (to compare on purpose)

Each sub-command lives in its module as ``add_arguments(parser)`` + ``run(args) -> exit code``.

Errors: a mistake in the command or its inputs (a missing file, a bad option value, a dataset that is not
there) ends with exit code 2 and one paragraph on stderr saying what is wrong and how to fix it; anything
unexpected ends with exit code 1 and a one-line summary. ``--debug`` (anywhere on the command line) or
``MACOS_LITE_DEBUG=1`` shows the full traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import cli_common
# the helpers every sub-command shares live in cli_common; these names stay importable from here
from .cli_common import (DEBUG_ENV, NoSpaceError, UserError, bounds_text, debug_enabled,  # noqa: F401
                         non_negative_int, number, paragraph, positive_int, within_bounds, writable_file,
                         writable_folder)

# sub-command -> (module, help); modules are imported only when their command runs
COMMANDS = {
    "course": ("macos_lite.course_runner", "run the course notebooks headless into runs/<timestamp>/"),
    "train": ("macos_lite.train_cli", "train MaCoSNet with weak supervision"),
    "evaluate": ("macos_lite.evaluate_cli", "evaluate a checkpoint or the identity baseline on a benchmark"),
    "download": ("macos_lite.data.download", "download, verify and extract a benchmark"),
    "demo": ("macos_lite.demo", "predict and plot a synthetic pair (transform, keypoints, masks)"),
    "assign": ("macos_lite.assignments", "generate student versions of the solution notebooks"),
    "grade": ("macos_lite.assignments", "grade a folder of submitted notebooks"),
    "gradebook": ("macos_lite.assignments.gradebook", "merge the teacher's manual grades into a graded batch"),
    "solution": ("macos_lite.assignments.solution", "print the solution of a course exercise (to compare)"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from macos_lite import __version__

    parser = argparse.ArgumentParser(prog="macos-lite", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"macos_lite {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (also ${DEBUG_ENV}=1); accepted anywhere")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:  # only the chosen command's module is imported
            mod = importlib.import_module(module)
            if hasattr(mod, f"add_{name}_arguments"):  # a module serving several commands (assign, grade)
                getattr(mod, f"add_{name}_arguments")(p)
                p.set_defaults(func=getattr(mod, f"run_{name}"))
            else:
                mod.add_arguments(p)
                p.set_defaults(func=mod.run)
    return parser


def _user_error_types() -> tuple[type, ...]:
    """Exceptions that mean "the input or the command is wrong", not "the program is wrong"."""
    types: list[type] = [UserError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                         PermissionError, FileExistsError]
    for module, name in (("macos_lite.data.download", "DownloadError"), ("macos_lite.assignments.notebook",
                                                                   "AssignmentError"),
                         ("macos_lite.evaluation", "EvaluationError"), ("macos_lite.checkpoints", "CheckpointError"),
                         ("macos_lite.training", "NonFiniteLossError")):
        mod = sys.modules.get(module)  # only what the command imported can have been raised
        if mod is not None and hasattr(mod, name):
            types.append(getattr(mod, name))
    return tuple(types)


def _is_machine_condition(exc: BaseException) -> bool:
    """An ``OSError`` that the user fixes, not the program: a read-only disk, no permission, a full disk."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC,
                                                      errno.EDQUOT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST)


def main(argv: list[str] | None = None) -> int:
    """Run ``macos-lite argv``; returns the exit code (0 ok, 1 unexpected failure, 2 usage/input error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    given = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        debug = given or debug_enabled()
    except UserError as exc:  # a bad $MACOS_LITE_DEBUG
        print(f"error: {paragraph(exc)}", file=sys.stderr)
        return 2
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous, cli_common._debug = cli_common._debug, given
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during training (see macos_lite.stop_signals)
        if debug:
            raise
        signum = int(getattr(exc, "signum", 2))
        print(f"\nmacos-lite {args.command}: {paragraph(exc) or 'interrupted'}", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # noqa: BLE001 -- the one place that turns errors into messages
        if debug:
            raise
        if isinstance(exc, _user_error_types()) or _is_machine_condition(exc):
            print(f"error: {paragraph(exc)}", file=sys.stderr)
            return 2
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: macos-lite {args.command} failed unexpectedly: {type(exc).__name__}: {first} "
              f"(run again with --debug, or {DEBUG_ENV}=1, to see the traceback)", file=sys.stderr)
        return 1
    finally:
        cli_common._debug = previous


if __name__ == "__main__":
    sys.exit(main())
