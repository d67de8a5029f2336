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
import functools
import importlib
import os
import re
import sys

DEBUG_ENV = "MACOS_LITE_DEBUG"
_debug = False  # set by main() for the command it runs (--debug)

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


class UserError(Exception):
    """A mistake in a command's arguments or inputs: the message says what is wrong and how to fix it.

    Raised by the sub-commands; :func:`main` prints it as one paragraph and exits with code 2.
    """


def bounds_text(kind=float, minimum=None, maximum=None, above=None, below=None) -> str:
    """The phrase "a number above 0" (or "a whole number from 0 to 1" ...) that names what a setting accepts."""
    if minimum is not None and maximum is not None:
        parts = [f"from {minimum} to {maximum}"]
    else:
        parts = [f"of at least {minimum}" if minimum is not None else "",
                 f"of at most {maximum}" if maximum is not None else ""]
    parts += [f"above {above}" if above is not None else "", f"below {below}" if below is not None else ""]
    return " ".join(["a whole number" if kind is int else "a number", " and ".join(x for x in parts if x)]).strip()


def within_bounds(value, minimum=None, maximum=None, above=None, below=None) -> bool:
    """Whether ``value`` is finite and within the bounds (``minimum``/``maximum`` inclusive, ``above``/``below``
    exclusive)."""
    import math

    return math.isfinite(value) and not ((minimum is not None and value < minimum) or (
        maximum is not None and value > maximum) or (above is not None and value <= above) or (
        below is not None and value >= below))


@functools.lru_cache(maxsize=None)
def number(kind=float, minimum=None, maximum=None, above=None, below=None):
    """argparse type: a finite ``kind`` (int or float) within the given bounds, else a message naming them.

    ``minimum``/``maximum`` are inclusive, ``above``/``below`` exclusive. NaN and infinities are refused; text
    that is not a ``kind`` is named as such. The same bounds give the same function (``positive_int`` is
    ``number(int, minimum=1)``).

    Example:
        >>> number(float, above=0)("3e-4")
        0.0003
        >>> number(float, minimum=0, maximum=1)("1.5")
        Traceback (most recent call last):
        argparse.ArgumentTypeError: must be a number from 0 to 1, got 1.5
    """
    bounds = dict(minimum=minimum, maximum=maximum, above=above, below=below)
    what = bounds_text(kind, **bounds)

    def convert(text: str):
        try:
            value = _int(text) if kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}") from None
        if not within_bounds(value, **bounds):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    convert.__name__ = kind.__name__  # argparse names the type in some messages
    return convert


positive_int = number(int, minimum=1)  # --batch-size, --steps-per-epoch ...
non_negative_int = number(int, minimum=0)  # --epochs, --pretrain-steps ...


def writable_folder(path, option: str = "--out") -> "Path":
    """Create folder ``path`` (parents too) and check that files can be written in it.

    Returns it as a ``Path``; raises :class:`UserError` naming ``option`` and the path otherwise (a file in
    the way, no permission, a read-only disk).
    """
    import tempfile
    from pathlib import Path

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise UserError(f"{option} {path}: cannot create or write this folder ({why}); choose a folder you can "
                        "write") from None
    return path


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


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


def debug_enabled() -> bool:
    """True when ``--debug`` was given to the running command or ``MACOS_LITE_DEBUG`` is set (not 0):
    commands that print their own error messages re-raise instead, so that the traceback shows."""
    return _debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def paragraph(text: str) -> str:
    """``text`` as one paragraph: no blank lines, no trailing space."""
    return re.sub(r"\n\s*\n+", "\n", str(text).strip())


def main(argv: list[str] | None = None) -> int:
    """Run ``macos-lite argv``; returns the exit code (0 ok, 1 unexpected failure, 2 usage/input error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    global _debug
    given = "--debug" in argv
    debug = given or debug_enabled()
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous, _debug = _debug, given
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during training (see macos_lite.training)
        if debug:
            raise
        signum = int(getattr(exc, "signum", 2))
        print(f"\nmacos-lite {args.command}: {paragraph(exc) or 'interrupted'}", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # noqa: BLE001 -- the one place that turns errors into messages
        if debug:
            raise
        if isinstance(exc, _user_error_types()):
            print(f"error: {paragraph(exc)}", file=sys.stderr)
            return 2
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: macos-lite {args.command} failed unexpectedly: {type(exc).__name__}: {first} "
              f"(run again with --debug, or {DEBUG_ENV}=1, to see the traceback)", file=sys.stderr)
        return 1
    finally:
        _debug = previous


if __name__ == "__main__":
    sys.exit(main())
