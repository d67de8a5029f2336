"""Deprecated location: the evaluation moved to :mod:`macos_lite.evaluation` (the protocols) and
:mod:`macos_lite.evaluate_cli` (the ``macos-lite evaluate`` command).

This module re-exports the names it used to define, so that ``from macos_lite.evaluate import ...`` keeps
working; new code imports from :mod:`macos_lite.evaluation`.
"""

import sys

from .evaluate_cli import add_arguments, check_output_path, main, run
from .evaluation import *  # noqa: F403
from .evaluation import __all__ as _evaluation_names

__all__ = [*_evaluation_names, "add_arguments", "check_output_path", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
