"""Reading the assignment conventions from a solution notebook and writing its student version.

See the package docstring (:mod:`macos_lite.assignments`) for the conventions themselves.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
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
QUESTION_TAG = "question"
ANSWER_TAG = "answer"  # added by the student version to the answer cell of a written question
META_KEY = "macos_lite"
MANIFEST = "manifest.json"
GENERATED = ".generated.json"  # in the student folder: the sha256 of each copy as it was last written

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
class HiddenCase:
    """One ``hidden-check`` cell: a case only the grader runs, worth ``points`` when it runs without error."""

    name: str  # metadata["macos_lite"]["case"], else "case <k>" (k counts from 1 within the exercise)
    points: float
    cell: object  # the solution's cell (its source is never shown to students)
    index: int  # its index in the solution notebook
    declared: float | None = None  # the points written in the cell (None: a share of the remainder)


@dataclass
class Exercise:
    """A graded exercise of a solution notebook: the cell tagged ``exercise`` and its hidden cases.

    ``points`` is the sum of the cases' points (see the package docstring for how they are declared).
    """

    name: str
    points: float | None
    cell: int  # index of the exercise cell in the solution notebook
    cases: list[HiddenCase] = field(default_factory=list)

    @property
    def hidden_checks(self) -> list:
        """The hidden-check cells, in order."""
        return [case.cell for case in self.cases]


@dataclass
class Question:
    """A written question: a markdown cell tagged ``question`` and the answer cell right after it.

    Graded by hand: the grader collects the student's answer (status ``manual``, 0 automatic points).
    """

    name: str
    points: float
    cell: int  # index of the question cell in the solution notebook


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


def _points(value) -> bool:
    """Whether ``value`` is a valid number of points (a number >= 0, not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value >= 0 and value == value


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def find_exercises(nb, nb_name: str) -> list[Exercise]:
    """The exercises of a solution notebook with their hidden cases and points, validated.

    Raises :class:`AssignmentError` naming the notebook and the cell for any broken convention: a
    hidden-check cell without an exercise, an exercise without hidden cases, points that are not numbers
    >= 0, an exercise whose declared points differ from the sum of its cases' points.
    """
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
            if points is not None and not _points(points):
                raise AssignmentError(f"{where(nb_name, i, cell)}: exercise {name!r} needs "
                                      f'metadata["{META_KEY}"]["points"] as a number >= 0, got {points!r}')
            if any(e.name == name for e in exercises):
                raise AssignmentError(f"{where(nb_name, i, cell)}: exercise name {name!r} is used twice")
            current = Exercise(name, points, i)
            exercises.append(current)
        elif is_hidden_check(cell):
            meta = _meta(cell)
            owner_name = meta.get("exercise")
            named = [e for e in exercises if e.name == owner_name]
            owner = current if owner_name is None else (named[0] if named else None)
            if cell.cell_type != "code" or owner is None:
                raise AssignmentError(
                    f"{where(nb_name, i, cell)}: a `hidden-check` cell must be a code cell after its "
                    f"exercise cell (or name it in metadata[\"{META_KEY}\"][\"exercise\"]); found no exercise "
                    f"{owner_name or 'above it'}")
            points, case = meta.get("points"), meta.get("case")
            if points is not None and not _points(points):
                raise AssignmentError(f"{where(nb_name, i, cell)}: hidden case of {owner.name!r} needs "
                                      f'metadata["{META_KEY}"]["points"] as a number >= 0, got {points!r}')
            if case is not None and (not isinstance(case, str) or not case.strip()):
                raise AssignmentError(f"{where(nb_name, i, cell)}: metadata[\"{META_KEY}\"][\"case\"] must "
                                      f"be a short text naming the case, got {case!r}")
            name = case.strip() if case else f"case {len(owner.cases) + 1}"
            if any(c.name == name for c in owner.cases):
                raise AssignmentError(f"{where(nb_name, i, cell)}: exercise {owner.name!r} has two hidden "
                                      f"cases named {name!r}")
            owner.cases.append(HiddenCase(name, 0.0, cell, i, points))
    for e in exercises:
        _share_points(e, nb, nb_name)
    return exercises


def _share_points(e: Exercise, nb, nb_name: str) -> None:
    """Give every hidden case its points; the exercise's points become their sum."""
    here = where(nb_name, e.cell, nb.cells[e.cell])
    if not e.cases:
        raise AssignmentError(
            f"{here}: exercise {e.name!r} has no `hidden-check` cell, so it could not be graded; add one "
            f"such as `check_{e.name}(<function>).assert_ok()`")
    declared = [c for c in e.cases if c.declared is not None]
    shared = [c for c in e.cases if c.declared is None]
    given = sum(c.declared for c in declared)
    if e.points is None:
        if shared:
            cells = ", ".join(str(c.index + 1) for c in shared)
            raise AssignmentError(
                f"{here}: exercise {e.name!r} has no points and its hidden case(s) in cell(s) {cells} have "
                f'none either; give each hidden-check cell metadata["{META_KEY}"]["points"] (or the exercise '
                "its total)")
        e.points = given
    elif not shared and not _close(given, e.points):
        detail = " + ".join(f"{c.declared:g} (cell {c.index + 1})" for c in declared)
        raise AssignmentError(
            f"{here}: exercise {e.name!r} declares {e.points:g} points but its hidden cases carry "
            f"{detail} = {given:g}; make them equal, or drop the exercise's points")
    elif shared and given > e.points + 1e-9:
        raise AssignmentError(
            f"{here}: exercise {e.name!r} declares {e.points:g} points but its hidden cases with points "
            f"already carry {given:g}, leaving nothing for the {len(shared)} case(s) without points")
    remainder = (e.points - given) / len(shared) if shared else 0.0
    if float(remainder).is_integer():
        remainder = int(remainder)
    for c in e.cases:
        c.points = c.declared if c.declared is not None else remainder


def find_questions(nb, nb_name: str) -> list[Question]:
    """The written questions of a solution notebook, validated (see the package docstring)."""
    questions: list[Question] = []
    for i, cell in enumerate(nb.cells):
        if QUESTION_TAG not in _tags(cell):
            continue
        meta, here = _meta(cell), where(nb_name, i, cell)
        name, points = meta.get("question"), meta.get("points")
        if cell.cell_type != "markdown":
            raise AssignmentError(f"{here}: a `question` cell must be a markdown cell")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][\w\-]*", name):
            raise AssignmentError(f'{here}: tagged `question` but metadata["{META_KEY}"]["question"] is '
                                  f'{name!r}; give it a name like "why_relu"')
        if not _points(points):
            raise AssignmentError(f'{here}: question {name!r} needs metadata["{META_KEY}"]["points"] as a '
                                  f"number >= 0, got {points!r}")
        if any(q.name == name for q in questions):
            raise AssignmentError(f"{here}: question name {name!r} is used twice")
        answer = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        if (answer is None or answer.cell_type != "markdown"
                or not any(_BEGIN.match(line) for line in answer.source.split("\n"))):
            raise AssignmentError(
                f"{here}: question {name!r} must be followed immediately by a markdown answer cell holding "
                f"the model answer between `{BEGIN_MARKER}` and `{END_MARKER}`")
        questions.append(Question(name, points, i))
    return questions


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
    answers = {q.cell + 1: q.name for q in find_questions(nb, nb_name)}
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
        if i in answers:  # the grader finds the answer by this tag even if cells are added around it
            new.metadata["tags"] = [*_tags(new), ANSWER_TAG]
            new.metadata[META_KEY] = {"answer": answers[i]}
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


def notebook_entry(name: str, exercises: list[Exercise], questions: list[Question]) -> dict:
    """A notebook's entry in ``manifest.json``."""
    return {
        "notebook": name,
        "points": sum(e.points for e in exercises),
        "exercises": [{"name": e.name, "points": e.points, "hidden_checks": len(e.cases),
                       "hidden_cases": [{"name": c.name, "points": c.points} for c in e.cases]}
                      for e in exercises],
        "questions": [{"name": q.name, "points": q.points} for q in questions],
        "question_points": sum(q.points for q in questions),
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_student_copy(student, path: str | Path, manifest_dir: str | Path | None = None) -> str:
    """Write a student notebook to ``path`` without ever replacing a learner's edits; returns what it did.

    The file is written when it does not exist yet, when it is byte-identical to the version last
    generated there (its sha256 is kept in ``GENERATED`` beside it), or when it already equals the new
    version. A copy the learner has changed is kept as it is; if the new version differs, it goes to
    ``NAME.new.ipynb`` beside it (under the same rule). Returns ``"written"``, ``"unchanged"``,
    ``"kept"`` (edited, nothing new) or ``"new: NAME.new.ipynb"``.
    """
    path = Path(path)
    folder = Path(manifest_dir) if manifest_dir is not None else path.parent
    record_path = folder / GENERATED
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        record = record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        record = {}
    data = (nbformat.writes(student) + "\n").encode("utf-8")
    new_hash = _sha256(data)

    def place(target: Path) -> str:
        if target.is_symlink() or (target.exists() and not target.is_file()):
            return "kept"  # never write through a link or over a folder
        if target.exists():
            current = _sha256(target.read_bytes())
            if current == new_hash:
                record[target.name] = new_hash
                return "unchanged"
            if current != record.get(target.name):
                return "kept"  # edited by the learner (or not generated by us): leave it alone
        _write_atomic(target, data)
        record[target.name] = new_hash
        return "written"

    outcome = place(path)
    if outcome == "kept" and record.get(path.name) != new_hash:
        beside = path.with_name(path.stem + ".new.ipynb")
        if place(beside) in ("written", "unchanged"):
            outcome = f"new: {beside.name}"
    _write_atomic(record_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return outcome


def make_assignment(sources, out_dir: str | Path, notes: list | None = None) -> dict:
    """Write the student version of every solution notebook in ``sources`` to ``out_dir`` + ``manifest.json``.

    sources: notebooks and/or folders of notebooks. Returns the manifest (also written to
    ``out_dir/manifest.json``). Nothing is written unless every notebook passes the checks. A student
    copy someone has edited in ``out_dir`` is never replaced (see :func:`write_student_copy`); ``notes``,
    if given, receives ``(notebook, outcome)`` for every copy.
    """
    out_dir = Path(out_dir)
    paths = collect_notebooks(sources)
    if not paths:
        raise AssignmentError(f"no notebooks found in {', '.join(map(str, sources))}")
    if any(p.parent.resolve() == out_dir.resolve() for p in paths):
        raise AssignmentError(f"--out {out_dir} holds the solution notebooks: choose another folder")
    results = []
    for path in paths:
        solution = read_notebook(path)
        student, exercises = student_notebook(solution, path.name)
        results.append((path.name, student, exercises, find_questions(solution, path.name)))
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": f"macos_lite {__version__}", "notebooks": [], "total_points": 0,
                "total_question_points": 0}
    for name, student, exercises, questions in results:
        outcome = write_student_copy(student, out_dir / name, manifest_dir=out_dir)
        if notes is not None:
            notes.append((name, outcome))
        entry = notebook_entry(name, exercises, questions)
        manifest["notebooks"].append(entry)
        manifest["total_points"] += entry["points"]
        manifest["total_question_points"] += entry["question_points"]
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
