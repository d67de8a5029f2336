"""``macos-lite grade``: run every submission with the hidden checks, unattended, and write the grades.

For each ``SUBMISSIONS_DIR/<student>/<notebook>.ipynb`` whose name matches a solution notebook:

1. copy it into a fresh temporary working folder (the kernel's cwd, ``HOME`` and ``TMPDIR``);
2. build the grading notebook: the containment guard first (:mod:`.containment`), then the submitted
   cells with outputs cleared, each exercise cell followed by the solution's hidden-check cells of that
   exercise (matched by exercise name; an exercise cell the student deleted gets its checks at the end);
3. execute it with papermill (kernel ``python3``; errors do not stop the run) in a subprocess, killed
   with its kernel once the notebook has run ``timeout`` seconds past the guard's set-up (the set-up,
   which imports torch, has its own limit);
4. grade each exercise from the executed notebook: all its points when all its hidden checks ran
   without error, else 0 with the checker's hint, or the exception's last line and the cell that raised.

Nothing a submission does stops the batch: unreadable notebooks, syntax errors, endless loops, crashed
kernels and blocked actions are reported as such. Output in ``--out``: ``grades.csv`` (one row per
student, notebook and exercise; blocked actions add a 0-point ``(containment)`` row), ``summary.md`` for
the class, and ``students/<student>/`` with ``report.md`` and each executed grading notebook.

Files the notebooks read (datasets, checkpoints) must exist before grading: writes outside the working
folder are blocked, so a cache a notebook would fill on first use cannot be filled there.

Isolation (``--isolation``). With bubblewrap (``bwrap``, Linux; ``apt-get install bubblewrap``) each
submission runs in a mount namespace where the whole file system is read-only except its own grading
folder, and without network: writes from C code too (``torch.save`` to a path, ``ndarray.tofile``) cannot reach a teacher's
file. This is the default (``auto``) where bwrap works. Where it does not (macOS, Windows, containers
without user namespaces) the grader says so and falls back to the in-process guard of
:mod:`.containment` alone, which stops Python-level writes, deletions and processes but not writes made
by C code; ``--isolation bwrap`` makes the missing sandbox an error instead. Neither limits reads, memory
or CPU (the timeout bounds time): grade untrusted code on a machine or account that holds nothing else.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .containment import GuardLog, guard_cell_source, kill_tree, read_log
from .notebook import (
    AssignmentError,
    Exercise,
    collect_notebooks,
    exercise_name,
    find_exercises,
    read_notebook,
    where,
)

DEFAULT_TIMEOUT = 120
ISOLATIONS = ("auto", "bwrap", "guard")
STARTUP_TIMEOUT = 180  # kernel start + the guard's imports, not counted in the notebook's timeout
CSV_FIELDS = ("student", "notebook", "exercise", "points", "max_points", "status", "message")
CONTAINMENT_ROW = "(containment)"

__all__ = [
    "DEFAULT_TIMEOUT", "ExerciseGrade", "NotebookGrade", "add_arguments", "grade_submissions",
    "grading_notebook", "main", "run", "write_reports",
]

# papermill runs in its own process so that the grader can kill it (and the kernel) at the deadline
_RUNNER = """\
import sys

sys.modules["rfc3987_syntax"] = None  # jsonschema's optional IRI checker: seconds to import, unused here
import papermill
from papermill.exceptions import PapermillExecutionError

source, target, cwd, start_timeout = sys.argv[1:5]
try:
    papermill.execute_notebook(source, target, kernel_name="python3", cwd=cwd, progress_bar=False,
                               allow_errors=True, start_timeout=int(start_timeout),
                               shutdown_kernel="immediate")
except PapermillExecutionError:
    pass  # cell errors are part of the grade, read from the executed notebook
"""


@dataclass
class ExerciseGrade:
    """One row of ``grades.csv``."""

    student: str
    notebook: str
    exercise: str
    points: float
    max_points: float
    status: str  # passed | failed | error | timeout | missing | blocked
    message: str = ""


@dataclass
class NotebookGrade:
    """Everything graded for one student and one notebook."""

    student: str
    notebook: str
    exercises: list[ExerciseGrade]
    blocked: list[str] = field(default_factory=list)
    note: str = ""  # what went wrong with the run as a whole, if anything
    executed: Path | None = None  # the executed grading notebook, kept for the teacher

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)

    def rows(self) -> list[ExerciseGrade]:
        rows = list(self.exercises)
        if self.blocked:
            rows.append(ExerciseGrade(self.student, self.notebook, CONTAINMENT_ROW, 0, 0, "blocked",
                                      "; ".join(dict.fromkeys(self.blocked))))
        return rows


@dataclass
class _Solution:
    name: str
    exercises: list[Exercise]


@dataclass
class _Run:
    """An executed grading notebook and how its run ended."""

    origin: dict[str, tuple]  # cell id -> ("guard",) | ("student", index) | ("check", exercise)
    submitted: nbformat.NotebookNode
    notebook: str
    timeout: float
    executed: nbformat.NotebookNode | None = None
    timed_out: bool = False
    problem: str = ""  # why the run ended early (not a time-out), "" if it ran to the end
    guard: GuardLog = field(default_factory=GuardLog)


# ----------------------------------------------------------------------------------------------
# Building and running the grading notebook
# ----------------------------------------------------------------------------------------------


def grading_notebook(submitted, solution: _Solution, guard: str):
    """The notebook the grader runs, and the origin of each of its cells by id (see :class:`_Run`)."""
    nb = nbformat.v4.new_notebook(metadata=copy.deepcopy(submitted.metadata))
    nb.metadata.pop("widgets", None)
    origin: dict[str, tuple] = {}

    def add(cell, where_from):
        cell.id = f"grader-{len(nb.cells)}"  # fresh, unique ids: submissions may repeat or lack them
        origin[cell.id] = where_from
        nb.cells.append(cell)

    def add_checks(ex):
        for check in ex.hidden_checks:
            add(nbformat.v4.new_code_cell(check.source), ("check", ex.name))

    add(nbformat.v4.new_code_cell(guard), ("guard",))
    last_cell = {}  # exercise -> index of its last exercise cell in the submission (the one that counts)
    for i, cell in enumerate(submitted.cells):
        if exercise_name(cell):
            last_cell[exercise_name(cell)] = i
    checks_after: dict[int, list[Exercise]] = {}
    for ex in solution.exercises:
        checks_after.setdefault(last_cell.get(ex.name, len(submitted.cells) - 1), []).append(ex)
    for i, cell in enumerate(submitted.cells):
        new = copy.deepcopy(cell)
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        add(new, ("student", i))
        for ex in checks_after.get(i, []):
            add_checks(ex)
    if not submitted.cells:  # an empty notebook still gets its checks run (and failed)
        for ex in solution.exercises:
            add_checks(ex)
    return nb, origin


def _kernel_env(folder: Path, private: Path, mpl_dir: Path, jobs: int) -> dict:
    tmp = folder / "tmp"
    tmp.mkdir()
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    # kernels running side by side share the cores: oversubscribed OpenMP threads slow torch down badly
    env.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // max(1, jobs))))
    env.update(
        HOME=str(folder), TMPDIR=str(tmp), TMP=str(tmp), TEMP=str(tmp),
        PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg", MPLCONFIGDIR=str(mpl_dir),
        JUPYTER_RUNTIME_DIR=str(private / "runtime"),  # the connection file: outside the student's folder
        # the kernelspec's "python" must be this environment's interpreter
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env


def _warm_matplotlib(mpl_dir: Path) -> None:
    """Build matplotlib's font cache for the batch before any kernel: a guarded one could not write it."""
    mpl_dir.mkdir()
    env = {**os.environ, "MPLCONFIGDIR": str(mpl_dir), "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-c", "import matplotlib.font_manager"], env=env, capture_output=True,
                   timeout=STARTUP_TIMEOUT, check=False)


def sandbox_problem() -> str | None:
    """Why OS-level isolation (bubblewrap) cannot be used here, or None when it works (probed once)."""
    global _SANDBOX_PROBE
    if _SANDBOX_PROBE is None:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            _SANDBOX_PROBE = ("bubblewrap (bwrap) is not installed; on Debian/Ubuntu: apt-get install bubblewrap "
                              "(needs user namespaces or root)")
        else:
            try:
                probe = subprocess.run([bwrap, *_SANDBOX_ARGS, "true"], capture_output=True, text=True,
                                       timeout=30, check=False)
                _SANDBOX_PROBE = "" if probe.returncode == 0 else (
                    f"bwrap is installed but cannot start a sandbox here ({(probe.stderr or '').strip()[:200]}); "
                    "user namespaces may be disabled (e.g. inside a container)")
            except (OSError, subprocess.SubprocessError) as exc:
                _SANDBOX_PROBE = f"bwrap could not run ({exc})"
    return _SANDBOX_PROBE or None


_SANDBOX_PROBE: str | None = None
# everything read-only, a private /dev and /proc, no network; the grading folder is bound writable per run
_SANDBOX_ARGS = ("--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--new-session",
                 "--die-with-parent")


def _sandboxed(command: list[str], private: Path, folder: Path) -> list[str]:
    """``command`` run by bubblewrap with only ``private`` (which holds the submission's folder) writable."""
    return [shutil.which("bwrap") or "bwrap", *_SANDBOX_ARGS, "--bind", str(private), str(private),
            "--chdir", str(folder), *command]


def _execute(submission: Path, solution: _Solution, private: Path, mpl_dir: Path, timeout: float,
             jobs: int, sandbox: bool = False) -> _Run:
    folder = private / "folder"
    folder.mkdir(parents=True)
    shutil.copy2(submission, folder / submission.name)
    submitted = read_notebook(folder / submission.name)
    log = private / "guard.log"
    nb, origin = grading_notebook(submitted, solution, guard_cell_source(str(folder), str(log)))
    source, target = private / "grading.ipynb", private / "executed.ipynb"
    nbformat.write(nb, str(source))
    run = _Run(origin, submitted, submission.name, timeout)
    command = [sys.executable, "-c", _RUNNER, str(source), str(target), str(folder), str(STARTUP_TIMEOUT)]
    if sandbox:
        command = _sandboxed(command, private, folder)
    with open(private / "runner.log", "wb") as runner_log:
        proc = subprocess.Popen(command, cwd=folder, env=_kernel_env(folder, private, mpl_dir, jobs),
                                stdin=subprocess.DEVNULL, stdout=runner_log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        launched, ready = time.monotonic(), None
        while proc.poll() is None:
            now, guard = time.monotonic(), read_log(log)
            if ready is None and guard.ready:
                ready = now
            if guard.failure:
                run.problem = f"the grader's setup cell failed ({guard.failure})"
            elif ready is None and now - launched > STARTUP_TIMEOUT:
                run.problem = f"the kernel did not start within {STARTUP_TIMEOUT} s"
            elif ready is not None and now - ready > timeout:
                run.timed_out = True
            if run.problem or run.timed_out:
                kill_tree(proc.pid, guard.pid, kernel_marker=str(private))
                proc.wait()
                break
            time.sleep(0.1)
    run.guard = read_log(log)
    kill_tree(None, run.guard.pid, kernel_marker=str(private))  # a kernel that outlived papermill
    if run.guard.failure and not run.problem:
        run.problem = f"the grader's setup cell failed ({run.guard.failure})"
    if proc.returncode and not (run.timed_out or run.problem):
        lines = (private / "runner.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()
        run.problem = f"the notebook run stopped: {lines[-1] if lines else f'exit code {proc.returncode}'}"
    if target.exists():
        try:
            run.executed = nbformat.read(str(target), as_version=4)
        except Exception as exc:  # noqa: BLE001 -- e.g. a write cut short by the kill
            run.problem = run.problem or f"the executed notebook could not be read ({exc})"
    if run.timed_out and run.executed is not None and all(
            _state(c)[0] in ("ok", "error") for c in run.executed.cells if c.get("id") in origin):
        run.timed_out = False  # every cell had run: only the kernel's shutdown was late
    return run


# ----------------------------------------------------------------------------------------------
# Reading the grades off the executed notebook
# ----------------------------------------------------------------------------------------------


def _state(cell) -> tuple[str, str, str]:
    """``(state, ename, evalue)``: state is ok | error | running | not-run (text cells are ok)."""
    if cell.cell_type != "code":
        return "ok", "", ""
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        return "error", errors[-1].get("ename", "Error"), errors[-1].get("evalue", "")
    if cell.metadata.get("papermill", {}).get("status") == "running":
        return "running", "", ""
    return ("ok" if cell.get("execution_count") is not None else "not-run"), "", ""


def _last_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


class _Reader:
    """Per-exercise verdicts from one :class:`_Run`."""

    def __init__(self, run: _Run):
        self.run = run
        self.cells = {c.get("id"): c for c in (run.executed.cells if run.executed is not None else [])}

    def describe(self, cell_id: str) -> str:
        kind = self.run.origin[cell_id]
        if kind[0] == "student":
            return where(self.run.notebook, kind[1], self.run.submitted.cells[kind[1]])
        if kind[0] == "check":
            return f"the hidden check of {kind[1]}"
        return "the grader's setup cell"

    def state(self, cell_id: str) -> tuple[str, str, str]:
        cell = self.cells.get(cell_id)
        return _state(cell) if cell is not None else ("not-run", "", "")

    def grade(self, ex: Exercise) -> tuple[str, str]:
        """``(status, message)`` for one exercise."""
        origin = self.run.origin
        checks = [cid for cid, o in origin.items() if o == ("check", ex.name)]
        exercise_cells = [cid for cid, o in origin.items()
                          if o[0] == "student" and exercise_name(self.run.submitted.cells[o[1]]) == ex.name]
        for cid in checks:
            state, ename, evalue = self.state(cid)
            if state == "ok":
                continue
            if state == "error" and ename == "CheckFailed":
                return "failed", _last_line(evalue)
            if state == "error":
                # the root cause is the exercise cell's own error, when it has one (e.g. a SyntaxError)
                failing = [c for c in exercise_cells if self.state(c)[0] == "error"]
                cid = failing[0] if failing else cid
                _, ename, evalue = self.state(cid)
                return "error", f"{ename}: {_last_line(evalue)} (in {self.describe(cid)})"
            if self.run.timed_out:
                running = next((c for c in origin if self.state(c)[0] == "running"), None)
                place = f" in {self.describe(running)}" if running else ""
                return "timeout", f"timed out after {self.run.timeout:g} s{place}"
            return "error", f"not run: {self.run.problem or 'the notebook stopped before this check'}"
        if not exercise_cells:
            return "passed", "the exercise cell is missing, but the checks passed at the end of the notebook"
        return "passed", ""


# ----------------------------------------------------------------------------------------------
# The batch
# ----------------------------------------------------------------------------------------------


def _grade_one(student: str, path: Path | None, solution: _Solution, private: Path, mpl_dir: Path,
               timeout: float, jobs: int, keep: Path, sandbox: bool = False) -> NotebookGrade:
    def zero(status, message):
        return [ExerciseGrade(student, solution.name, e.name, 0, e.points, status, message)
                for e in solution.exercises]

    if path is None:
        return NotebookGrade(student, solution.name, zero("missing", "notebook not submitted"),
                             note="not submitted")
    try:
        run = _execute(path, solution, private, mpl_dir, timeout, jobs, sandbox)
    except AssignmentError as exc:
        return NotebookGrade(student, solution.name, zero("error", str(exc)), note="unreadable notebook")
    reader = _Reader(run)
    grades = []
    for ex in solution.exercises:
        status, message = reader.grade(ex)
        points = ex.points if status == "passed" else 0
        grades.append(ExerciseGrade(student, solution.name, ex.name, points, ex.points, status, message))
    executed = None
    if (private / "executed.ipynb").exists():
        keep.mkdir(parents=True, exist_ok=True)
        executed = keep / solution.name
        shutil.copyfile(private / "executed.ipynb", executed)
    note = f"timed out after {timeout:g} s" if run.timed_out else run.problem
    return NotebookGrade(student, solution.name, grades, blocked=run.guard.blocked, note=note,
                         executed=executed)


def _load_solutions(solutions) -> list[_Solution]:
    paths = collect_notebooks(solutions)
    loaded = [_Solution(p.name, find_exercises(read_notebook(p), p.name)) for p in paths]
    if not loaded:
        raise AssignmentError(f"no solution notebooks found in {', '.join(map(str, solutions))}")
    return loaded


def grade_submissions(submissions: str | Path, solutions, out_dir: str | Path,
                      timeout: float = DEFAULT_TIMEOUT, jobs: int = 1, progress=print,
                      isolation: str = "auto") -> list[NotebookGrade]:
    """Grade ``submissions/<student>/<notebook>.ipynb`` against the solution notebooks; write the reports.

    solutions: solution notebooks and/or folders of them (their hidden-check cells are the tests).
    timeout: seconds each notebook may run after the grader's set-up; jobs: notebooks run at once;
    progress: called with one line per graded notebook (and the isolation in use). isolation: ``"auto"``
    (bubblewrap where it works, else the in-process guard alone, said through ``progress``), ``"bwrap"``
    (an :class:`AssignmentError` where it does not work) or ``"guard"`` (see the module docstring).
    Returns the grades, also written to ``out_dir``.
    """
    submissions, out_dir = Path(submissions), Path(out_dir)
    if isolation not in ISOLATIONS:
        raise AssignmentError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
    if not submissions.is_dir():
        raise AssignmentError(f"{submissions}: no such folder of submissions "
                              "(expected <student>/<notebook>.ipynb)")
    problem = sandbox_problem() if isolation != "guard" else None
    if isolation == "bwrap" and problem:
        raise AssignmentError(f"--isolation bwrap: {problem}")
    sandbox = isolation != "guard" and not problem
    if sandbox:
        progress("isolation: bubblewrap sandbox (the file system is read-only outside each submission's folder)")
    else:
        why = problem or "--isolation guard"
        progress(f"warning: no OS-level isolation ({why}). Submissions are contained only by the in-process "
                 "guard, which stops Python-level writes outside their folder but not writes from C code "
                 "(torch.save to a path, ndarray.tofile); grade untrusted work where bubblewrap works, or in a container or VM.")
    solution_list = _load_solutions(solutions)
    students = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(s.name, s / sol.name if (s / sol.name).is_file() else None, sol)
             for s in students for sol in solution_list]
    with tempfile.TemporaryDirectory(prefix="macos-lite-grade-") as batch:
        batch = Path(batch)
        mpl_dir = batch / "matplotlib"
        _warm_matplotlib(mpl_dir)

        def work(numbered):
            n, (student, path, sol) = numbered
            grade = _grade_one(student, path, sol, batch / f"{n:04d}", mpl_dir, timeout, jobs,
                               out_dir / "students" / student, sandbox)
            note = f" ({grade.note})" if grade.note else ""
            progress(f"{student}/{sol.name}: {grade.points:g}/{grade.max_points:g}{note}")
            return grade

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            grades = list(pool.map(work, enumerate(tasks)))
    names = {sol.name for sol in solution_list}
    extra = {s.name: sorted(p.name for p in s.glob("*.ipynb") if p.name not in names) for s in students}
    write_reports(grades, solution_list, out_dir, extra)
    return grades


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:g}"


def write_reports(grades: list[NotebookGrade], solutions: list[_Solution], out_dir: Path,
                  extra: dict[str, list[str]] | None = None) -> None:
    """``grades.csv``, ``summary.md`` and ``students/<student>/report.md`` under ``out_dir``.

    extra: per student, submitted notebooks that match no solution (listed in the report, not graded).
    """
    with open(out_dir / "grades.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for g in grades:
            for r in g.rows():
                writer.writerow([r.student, r.notebook, r.exercise, _num(r.points), _num(r.max_points),
                                 r.status, r.message])
    by_student: dict[str, list[NotebookGrade]] = {}
    for g in grades:
        by_student.setdefault(g.student, []).append(g)
    for student, items in by_student.items():
        folder = out_dir / "students" / student
        folder.mkdir(parents=True, exist_ok=True)
        report = _student_report(student, items, (extra or {}).get(student, []))
        (folder / "report.md").write_text(report, encoding="utf-8")
    (out_dir / "summary.md").write_text(_summary(by_student, solutions), encoding="utf-8")


_MARK = {"passed": "✓", "failed": "✗", "error": "✗", "timeout": "⏱", "missing": "—"}


def _student_report(student: str, items: list[NotebookGrade], extra: list[str]) -> str:
    total, most = sum(g.points for g in items), sum(g.max_points for g in items)
    lines = [f"# Grades: {student}", "", f"**Total: {_num(total)} / {_num(most)} points**", ""]
    for g in items:
        lines += [f"## {g.notebook}: {_num(g.points)} / {_num(g.max_points)}", ""]
        if g.note:
            lines += [f"Run: {g.note}.", ""]
        for e in g.exercises:
            detail = f": {e.message}" if e.message else ""
            lines.append(f"- {_MARK.get(e.status, '?')} **{e.exercise}** "
                         f"{_num(e.points)} / {_num(e.max_points)} ({e.status}){detail}")
        if g.blocked:
            lines += ["", "Blocked actions (the grader stopped these):", ""]
            lines += [f"- {m}" for m in dict.fromkeys(g.blocked)]
        lines.append("")
    if extra:
        lines += ["Not graded (no matching solution notebook): " + ", ".join(extra), ""]
    return "\n".join(lines)


def _summary(by_student: dict[str, list[NotebookGrade]], solutions: list[_Solution]) -> str:
    most = sum(e.points for s in solutions for e in s.exercises)
    header = ["student", *(f"{s.name} ({_num(sum(e.points for e in s.exercises))})" for s in solutions),
              f"total ({_num(most)})"]
    counts = (f"{len(by_student)} students, {len(solutions)} notebooks, "
              f"{sum(len(s.exercises) for s in solutions)} exercises, {_num(most)} points.")
    lines = ["# Class summary", "", counts, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for student, items in by_student.items():
        cells = {g.notebook: g for g in items}
        row = [student, *(_num(cells[s.name].points) if s.name in cells else "" for s in solutions),
               _num(sum(g.points for g in items))]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Exercises", "", "| notebook | exercise | points | passed |", "|---|---|---|---|"]
    for s in solutions:
        for e in s.exercises:
            passed = sum(1 for items in by_student.values() for g in items for x in g.exercises
                         if x.notebook == s.name and x.exercise == e.name and x.status == "passed")
            lines.append(f"| {s.name} | {e.name} | {_num(e.points)} | {passed} / {len(by_student)} |")
    graded = [g for items in by_student.values() for g in items]
    problems = [f"{g.student} / {g.notebook}: {g.note}" for g in graded
                if g.note and g.note != "not submitted"]
    problems += [f"{g.student} / {g.notebook}: blocked: " + "; ".join(dict.fromkeys(g.blocked))
                 for g in graded if g.blocked]
    if problems:
        lines += ["", "## Runs to look at", "", *(f"- {p}" for p in problems)]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``grade`` options to ``parser`` (a subcommand parser of ``macos-lite``)."""
    parser.add_argument("submissions", type=Path, metavar="SUBMISSIONS_DIR",
                        help="folder of submissions laid out as <student>/<notebook>.ipynb")
    parser.add_argument("--solutions", nargs="+", required=True, metavar="DIR_OR_NOTEBOOK",
                        help="the solution notebooks (or folders of them) whose hidden checks grade the work")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="where grades.csv, summary.md and students/<student>/report.md go")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                        help="run time allowed per notebook after the grader's set-up "
                             f"(default {DEFAULT_TIMEOUT})")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="notebooks graded at once (default 1)")
    problem = sandbox_problem()
    here = ("available on this machine" if not problem else
            f"NOT AVAILABLE on this machine ({problem}), so submissions are contained only by the in-process guard")
    parser.add_argument("--isolation", choices=ISOLATIONS, default="auto",
                        help="auto (default): run each submission in a bubblewrap sandbox where the file system is "
                             "read-only outside its folder (Linux, `apt-get install bubblewrap`); where bwrap is "
                             "missing or cannot start, say so and fall back to the in-process guard, which does "
                             "NOT stop writes from C code such as torch.save. bwrap: refuse to grade without the "
                             f"sandbox. guard: the in-process guard only. The sandbox is {here}")


def run(args: argparse.Namespace) -> int:
    """Carry out parsed ``grade`` arguments; returns the process exit code."""
    from macos_lite.cli import writable_folder

    writable_folder(args.out, "--out")
    if args.jobs < 1 or args.timeout <= 0:
        print(f"error: --jobs must be at least 1 and --timeout positive, got {args.jobs} and {args.timeout:g}",
              file=sys.stderr)
        return 2
    try:
        grades = grade_submissions(args.submissions, args.solutions, args.out, args.timeout, args.jobs,
                                   isolation=args.isolation)
    except AssignmentError as exc:
        from macos_lite.cli import debug_enabled

        if debug_enabled():
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    print(f"graded {len({g.student for g in grades})} students; grades in {out / 'grades.csv'}, "
          f"class summary in {out / 'summary.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m macos_lite.assignments.grade ...``: the same as ``macos-lite grade ...``."""
    parser = argparse.ArgumentParser(prog="macos-lite grade", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
