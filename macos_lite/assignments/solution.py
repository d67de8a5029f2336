"""``macos-lite solution``: show a learner the solution of an exercise, on purpose.

Learners work in the student copies (``make lab`` opens ``student/``); the solution notebooks stay in
``notebooks/``. When a learner wants to compare::

    macos-lite solution 04                       # every exercise cell of notebook 04
    macos-lite solution 04 --exercise matching_score
    macos-lite solution 05 --question why_not_squared   # a written question's model answer

or, from a notebook cell, ``print(solution_source("04", "matching_score"))``. Hidden checks are not shown:
they are the teacher's tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .notebook import AssignmentError, find_exercises, find_questions, read_notebook

__all__ = ["add_arguments", "find_solution_notebook", "run", "solution_source"]


def _default_folders() -> list[Path]:
    repo = Path(__file__).resolve().parents[2] / "notebooks"
    return [Path("notebooks"), Path("..") / "notebooks", repo]


def find_solution_notebook(notebook: str, folder: str | Path | None = None) -> Path:
    """The solution notebook named ``notebook``: its number (``"04"``), stem or file name.

    folder: where the solution notebooks are (default: ``notebooks/`` here, beside here, or in the
    repository holding this package). Raises :class:`AssignmentError` naming what was searched.
    """
    folders = [Path(folder)] if folder is not None else _default_folders()
    for place in folders:
        if not place.is_dir():
            continue
        wanted = notebook[:-6] if notebook.endswith(".ipynb") else notebook
        found = sorted(p for p in place.glob("*.ipynb")
                       if p.stem == wanted or p.stem.split("_", 1)[0] == wanted.zfill(2))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise AssignmentError(f"{notebook!r} matches {', '.join(p.name for p in found)} in {place}; give the "
                                  "full name")
        raise AssignmentError(f"no notebook {notebook!r} in {place} (give its number, e.g. 04, or its name)")
    raise AssignmentError(f"no folder of solution notebooks found (looked in {', '.join(map(str, folders))}); "
                          "pass --notebooks DIR")


def solution_source(notebook: str, exercise: str | None = None, question: str | None = None,
                    folder: str | Path | None = None) -> str:
    """The solution of ``exercise`` (its whole exercise cell), or the model answer of ``question``.

    With neither, every exercise cell of the notebook, each under a ``# --- exercise NAME`` line.
    Raises :class:`AssignmentError` naming the notebook and the exercises it has when there is no such one.

    >>> print(solution_source("04", "matching_score"))  # doctest: +SKIP
    """
    path = find_solution_notebook(notebook, folder)
    nb = read_notebook(path)
    if question is not None:
        questions = find_questions(nb, path.name)
        match = [q for q in questions if q.name == question]
        if not match:
            names = ", ".join(q.name for q in questions) or "none"
            raise AssignmentError(f"{path.name} has no written question {question!r} (questions: {names})")
        return nb.cells[match[0].cell + 1].source
    exercises = find_exercises(nb, path.name)
    chosen = [e for e in exercises if exercise is None or e.name == exercise]
    if not chosen:
        names = ", ".join(e.name for e in exercises) or "none"
        raise AssignmentError(f"{path.name} has no exercise {exercise!r} (exercises: {names})")
    if exercise is not None:
        return nb.cells[chosen[0].cell].source
    return "\n\n".join(f"# --- exercise {e.name} ({path.name})\n{nb.cells[e.cell].source}" for e in chosen)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``solution`` options."""
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the notebook's number (04) or name")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--exercise", metavar="NAME", help="only this exercise (default: all of the notebook)")
    which.add_argument("--question", metavar="NAME", help="the model answer of this written question")
    parser.add_argument("--notebooks", type=Path, default=None, metavar="DIR",
                        help="the folder of solution notebooks (default: notebooks/ of the repository)")


def run(args: argparse.Namespace) -> int:
    """Print the solution asked for; exit code 2 (and a message) when there is none."""
    try:
        print(solution_source(args.notebook, args.exercise, args.question, args.notebooks))
    except AssignmentError as exc:
        from macos_lite.cli_common import command_error

        return command_error(exc)
    return 0
