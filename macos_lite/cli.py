"""The ``macos-lite`` command (also ``python -m macos_lite``).

    macos-lite course     run every notebook headless into runs/<timestamp>/ (the course's main job)
    macos-lite train      weakly supervised training (synthetic or a benchmark)
    macos-lite evaluate   a checkpoint or the identity baseline on a benchmark's protocol
    macos-lite download   fetch, verify and extract a benchmark
    macos-lite demo       one synthetic pair: predicted transform, keypoints and masks, as a figure
    macos-lite assign     generate student notebooks from the solution notebooks
    macos-lite grade      grade a folder of submitted notebooks

Each sub-command lives in its module as ``add_arguments(parser)`` + ``run(args) -> exit code``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, help); modules are imported only when their command runs
COMMANDS = {
    "course": ("macos_lite.course", "run the course notebooks headless into runs/<timestamp>/"),
    "train": ("macos_lite.train_cli", "train MaCoSNet with weak supervision"),
    "evaluate": ("macos_lite.evaluate", "evaluate a checkpoint or the identity baseline on a benchmark"),
    "download": ("macos_lite.download", "download, verify and extract a benchmark"),
    "demo": ("macos_lite.demo", "predict and plot a synthetic pair (transform, keypoints, masks)"),
    "assign": ("macos_lite.assignments", "generate student versions of the solution notebooks"),
    "grade": ("macos_lite.assignments", "grade a folder of submitted notebooks"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    from macos_lite import __version__

    parser = argparse.ArgumentParser(prog="macos-lite", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"macos_lite {__version__}")
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
