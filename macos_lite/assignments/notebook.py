"""Reading the assignment conventions from a solution notebook and writing its student version.

See the package docstring (:mod:`macos_lite.assignments`) for the conventions themselves.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from macos_lite import __version__

BEGIN_MARKER = "### BEGIN SOLUTION"
END_MARKER = "### END SOLUTION"
EXERCISE_TAG = "exercise"
HIDDEN_CHECK_TAG = "hidden-check"
META_KEY = "macos_lite"
MANIFEST = "manifest.json"

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)#+[ \t]*BEGIN SOLUTION[ \t]*$")
_END = re.compile(r"^[ \t]*#+[ \t]*END SOLUTION[ \t]*$")
# what the student sees instead of a solution block, per cell type
_CODE_BLANK = 'raise NotImplementedError("Exercise {name}: replace this line with your code")'
_TEXT_BLANK = "*Your answer here.*"
# cell and notebook metadata a student version keeps (everything else may carry outputs or solutions)
_CELL_METADATA = ("tags", META_KEY)
_NOTEBOOK_METADATA = ("kernelspec", "language_info")


class AssignmentError(ValueError):
    """A solution notebook breaks the conventions; the message names the notebook and the cell."""


@dataclass
class Exercise:
    """A graded exercise of a solution notebook: the cell tagged ``exercise`` and its hidden checks."""

    name: str
    points: float
    cell: int  # index of the exercise cell in the solution notebook
    hidden_checks: list = field(default_factory=list)  # the hidden-check cells, in order


def read_notebook(path: str | Path) -> nbformat.NotebookNode:
    """Read an ``.ipynb`` as nbformat 4; any problem is an :class:`AssignmentError` naming the file."""
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # malformed JSON, wrong schema, unreadable file
        raise AssignmentError(f"{path}: not a readable notebook ({type(exc).__name__}: {exc})") from exc


def collect_notebooks(paths) -> list[Path]:
    """The notebooks named by ``paths``: files as given, folders for their ``*.ipynb`` (sorted, one level)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted(p for p in path.glob("*.ipynb") if p.is_file()))
        elif path.suffix == ".ipynb" and path.is_file():
            found.append(path)
        else:
            raise AssignmentError(f"{path}: neither a notebook (.ipynb) nor a folder of notebooks")
    names = [p.name for p in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise AssignmentError(f"two notebooks share the name {duplicates[0]}: notebooks are matched by "
                              "file name")
    return found


def _meta(cell) -> dict:
    value = cell.get("metadata", {}).get(META_KEY, {})
    return value if isinstance(value, dict) else {}


def _tags(cell) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return tags if isinstance(tags, list) else []


def exercise_name(cell) -> str | None:
    """The exercise name of a cell tagged ``exercise`` (None for any other cell)."""
    return _meta(cell).get("exercise") if EXERCISE_TAG in _tags(cell) else None


def is_hidden_check(cell) -> bool:
    return HIDDEN_CHECK_TAG in _tags(cell)


def _preview(source: str) -> str:
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    return first if len(first) <= 60 else first[:57] + "..."


def where(nb_name: str, index: int, cell=None) -> str:
    """``"01_x.ipynb, cell 4 (`def f(...):`)"`` -- cells are numbered from 1, as Jupyter shows them."""
    preview = f" (`{_preview(cell.source)}`)" if cell is not None and _preview(cell.source) else ""
    return f"{nb_name}, cell {index + 1}{preview}"


def find_exercises(nb, nb_name: str) -> list[Exercise]:
    """The exercises of a solution notebook with their hidden checks, validated."""
    exercises: list[Exercise] = []
    current: Exercise | None = None
    for i, cell in enumerate(nb.cells):
        if EXERCISE_TAG in _tags(cell):
            meta = _meta(cell)
            name, points = meta.get("exercise"), meta.get("points")
            if cell.cell_type != "code":
                raise AssignmentError(f"{where(nb_name, i, cell)}: an `exercise` cell must be a code cell")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w\-]*", name):
                raise AssignmentError(f"{where(nb_name, i, cell)}: tagged `exercise` but metadata "
                                      f'["{META_KEY}"]["exercise"] is {name!r}; give it a name like '
                                      '"correlation"')
            if isinstance(points, bool) or not isinstance(points, (int, float)) or points < 0:
                raise AssignmentError(f"{where(nb_name, i, cell)}: exercise {name!r} needs "
                                      f'metadata["{META_KEY}"]["points"] as a number >= 0, got {points!r}')
            if any(e.name == name for e in exercises):
                raise AssignmentError(f"{where(nb_name, i, cell)}: exercise name {name!r} is used twice")
            current = Exercise(name, points, i)
            exercises.append(current)
        elif is_hidden_check(cell):
            owner_name = _meta(cell).get("exercise")
            named = [e for e in exercises if e.name == owner_name]
            owner = current if owner_name is None else (named[0] if named else None)
            if cell.cell_type != "code" or owner is None:
                raise AssignmentError(
                    f"{where(nb_name, i, cell)}: a `hidden-check` cell must be a code cell after its "
                    f"exercise cell (or name it in metadata[\"{META_KEY}\"][\"exercise\"]); found no exercise "
                    f"{owner_name or 'above it'}")
            owner.hidden_checks.append(cell)
    for e in exercises:
        if not e.hidden_checks:
            raise AssignmentError(
                f"{where(nb_name, e.cell, nb.cells[e.cell])}: exercise {e.name!r} has no `hidden-check` "
                f"cell, so it could not be graded; add one such as `check_{e.name}(<function>).assert_ok()`")
    return exercises


def blank_solutions(source: str, label: str, cell_type: str, context: str) -> tuple[str, list[str]]:
    """Replace every marked solution block of ``source``; returns the new source and the removed lines.

    In code the block becomes ``raise NotImplementedError("Exercise <label>: ...")`` at the indentation of
    the ``### BEGIN SOLUTION`` line; in text it becomes ``*Your answer here.*``.
    """
    out, removed = [], []
    indent = None  # the indentation of the open block's BEGIN line, None outside a block
    for n, line in enumerate(source.split("\n"), 1):
        begin, end = _BEGIN.match(line), _END.match(line)
        if begin:
            if indent is not None:
                raise AssignmentError(f"{context}, line {n}: BEGIN SOLUTION inside another solution block")
            indent = begin.group("indent")
            blank = _CODE_BLANK.format(name=label) if cell_type == "code" else _TEXT_BLANK
            out.append(indent + blank)
        elif end:
            if indent is None:
                raise AssignmentError(f"{context}, line {n}: END SOLUTION without a BEGIN SOLUTION above it")
            indent = None
        elif indent is not None:
            removed.append(line)
        else:
            out.append(line)
    if indent is not None:
        raise AssignmentError(f"{context}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "\n".join(out), removed


_TRANSFORMER = TransformerManager()


def check_parses(source: str, context: str) -> None:
    """Raise :class:`AssignmentError` unless a code cell is valid Python (IPython magics allowed)."""
    try:
        ast.parse(_TRANSFORMER.transform_cell(source))
    except SyntaxError as exc:
        raise AssignmentError(f"{context}: not valid Python after removing the solutions "
                              f"(line {exc.lineno}: {exc.msg})") from exc


def _strings(node):
    """Every string anywhere in a JSON-like structure (sources, outputs, metadata, attachments)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def leaked_lines(student_nb, solution_only: set[str]) -> set[str]:
    """Solution-only lines (stripped) that occur as a line of any string of the student notebook."""
    seen = {line.strip() for text in _strings(student_nb) for line in text.splitlines()}
    return seen & solution_only


def student_notebook(nb, nb_name: str):
    """The student version of a solution notebook (a new notebook; ``nb`` is left unchanged).

    Solution blocks become blanks, hidden-check cells go, outputs, execution counts, widget state and
    every metadata key but ``tags``/``macos_lite`` (cells) and ``kernelspec``/``language_info``
    (notebook) are dropped. Checks that every code cell still parses and that no solution-only line
    survives anywhere in the file.
    """
    exercises = find_exercises(nb, nb_name)  # validates the conventions before anything is written
    student = nbformat.v4.new_notebook()
    student.metadata = nbformat.from_dict({k: v for k, v in nb.metadata.items() if k in _NOTEBOOK_METADATA})
    removed: list[str] = []
    kept: list[str] = []
    label = Path(nb_name).stem
    for i, cell in enumerate(nb.cells):
        label = exercise_name(cell) or label  # blanks outside exercise cells name the exercise above them
        if is_hidden_check(cell):
            removed.extend(cell.source.split("\n"))
            continue
        context = where(nb_name, i, cell)
        source, lines = blank_solutions(cell.source, label, cell.cell_type, context)
        removed.extend(lines)
        kept.extend(source.split("\n"))
        new = copy.deepcopy(cell)
        new.source = source
        new.metadata = nbformat.from_dict({k: v for k, v in cell.metadata.items() if k in _CELL_METADATA})
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
            check_parses(source, context)
        student.cells.append(new)
    solution_only = {line.strip() for line in removed if line.strip()} - {line.strip() for line in kept}
    leaks = leaked_lines(student, solution_only)
    if leaks:
        raise AssignmentError(f"{nb_name}: solution text would survive in the student version: "
                              f"{min(leaks)!r}")
    nbformat.validate(student)
    return student, exercises


def make_assignment(sources, out_dir: str | Path) -> dict:
    """Write the student version of every solution notebook in ``sources`` to ``out_dir`` + ``manifest.json``.

    sources: notebooks and/or folders of notebooks. Returns the manifest (also written to
    ``out_dir/manifest.json``). Nothing is written unless every notebook passes the checks.
    """
    out_dir = Path(out_dir)
    paths = collect_notebooks(sources)
    if not paths:
        raise AssignmentError(f"no notebooks found in {', '.join(map(str, sources))}")
    if any(p.parent.resolve() == out_dir.resolve() for p in paths):
        raise AssignmentError(f"--out {out_dir} holds the solution notebooks: choose another folder")
    results = []
    for path in paths:
        student, exercises = student_notebook(read_notebook(path), path.name)
        results.append((path.name, student, exercises))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": f"macos_lite {__version__}", "notebooks": [], "total_points": 0}
    for name, student, exercises in results:
        nbformat.write(student, str(out_dir / name))
        points = sum(e.points for e in exercises)
        manifest["notebooks"].append({
            "notebook": name,
            "points": points,
            "exercises": [{"name": e.name, "points": e.points, "hidden_checks": len(e.hidden_checks)}
                          for e in exercises],
        })
        manifest["total_points"] += points
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
