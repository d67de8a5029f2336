"""The teacher's outputs of a graded batch: the gradebook, the written answers and per-student feedback.

``macos-lite grade`` writes ``grades.json`` (every result of the batch) and from it, through
:func:`write_outputs`:

* ``gradebook.csv``: one row per student; a column per exercise (``NOTEBOOK/EXERCISE (max)``: its
  automatic points), per written question (``NOTEBOOK/QUESTION (written, max)``: the teacher's points,
  empty until given) and ``total (max)``;
* ``answers.csv``: one row per student and written question (``student, notebook, question,
  max_points, points, answer``), ``points`` empty: fill it in and pass the file back as the manual grades;
* ``feedback/<student>.html``: the student's exercise cells and written answers, each hidden case's
  result and hint, the points -- never a hidden test's source nor a model solution (neither is in
  ``grades.json``).

Manual grades (``--manual FILE``): a CSV with the columns ``student``, ``question`` and ``points`` (and
optionally ``notebook``); ``question`` is the question's name, or ``NOTEBOOK/NAME`` where two notebooks
use one name. An empty ``points`` leaves the question ungraded. ``macos-lite gradebook GRADES_DIR
--manual FILE`` merges them into an existing batch without grading it again.

Escaping: every text cell of the CSV files that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading ``'`` (spreadsheets would run it as a formula: CSV injection); names in
Markdown tables have ``|`` escaped and newlines replaced by spaces (:func:`markdown_cell`); HTML is
escaped with :func:`html.escape`.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import sys
from pathlib import Path

from .notebook import AssignmentError

GRADES_JSON = "grades.json"
GRADEBOOK = "gradebook.csv"
ANSWERS = "answers.csv"
FEEDBACK_DIR = "feedback"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

__all__ = [
    "ANSWERS", "FEEDBACK_DIR", "GRADEBOOK", "GRADES_JSON", "add_arguments", "csv_cell", "markdown_cell",
    "read_manual_grades", "run", "write_outputs",
]


def csv_cell(value) -> str:
    """A CSV cell that no spreadsheet runs as a formula: text starting with = + - @ (tab, CR) gets a ``'``.

    >>> csv_cell("=1+1"), csv_cell("alice")
    ("'=1+1", 'alice')
    """
    text = value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
    return "'" + text if text.startswith(_FORMULA_START) and isinstance(value, str) else text


def markdown_cell(value) -> str:
    """Text safe in a Markdown table cell or heading: ``|`` becomes ``\\|``, line breaks a space."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def _num(x) -> str:
    return f"{x:g}"


def _stem(notebook: str) -> str:
    return notebook[:-6] if notebook.endswith(".ipynb") else notebook


# ----------------------------------------------------------------------------------------------
# Manual grades
# ----------------------------------------------------------------------------------------------


def _questions(data: dict) -> dict[str, dict[str, float]]:
    """notebook -> question -> max points, from ``grades.json``'s data."""
    return {nb["notebook"]: {q["name"]: q["points"] for q in nb["questions"]} for nb in data["notebooks"]}


def read_manual_grades(path, students, questions: dict[str, dict[str, float]]) -> dict:
    """The teacher's points for written questions: ``{(student, notebook, question): points}``.

    path: a CSV with a header naming ``student``, ``question``, ``points`` (``notebook`` optional; other
    columns such as ``answer`` are ignored). students: the graded students; questions: notebook ->
    question -> max points. Raises :class:`AssignmentError` naming the file and line for an unknown
    student or question, an ambiguous question name, points that are not a number in [0, max], or a
    question graded twice. Empty points are skipped (not graded yet).
    """
    path = Path(path)
    students = list(students)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as exc:
        raise AssignmentError(f"--manual {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise AssignmentError(f"--manual {path}: not a UTF-8 text file; save it as CSV (UTF-8)") from None
    if not rows:
        raise AssignmentError(f"--manual {path}: empty; expected a header `student,question,points`")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("student", "question", "points") if c not in header]
    if missing:
        raise AssignmentError(f"--manual {path}, line 1: no column {', '.join(missing)}; the header must name "
                              "student, question and points (notebook optional)")
    col = {name: header.index(name) for name in ("student", "question", "points", "notebook") if name in header}
    by_name: dict[str, list[str]] = {}
    for nb, qs in questions.items():
        for q in qs:
            by_name.setdefault(q, []).append(nb)
    grades: dict = {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        row = row + [""] * (len(header) - len(row))
        where = f"--manual {path}, line {line}"
        student, question = row[col["student"]], row[col["question"]].strip()
        if student not in students and student.startswith("'") and student[1:] in students:
            student = student[1:]  # as escaped in our own CSV files
        if student not in students:
            known = ", ".join(repr(s) for s in students[:8]) + (", ..." if len(students) > 8 else "")
            raise AssignmentError(f"{where}: no graded student {student!r} (graded: {known})")
        notebook = row[col["notebook"]].strip() if "notebook" in col else ""
        if not notebook and "/" in question:
            notebook, question = question.rsplit("/", 1)
        if notebook and not notebook.endswith(".ipynb"):
            notebook += ".ipynb"
        places = [notebook] if notebook else by_name.get(question, [])
        if notebook and question not in questions.get(notebook, {}):
            raise AssignmentError(f"{where}: notebook {notebook} has no written question {question!r}")
        if not places:
            known = ", ".join(sorted(by_name)) or "none"
            raise AssignmentError(f"{where}: no written question {question!r} (questions: {known})")
        if len(places) > 1:
            raise AssignmentError(f"{where}: question {question!r} is in {' and '.join(places)}; write "
                                  f"NOTEBOOK/{question} (or add a notebook column)")
        notebook = places[0]
        text = row[col["points"]].strip()
        if not text:
            continue
        most = questions[notebook][question]
        try:
            points = float(text)
        except ValueError:
            points = float("nan")
        if not (0 <= points <= most):
            raise AssignmentError(f"{where}: points {text!r} for {_stem(notebook)}/{question}; give a number "
                                  f"from 0 to {most:g}")
        key = (student, notebook, question)
        if key in grades:
            raise AssignmentError(f"{where}: {student!r} / {_stem(notebook)}/{question} is graded twice")
        grades[key] = points
    return grades


# ----------------------------------------------------------------------------------------------
# Outputs
# ----------------------------------------------------------------------------------------------


def _write_csv(path: Path, rows) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for row in rows:
            writer.writerow([csv_cell(cell) for cell in row])


def write_outputs(out_dir, manual: dict | None = None) -> None:
    """``gradebook.csv``, ``answers.csv`` and ``feedback/<student>.html`` from ``out_dir/grades.json``.

    manual: ``{(student, notebook, question): points}`` (see :func:`read_manual_grades`).
    """
    out_dir = Path(out_dir)
    data = json.loads((out_dir / GRADES_JSON).read_text(encoding="utf-8"))
    manual = manual or {}
    notebooks = data["notebooks"]
    header = ["student"]
    for nb in notebooks:
        stem = _stem(nb["notebook"])
        header += [f"{stem}/{e['name']} ({_num(e['points'])})" for e in nb["exercises"]]
        header += [f"{stem}/{q['name']} (written, {_num(q['points'])})" for q in nb["questions"]]
    most = sum(e["points"] for nb in notebooks for e in nb["exercises"]) + sum(
        q["points"] for nb in notebooks for q in nb["questions"])
    header.append(f"total ({_num(most)})")
    book, answers = [header], [["student", "notebook", "question", "max_points", "points", "answer"]]
    for student, results in data["students"].items():
        row, total = [student], 0.0
        for nb in notebooks:
            got = results.get(nb["notebook"], {})
            for e in nb["exercises"]:
                points = got.get("exercises", {}).get(e["name"], {}).get("points", 0)
                row.append(points)
                total += points
            for q in nb["questions"]:
                points = manual.get((student, nb["notebook"], q["name"]))
                row.append("" if points is None else points)
                total += points or 0
                answer = got.get("questions", {}).get(q["name"], {}).get("answer", "")
                answers.append([student, nb["notebook"], q["name"], q["points"],
                                "" if points is None else points, answer])
        book.append([*row, total])
    _write_csv(out_dir / GRADEBOOK, book)
    _write_csv(out_dir / ANSWERS, answers)
    folder = out_dir / FEEDBACK_DIR
    folder.mkdir(exist_ok=True)
    for student, results in data["students"].items():
        page = feedback_html(student, results, notebooks, data.get("settings", {}), manual)
        (folder / f"{student}.html").write_text(page, encoding="utf-8")


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
pre { background: #f5f5f5; padding: .6rem; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; }
.passed { color: #186a1f; } .failed, .error, .timeout, .refused, .missing { color: #a61b1b; }
.partial { color: #8a5a00; } .note { color: #555; }
"""


def feedback_html(student: str, results: dict, notebooks: list[dict], settings: dict, manual: dict) -> str:
    """One student's feedback page (HTML; every text escaped). Holds no hidden test and no solution."""
    e = html.escape
    auto = sum(x.get("points", 0) for r in results.values() for x in r.get("exercises", {}).values())
    auto_max = sum(x["points"] for nb in notebooks for x in nb["exercises"])
    q_max = sum(q["points"] for nb in notebooks for q in nb["questions"])
    given = [manual[k] for k in manual if k[0] == student]
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Feedback: {e(student)}"
             f"</title><style>{_STYLE}</style></head><body>", f"<h1>Feedback: {e(student)}</h1>",
             f"<p><strong>Exercises: {_num(auto)} / {_num(auto_max)} points</strong> (hidden tests, graded "
             "automatically)"]
    if q_max:
        parts.append(f"; <strong>written answers: {_num(sum(given))} / {_num(q_max)}</strong> (graded by hand"
                     f"{'' if given else ', not yet'})")
    parts.append("</p>")
    if settings:
        parts.append(f"<p class=\"note\">Run with the <code>{e(str(settings.get('preset', '')))}</code> preset "
                     f"and a time limit of {_num(settings.get('timeout_s', 0))} s per notebook "
                     f"(isolation: {e(str(settings.get('isolation', '')))}).</p>")
    for nb in notebooks:
        got = results.get(nb["notebook"], {})
        points = sum(x.get("points", 0) for x in got.get("exercises", {}).values())
        most = sum(x["points"] for x in nb["exercises"])
        parts.append(f"<h2>{e(nb['notebook'])}: {_num(points)} / {_num(most)}</h2>")
        if got.get("note"):
            parts.append(f"<p class=\"note\">Run: {e(got['note'])}.</p>")
        for ex in nb["exercises"]:
            r = got.get("exercises", {}).get(ex["name"], {})
            status = r.get("status", "missing")
            parts.append(f"<h3>Exercise <code>{e(ex['name'])}</code>: {_num(r.get('points', 0))} / "
                         f"{_num(ex['points'])} <span class=\"{e(status)}\">({e(status)})</span></h3>")
            if r.get("source"):
                parts += ["<p>Your cell:</p>", f"<pre><code>{e(r['source'])}</code></pre>"]
            parts.append("<table><tr><th>hidden case</th><th>result</th><th>points</th><th>hint</th></tr>")
            for case in r.get("cases", []):
                parts.append(f"<tr><td>{e(case['name'])}</td><td class=\"{e(case['status'])}\">"
                             f"{e(case['status'])}</td><td>{_num(case['points'])} / {_num(case['max_points'])}"
                             f"</td><td>{e(case.get('message', ''))}</td></tr>")
            parts.append("</table>")
        for q in nb["questions"]:
            r = got.get("questions", {}).get(q["name"], {})
            points = manual.get((student, nb["notebook"], q["name"]))
            mark = f"{_num(points)} / {_num(q['points'])}" if points is not None else \
                f"not graded yet (out of {_num(q['points'])})"
            parts.append(f"<h3>Written question <code>{e(q['name'])}</code>: {mark}</h3>")
            if q.get("text"):
                parts.append(f"<blockquote><pre>{e(q['text'])}</pre></blockquote>")
            answer = r.get("answer", "")
            parts.append(f"<p>Your answer:</p><pre>{e(answer)}</pre>" if answer else
                         f"<p class=\"note\">{e(r.get('message') or 'no answer given')}</p>")
        if got.get("blocked"):
            parts.append("<p>Blocked actions (the grader stopped these):</p><ul>")
            parts += [f"<li>{e(b)}</li>" for b in got["blocked"]]
            parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------
# ``macos-lite gradebook``: merge manual grades into a graded batch
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``gradebook`` options: a graded batch's folder and the manual grades."""
    parser.add_argument("grades", type=Path, metavar="GRADES_DIR", help="the --out folder of `macos-lite grade`")
    parser.add_argument("--manual", type=Path, required=True, metavar="CSV",
                        help="the teacher's points for written questions: columns student, question, points "
                             "(notebook optional); answers.csv with its points column filled works as is")


def run(args: argparse.Namespace) -> int:
    """Rewrite ``gradebook.csv``, ``answers.csv`` and the feedback of ``GRADES_DIR`` with manual grades."""
    source = Path(args.grades) / GRADES_JSON
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        students, questions = list(data["students"]), _questions(data)
    except (OSError, ValueError, KeyError, TypeError):
        print(f"error: {args.grades}: no readable {GRADES_JSON}; give the --out folder of `macos-lite grade`",
              file=sys.stderr)
        return 2
    try:
        manual = read_manual_grades(args.manual, students, questions)
        write_outputs(args.grades, manual)
    except AssignmentError as exc:
        from macos_lite.cli_common import command_error

        return command_error(exc)
    print(f"{len(manual)} manual grades merged; gradebook in {Path(args.grades) / GRADEBOOK}, feedback in "
          f"{Path(args.grades) / FEEDBACK_DIR}/")
    return 0
