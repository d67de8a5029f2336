"""``macos-lite grade``: run every submission with the hidden checks, unattended, and write the grades.

For each ``SUBMISSIONS_DIR/<student>/<notebook>.ipynb`` whose name matches a solution notebook:

1. refuse it (0 points, status ``refused``) when it is a symbolic link, a hard link, not a regular file,
   or when its student folder is a link: its bytes are read with ``O_NOFOLLOW`` from inside
   ``SUBMISSIONS_DIR`` only, then written into a fresh temporary working folder (the kernel's cwd,
   ``HOME`` and ``TMPDIR``);
2. build the grading notebook: the containment guard first (:mod:`.containment`), then the submitted
   cells with outputs cleared, each exercise cell followed by the solution's hidden-check cells of that
   exercise (matched by exercise name; an exercise cell the student deleted gets its checks at the end);
3. execute it with papermill (kernel ``python3``, ``MACOS_LITE_PRESET=smoke``; errors do not stop the
   run) in a subprocess, killed with its kernel once the notebook has run ``timeout`` seconds past the
   guard's set-up (the set-up, which imports torch, has its own limit);
4. grade each hidden case from the executed notebook: its points when its cell ran without error, else 0
   with the checker's hint (a failed assertion), or the exception's last line and the cell that raised;
   an exercise earns the sum of its cases (``partial`` when some pass). Written answers are collected
   for the teacher (status ``manual``, 0 automatic points).

Nothing a submission does stops the batch: unreadable notebooks, syntax errors, endless loops, crashed
kernels and blocked actions are reported as such. Only solution notebooks that carry exercises or
written questions are graded and listed. Output in ``--out``:

* ``gradebook.csv``: one row per student; a column per exercise (its points), per written question (the
  teacher's points, empty until given with ``--manual`` or ``macos-lite gradebook``) and the total;
* ``grades.csv``: one row per student, notebook and exercise or question (blocked actions add a 0-point
  ``(containment)`` row); ``answers.csv``: the written answers, with an empty ``points`` column to fill
  and pass back as ``--manual``; ``grades.json``: everything above, for ``macos-lite gradebook``;
* ``feedback/<student>.html``: per student, their exercise cells and answers, each hidden case's
  result and hint -- never a hidden test's source nor a solution;
* ``summary.md`` for the class, and ``students/<student>/`` with ``report.md`` and each executed grading
  notebook (these hold the hidden tests: for the teacher only).

Student names come from folder names: they are escaped in Markdown (``|``, newlines) and in the CSV
files (a cell starting with ``=``, ``+``, ``-`` or ``@`` gets a leading ``'`` so that spreadsheets do not
run it as a formula).

Files the notebooks read (datasets, checkpoints) must exist before grading: writes outside the working
folder are blocked, so a cache a notebook would fill on first use cannot be filled there.

Isolation (``--isolation``). With bubblewrap (``bwrap``, Linux; ``apt-get install bubblewrap``) each
submission runs in a mount namespace where the whole file system is read-only except its own grading
folder and papermill's working folder, in its own PID namespace (``--unshare-pid``,
``--die-with-parent``: no process it starts outlives its grading), and without network. The guard's log
is a pipe the grader reads, so nothing in the sandbox can rewrite it. Writes from C code too (``torch.save`` to a path, ``ndarray.tofile``) cannot reach a teacher's
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
import json
import os
import stat
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .containment import GuardLog, LogPipe, guard_cell_source, kill_tree
from .gradebook import GRADES_JSON, csv_cell, markdown_cell, read_manual_grades, write_outputs
from .notebook import (
    ANSWER_TAG,
    META_KEY,
    QUESTION_TAG,
    AssignmentError,
    Exercise,
    Question,
    collect_notebooks,
    exercise_name,
    find_exercises,
    find_questions,
    read_notebook,
    where,
)

DEFAULT_TIMEOUT = 120
GRADING_PRESET = "smoke"  # the preset every submission runs with (MACOS_LITE_PRESET), whatever the machine
ISOLATIONS = ("auto", "bwrap", "guard")
STARTUP_TIMEOUT = 180  # kernel start + the guard's imports, not counted in the notebook's timeout
CSV_FIELDS = ("student", "notebook", "exercise", "points", "max_points", "status", "message")
CONTAINMENT_ROW = "(containment)"
MAX_BLOCKED = 200  # blocked actions kept per run (a loop could log millions)

__all__ = [
    "DEFAULT_TIMEOUT", "GRADING_PRESET", "SUBMISSIONS_LAYOUT", "CaseGrade", "ExerciseGrade", "NotebookGrade",
    "add_arguments", "check_submissions_folder", "collect_answers", "grade_submissions", "grading_notebook", "main",
    "read_submission", "run", "write_reports",
]

# papermill runs in its own process so that the grader can kill it (and the kernel) at the deadline
_RUNNER = """\
import json
import sys

sys.modules["rfc3987_syntax"] = None  # jsonschema's optional IRI checker: seconds to import, unused here
import papermill
from papermill.exceptions import PapermillExecutionError

source, target, cwd, start_timeout, parameters = sys.argv[1:6]
try:
    papermill.execute_notebook(source, target, kernel_name="python3", cwd=cwd, progress_bar=False,
                               allow_errors=True, start_timeout=int(start_timeout),
                               shutdown_kernel="immediate", parameters=json.loads(parameters))
except PapermillExecutionError:
    pass  # cell errors are part of the grade, read from the executed notebook
"""


@dataclass
class CaseGrade:
    """The result of one hidden case (shown in the feedback by name, never by source)."""

    name: str
    points: float
    max_points: float
    status: str  # passed | failed | error | timeout | missing | refused
    message: str = ""  # the hint: the checker's words, or the exception's last line


@dataclass
class ExerciseGrade:
    """One row of ``grades.csv``: an exercise (with its hidden cases) or a written question."""

    student: str
    notebook: str
    exercise: str
    points: float
    max_points: float
    status: str  # passed | partial | failed | error | timeout | missing | refused | blocked | manual
    message: str = ""
    cases: list[CaseGrade] = field(default_factory=list)
    kind: str = "exercise"  # exercise | question | containment
    source: str = ""  # the student's exercise cell, or their written answer


@dataclass
class NotebookGrade:
    """Everything graded for one student and one notebook."""

    student: str
    notebook: str
    exercises: list[ExerciseGrade]
    questions: list[ExerciseGrade] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    note: str = ""  # what went wrong with the run as a whole, if anything
    executed: Path | None = None  # the executed grading notebook, kept for the teacher

    @property
    def points(self) -> float:
        return sum(e.points for e in self.exercises)

    @property
    def max_points(self) -> float:
        return sum(e.max_points for e in self.exercises)

    @property
    def question_points(self) -> float:
        return sum(q.max_points for q in self.questions)

    def rows(self) -> list[ExerciseGrade]:
        rows = [*self.exercises, *self.questions]
        if self.blocked:
            rows.append(ExerciseGrade(self.student, self.notebook, CONTAINMENT_ROW, 0, 0, "blocked",
                                      "; ".join(dict.fromkeys(self.blocked)), kind="containment"))
        return rows


@dataclass
class _Solution:
    name: str
    exercises: list[Exercise]
    questions: list[Question] = field(default_factory=list)
    question_text: dict[str, str] = field(default_factory=dict)  # question -> its markdown (no answer)


@dataclass
class _Run:
    """An executed grading notebook and how its run ended."""

    origin: dict[str, tuple]  # cell id -> ("guard",) | ("student", index) | ("check", exercise, case index)
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
        for k, check in enumerate(ex.hidden_checks):
            add(nbformat.v4.new_code_cell(check.source), ("check", ex.name, k))

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
        MACOS_LITE_PRESET=GRADING_PRESET,  # the same, small preset for every student and machine
        JUPYTER_RUNTIME_DIR=str(private / "run" / "runtime"),  # the connection file: outside the student's folder
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
# everything read-only, a private /dev and /proc, no network, its own PID namespace (every process started
# inside dies with it); the submission's folder and papermill's working folder are bound writable per run
_SANDBOX_ARGS = ("--ro-bind", "/", "/", "--dev", "/dev", "--unshare-pid", "--proc", "/proc", "--unshare-net",
                 "--new-session", "--die-with-parent")


def _sandboxed(command: list[str], writable: list[Path], cwd: Path) -> list[str]:
    """``command`` run by bubblewrap with only the ``writable`` folders writable, from ``cwd``."""
    binds = [arg for path in writable for arg in ("--bind", str(path), str(path))]
    return [shutil.which("bwrap") or "bwrap", *_SANDBOX_ARGS, *binds, "--chdir", str(cwd), *command]


MAX_SUBMISSION_BYTES = 100 * 2**20


def read_submission(submissions: Path, student: str, notebook: str,
                    protected: set | frozenset = frozenset()) -> tuple[bytes | None, str]:
    """The bytes of ``submissions/student/notebook``, read without following any link.

    Returns ``(data, "")``, ``(None, "")`` when it was not submitted, or ``(None, why)`` when it is refused:
    a symbolic link (to the solution, another student's work, anything), a hard link to a file in
    ``protected`` (``(st_dev, st_ino)`` pairs: the solution notebooks, submissions that share a file), not
    a regular file, a student folder that is a link, a path resolving outside ``submissions``, or over
    100 MiB. (Other hard links are accepted: ``cp -al`` snapshots of a submissions folder are common.)
    """
    root = os.path.realpath(submissions)
    folder, path = submissions / student, submissions / student / notebook
    if folder.is_symlink():
        return None, (f"the folder {student} is a symbolic link; submit the notebooks themselves in a real "
                      "folder")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"{notebook} could not be read ({exc.strerror or exc})"
    if stat.S_ISLNK(info.st_mode):
        return None, f"{notebook} is a symbolic link; submit the notebook file itself"
    if not stat.S_ISREG(info.st_mode):
        return None, f"{notebook} is not a regular file (a folder, pipe or device); submit the notebook file itself"
    if info.st_nlink > 1 and (info.st_dev, info.st_ino) in protected:
        return None, (f"{notebook} is a hard link to a solution notebook or to another student's submission; "
                      "submit the notebook file itself")
    real = os.path.realpath(path)
    if not real.startswith(root + os.sep):
        return None, f"{notebook} resolves to {real}, outside the submissions folder; submit the notebook file itself"
    if info.st_size > MAX_SUBMISSION_BYTES:
        return None, f"{notebook} is {info.st_size / 2**20:.0f} MiB; clear its outputs and submit it again"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return None, f"{notebook} could not be opened without following links ({exc.strerror or exc})"
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(f.fileno())
        if (now.st_ino, now.st_dev) != (info.st_ino, info.st_dev) or not stat.S_ISREG(now.st_mode):
            return None, f"{notebook} changed while it was read; submit the notebook file itself"
        return f.read(MAX_SUBMISSION_BYTES + 1), ""


def _protected_files(solution_list: list[_Solution], solutions, students: list[Path]) -> set:
    """``(st_dev, st_ino)`` of the solution notebooks and of any file submitted under two names."""
    protected, seen = set(), set()
    for path in collect_notebooks(solutions):
        info = os.stat(path)
        protected.add((info.st_dev, info.st_ino))
    for folder in students:
        if folder.is_symlink():
            continue
        for sol in solution_list:
            try:
                info = os.lstat(folder / sol.name)
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            (protected if key in seen else seen).add(key)
    return protected


def _parameters(nb) -> dict:
    """Papermill parameters: the grading preset, when the notebook has a ``parameters`` cell to follow."""
    has_cell = any("parameters" in (c.get("metadata", {}).get("tags") or []) for c in nb.cells)
    return {"PRESET": GRADING_PRESET} if has_cell else {}


def _execute(data: bytes, name: str, solution: _Solution, private: Path, mpl_dir: Path, timeout: float,
             jobs: int, sandbox: bool = False) -> _Run:
    folder, run_dir = private / "folder", private / "run"
    folder.mkdir(parents=True)
    run_dir.mkdir()
    (folder / name).write_bytes(data)
    submitted = read_notebook(folder / name)
    fifo = private / "guard.pipe"  # the guard's log: a pipe only the grader reads, nothing to rewrite
    os.mkfifo(fifo, 0o600)
    log = LogPipe(fifo, max_blocked=MAX_BLOCKED)
    nb, origin = grading_notebook(submitted, solution, guard_cell_source(str(folder), str(fifo)))
    source, target = run_dir / "grading.ipynb", run_dir / "executed.ipynb"
    nbformat.write(nb, str(source))
    run = _Run(origin, submitted, name, timeout)
    command = [sys.executable, "-c", _RUNNER, str(source), str(target), str(folder), str(STARTUP_TIMEOUT),
               json.dumps(_parameters(nb))]
    if sandbox:
        command = _sandboxed(command, [folder, run_dir], folder)
    with log, open(private / "runner.log", "wb") as runner_log:
        proc = subprocess.Popen(command, cwd=folder, env=_kernel_env(folder, private, mpl_dir, jobs),
                                stdin=subprocess.DEVNULL, stdout=runner_log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        launched, ready = time.monotonic(), None
        while proc.poll() is None:
            now, guard = time.monotonic(), log.read()
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
        run.guard = log.read()
    if not sandbox:  # in the sandbox the kernel's pid is its namespace's, and the namespace is gone
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
            return f"hidden case {kind[2] + 1} of {kind[1]}"
        return "the grader's setup cell"

    def state(self, cell_id: str) -> tuple[str, str, str]:
        cell = self.cells.get(cell_id)
        return _state(cell) if cell is not None else ("not-run", "", "")

    def case(self, cid: str, exercise: str, exercise_cells: list[str]) -> tuple[str, str]:
        """``(status, message)`` for one hidden-case cell."""
        state, ename, evalue = self.state(cid)
        if state == "ok":
            return "passed", ""
        if state == "error" and ename in ("CheckFailed", "AssertionError"):
            return "failed", _last_line(evalue) or "a hidden check failed"
        if state == "error" and ename == "NotImplementedError" and str(evalue).startswith("Exercise "):
            return "failed", f"{exercise}: not implemented yet ({_last_line(evalue)})"  # the blank left as is
        if state == "error":
            # the root cause is the exercise cell's own error, when it has one (e.g. a SyntaxError)
            failing = [c for c in exercise_cells if self.state(c)[0] == "error"]
            cid = failing[0] if failing else cid
            _, ename, evalue = self.state(cid)
            return "error", f"{ename}: {_last_line(evalue)} (in {self.describe(cid)})"
        if self.run.timed_out:
            running = next((c for c in self.run.origin if self.state(c)[0] == "running"), None)
            place = f" in {self.describe(running)}" if running else ""
            return "timeout", f"timed out after {self.run.timeout:g} s{place}"
        return "error", f"not run: {self.run.problem or 'the notebook stopped before this check'}"

    def grade(self, ex: Exercise) -> list[CaseGrade]:
        """One :class:`CaseGrade` per hidden case of ``ex``."""
        origin = self.run.origin
        exercise_cells = [cid for cid, o in origin.items()
                          if o[0] == "student" and exercise_name(self.run.submitted.cells[o[1]]) == ex.name]
        results = []
        for k, case in enumerate(ex.cases):
            cid = next(cid for cid, o in origin.items() if o == ("check", ex.name, k))
            status, message = self.case(cid, ex.name, exercise_cells)
            results.append(CaseGrade(case.name, case.points if status == "passed" else 0, case.points, status,
                                     message))
        return results

    def exercise_source(self, ex: Exercise) -> str:
        cells = [self.run.submitted.cells[o[1]] for o in self.run.origin.values()
                 if o[0] == "student" and exercise_name(self.run.submitted.cells[o[1]]) == ex.name]
        return cells[-1].source if cells else ""


def _exercise_grade(student: str, notebook: str, ex: Exercise, cases: list[CaseGrade], source: str,
                    cell_missing: bool) -> ExerciseGrade:
    """An exercise's row from its cases: the sum of their points; ``partial`` when only some pass."""
    passed = [c for c in cases if c.status == "passed"]
    points = sum(c.points for c in cases)
    if len(passed) == len(cases):
        status = "passed"
        message = ("the exercise cell is missing, but the checks passed at the end of the notebook"
                   if cell_missing else "")
    elif not passed:
        first = cases[0] if all(c.status == cases[0].status for c in cases) else next(
            c for c in cases if c.status != "passed")
        status, message = first.status, first.message
        if len(cases) > 1 and any(c.message != first.message for c in cases):
            message += f" (and {len(cases) - 1} other hidden case(s) failed)"
    else:
        status = "partial"
        failed = [c for c in cases if c.status != "passed"]
        message = f"{len(passed)} of {len(cases)} hidden cases passed; " + "; ".join(
            f"{c.name}: {c.message}" for c in failed)
    return ExerciseGrade(student, notebook, ex.name, points, ex.points, status, message, cases=cases,
                         source=source)


_BLANK_ANSWER = "*Your answer here.*"


def collect_answers(submitted, questions: list[Question]) -> dict[str, str | None]:
    """Each question's answer text in a submitted notebook (None: the question cell is gone).

    The answer cell is the one the student version tagged ``answer`` for that question; failing that,
    the markdown cells right after the question cell. The blank placeholder is not an answer.
    """
    cells = submitted.cells if submitted is not None else []

    def meta(cell):
        value = cell.get("metadata", {}).get(META_KEY, {})
        return value if isinstance(value, dict) else {}

    def tags(cell):
        value = cell.get("metadata", {}).get("tags", [])
        return value if isinstance(value, list) else []

    answers: dict[str, str | None] = {}
    for q in questions:
        tagged = [c for c in cells if ANSWER_TAG in tags(c) and meta(c).get("answer") == q.name]
        if tagged:
            texts = [c.source for c in tagged]
        else:
            at = next((i for i, c in enumerate(cells)
                       if QUESTION_TAG in tags(c) and meta(c).get("question") == q.name), None)
            if at is None:
                answers[q.name] = None
                continue
            texts = []
            for c in cells[at + 1:]:
                if c.cell_type != "markdown" or tags(c):
                    break
                texts.append(c.source)
        text = "\n\n".join(texts).replace(_BLANK_ANSWER, "").strip()
        answers[q.name] = text
    return answers


def _question_grades(student: str, notebook: str, questions: list[Question], submitted,
                     status: str | None = None, why: str = "") -> list[ExerciseGrade]:
    answers = collect_answers(submitted, questions) if status is None else {}
    grades = []
    for q in questions:
        answer = answers.get(q.name)
        if status is not None:
            row = (status, why)
        elif answer is None:
            row = ("manual", "the question cell is missing from the submission")
        elif not answer:
            row = ("manual", "no answer given")
        else:
            row = ("manual", f"to grade by hand ({len(answer.split())} words)")
        grades.append(ExerciseGrade(student, notebook, q.name, 0, q.points, *row, kind="question",
                                    source=answer or ""))
    return grades


# ----------------------------------------------------------------------------------------------
# The batch
# ----------------------------------------------------------------------------------------------


def _grade_one(student: str, submission: tuple[bytes | None, str], solution: _Solution, private: Path,
               mpl_dir: Path, timeout: float, jobs: int, keep: Path, sandbox: bool = False) -> NotebookGrade:
    def zero(status, message):
        exercises = [ExerciseGrade(student, solution.name, e.name, 0, e.points, status, message,
                                   cases=[CaseGrade(c.name, 0, c.points, status, message) for c in e.cases])
                     for e in solution.exercises]
        return exercises, _question_grades(student, solution.name, solution.questions, None, status, message)

    data, refusal = submission
    if refusal:
        exercises, questions = zero("refused", refusal)
        return NotebookGrade(student, solution.name, exercises, questions, blocked=[refusal],
                             note=f"refused: {refusal}")
    if data is None:
        exercises, questions = zero("missing", "notebook not submitted")
        return NotebookGrade(student, solution.name, exercises, questions, note="not submitted")
    if not solution.exercises:  # written questions only: nothing to run
        try:
            submitted = nbformat.reads(data.decode("utf-8"), as_version=4)
        except Exception as exc:  # noqa: BLE001 -- any unreadable notebook
            exercises, questions = zero("error", f"{solution.name}: not a readable notebook ({exc})")
            return NotebookGrade(student, solution.name, exercises, questions, note="unreadable notebook")
        return NotebookGrade(student, solution.name, [],
                             _question_grades(student, solution.name, solution.questions, submitted))
    try:
        run = _execute(data, solution.name, solution, private, mpl_dir, timeout, jobs, sandbox)
    except AssignmentError as exc:
        exercises, questions = zero("error", str(exc))
        return NotebookGrade(student, solution.name, exercises, questions, note="unreadable notebook")
    reader = _Reader(run)
    grades = []
    for ex in solution.exercises:
        source = reader.exercise_source(ex)
        grades.append(_exercise_grade(student, solution.name, ex, reader.grade(ex), source,
                                      cell_missing=not any(exercise_name(c) == ex.name
                                                           for c in run.submitted.cells)))
    executed = None
    if (private / "run" / "executed.ipynb").exists():
        keep.mkdir(parents=True, exist_ok=True)
        executed = keep / solution.name
        shutil.copyfile(private / "run" / "executed.ipynb", executed)
    note = f"timed out after {timeout:g} s" if run.timed_out else run.problem
    return NotebookGrade(student, solution.name, grades,
                         _question_grades(student, solution.name, solution.questions, run.submitted),
                         blocked=run.guard.blocked, note=note, executed=executed)


def _load_solutions(solutions) -> list[_Solution]:
    """The solution notebooks that carry points (exercises or written questions), in order."""
    paths = collect_notebooks(solutions)
    if not paths:
        raise AssignmentError(f"no solution notebooks found in {', '.join(map(str, solutions))}")
    loaded = []
    for p in paths:
        nb = read_notebook(p)
        questions = find_questions(nb, p.name)
        solution = _Solution(p.name, find_exercises(nb, p.name), questions,
                             {q.name: nb.cells[q.cell].source for q in questions})
        if solution.exercises or solution.questions:
            loaded.append(solution)
    if not loaded:
        raise AssignmentError(f"no exercise or written question in the solution notebooks of "
                              f"{', '.join(map(str, solutions))}: nothing to grade")
    return loaded


SUBMISSIONS_LAYOUT = "one sub-folder per student holding that student's <notebook>.ipynb files"


def check_submissions_folder(path: str | Path) -> Path:
    """``path`` as a ``Path`` when it is a folder of submissions (:data:`SUBMISSIONS_LAYOUT`).

    Raises :class:`AssignmentError` naming ``path`` and the fix when it does not exist, is a file (or a link to
    nothing), or holds no student sub-folder (e.g. the notebooks themselves).
    """
    path = Path(path)
    if path.is_dir():
        try:
            students = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError as exc:
            raise AssignmentError(f"SUBMISSIONS_DIR {path}: cannot read the folder ({exc.strerror or exc}); "
                                  "give a folder you can read") from exc
        if students:
            return path
        what = "holds no student sub-folder"
    elif path.is_symlink():
        what = f"is a link to {os.readlink(path)}, which does not exist"
    elif path.exists():
        what = "is a file, not a folder"
    else:
        what = "does not exist"
    raise AssignmentError(f"SUBMISSIONS_DIR {path} {what}; give the folder of submissions: {SUBMISSIONS_LAYOUT}")


def grade_submissions(submissions: str | Path, solutions, out_dir: str | Path,
                      timeout: float = DEFAULT_TIMEOUT, jobs: int = 1, progress=print,
                      isolation: str = "auto", manual: str | Path | None = None) -> list[NotebookGrade]:
    """Grade ``submissions/<student>/<notebook>.ipynb`` against the solution notebooks; write the reports.

    solutions: solution notebooks and/or folders of them (their hidden-check cells are the tests).
    timeout: seconds each notebook may run after the grader's set-up; jobs: notebooks run at once;
    progress: called with one line per graded notebook (and the isolation in use). isolation: ``"auto"``
    (bubblewrap where it works, else the in-process guard alone, said through ``progress``), ``"bwrap"``
    (an :class:`AssignmentError` where it does not work) or ``"guard"`` (see the module docstring).
    manual: a CSV of the teacher's points for written questions (see :func:`read_manual_grades`), merged
    into ``gradebook.csv`` and the feedback. Returns the grades, also written to ``out_dir``.
    """
    submissions, out_dir = Path(submissions), Path(out_dir)
    if isolation not in ISOLATIONS:
        raise AssignmentError(f"isolation must be one of {ISOLATIONS}, got {isolation!r}")
    check_submissions_folder(submissions)
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
    progress(f"preset: {GRADING_PRESET} (MACOS_LITE_PRESET); timeout: {timeout:g} s per notebook after the "
             f"grader's set-up")
    questions = {sol.name: {q.name: q.points for q in sol.questions} for sol in solution_list}
    manual_points = read_manual_grades(manual, [s.name for s in students], questions) if manual else {}
    protected = _protected_files(solution_list, solutions, students)
    tasks = [(s.name, read_submission(submissions, s.name, sol.name, protected), sol)
             for s in students for sol in solution_list]
    with tempfile.TemporaryDirectory(prefix="macos-lite-grade-") as batch:
        batch = Path(batch)
        mpl_dir = batch / "matplotlib"
        _warm_matplotlib(mpl_dir)

        def work(numbered):
            n, (student, submission, sol) = numbered
            grade = _grade_one(student, submission, sol, batch / f"{n:04d}", mpl_dir, timeout, jobs,
                               out_dir / "students" / student, sandbox)
            note = f" ({grade.note})" if grade.note else ""
            progress(f"{student}/{sol.name}: {grade.points:g}/{grade.max_points:g}{note}")
            return grade

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            grades = list(pool.map(work, enumerate(tasks)))
    names = {sol.name for sol in solution_list}
    extra = {s.name: sorted(p.name for p in s.glob("*.ipynb") if p.name not in names) if not s.is_symlink()
             else [] for s in students}
    settings = {"preset": GRADING_PRESET, "timeout_s": timeout,
                "isolation": "bubblewrap" if sandbox else "in-process guard only"}
    write_reports(grades, solution_list, out_dir, extra, settings=settings, manual=manual_points)
    return grades


# ----------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------


def _num(x: float) -> str:
    return f"{x:g}"


def _json_data(grades: list[NotebookGrade], solutions: list[_Solution], settings: dict) -> dict:
    """Everything the teacher's outputs need (:mod:`.gradebook`); no hidden test source, no solution."""
    students: dict[str, dict] = {}
    for g in grades:
        students.setdefault(g.student, {})[g.notebook] = {
            "note": g.note, "blocked": list(dict.fromkeys(g.blocked)),
            "exercises": {e.exercise: {"points": e.points, "max_points": e.max_points, "status": e.status,
                                       "message": e.message, "source": e.source,
                                       "cases": [vars(c) for c in e.cases]} for e in g.exercises},
            "questions": {q.exercise: {"max_points": q.max_points, "status": q.status, "message": q.message,
                                       "answer": q.source} for q in g.questions},
        }
    notebooks = [{"notebook": s.name,
                  "exercises": [{"name": e.name, "points": e.points,
                                 "cases": [{"name": c.name, "points": c.points} for c in e.cases]}
                                for e in s.exercises],
                  "questions": [{"name": q.name, "points": q.points, "text": s.question_text.get(q.name, "")}
                                for q in s.questions]}
                 for s in solutions]
    return {"settings": settings, "notebooks": notebooks, "students": students}


def _settings_line(settings: dict) -> str:
    if not settings:
        return ""
    return (f"Graded with `MACOS_LITE_PRESET={settings['preset']}`, a timeout of {_num(settings['timeout_s'])} s "
            f"per notebook (after the grader's set-up), isolation: {settings['isolation']}.")


def write_reports(grades: list[NotebookGrade], solutions: list[_Solution], out_dir: Path,
                  extra: dict[str, list[str]] | None = None, settings: dict | None = None,
                  manual: dict | None = None) -> None:
    """Every output of a batch under ``out_dir`` (see the module docstring).

    extra: per student, submitted notebooks that match no solution (listed in the report, not graded);
    settings: preset, timeout and isolation, stated in the reports; manual: the teacher's points for
    written questions (see :func:`.gradebook.read_manual_grades`).
    """
    settings = settings or {}
    with open(out_dir / "grades.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_FIELDS)
        for g in grades:
            for r in g.rows():
                writer.writerow([csv_cell(r.student), csv_cell(r.notebook), csv_cell(r.exercise), _num(r.points),
                                 _num(r.max_points), r.status, csv_cell(r.message)])
    by_student: dict[str, list[NotebookGrade]] = {}
    for g in grades:
        by_student.setdefault(g.student, []).append(g)
    for student, items in by_student.items():
        folder = out_dir / "students" / student
        folder.mkdir(parents=True, exist_ok=True)
        report = _student_report(student, items, (extra or {}).get(student, []), settings)
        (folder / "report.md").write_text(report, encoding="utf-8")
    (out_dir / "summary.md").write_text(_summary(by_student, solutions, settings), encoding="utf-8")
    data = _json_data(grades, solutions, settings)
    (out_dir / GRADES_JSON).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_outputs(out_dir, manual)


_MARK = {"passed": "✓", "partial": "◐", "failed": "✗", "error": "✗", "timeout": "⏱", "missing": "—",
         "refused": "✗", "manual": "✎"}


def _student_report(student: str, items: list[NotebookGrade], extra: list[str], settings: dict) -> str:
    total, most = sum(g.points for g in items), sum(g.max_points for g in items)
    written = sum(g.question_points for g in items)
    lines = [f"# Grades: {markdown_cell(student)}", "", f"**Total: {_num(total)} / {_num(most)} points**"
             + (f" (+ written answers worth {_num(written)}, graded by hand)" if written else ""), ""]
    if settings:
        lines += [_settings_line(settings), ""]
    for g in items:
        lines += [f"## {g.notebook}: {_num(g.points)} / {_num(g.max_points)}", ""]
        if g.note:
            lines += [f"Run: {markdown_cell(g.note)}.", ""]
        for e in g.exercises:
            detail = f": {markdown_cell(e.message)}" if e.message else ""
            lines.append(f"- {_MARK.get(e.status, '?')} **{e.exercise}** "
                         f"{_num(e.points)} / {_num(e.max_points)} ({e.status}){detail}")
            if len(e.cases) > 1:
                lines += [f"  - {_MARK.get(c.status, '?')} {markdown_cell(c.name)}: {_num(c.points)} / "
                          f"{_num(c.max_points)}" + (f" ({markdown_cell(c.message)})" if c.message else "")
                          for c in e.cases]
        for q in g.questions:
            lines.append(f"- {_MARK.get(q.status, '?')} written **{q.exercise}** (out of {_num(q.max_points)}, "
                         f"{q.status}): {markdown_cell(q.message)}")
        if g.blocked:
            lines += ["", "Blocked actions (the grader stopped these):", ""]
            lines += [f"- {markdown_cell(m)}" for m in dict.fromkeys(g.blocked)]
        lines.append("")
    if extra:
        lines += ["Not graded (no matching solution notebook): " + ", ".join(map(markdown_cell, extra)), ""]
    return "\n".join(lines)


def _summary(by_student: dict[str, list[NotebookGrade]], solutions: list[_Solution], settings: dict) -> str:
    most = sum(e.points for s in solutions for e in s.exercises)
    written = sum(q.points for s in solutions for q in s.questions)
    auto = [s for s in solutions if s.exercises]
    header = ["student", *(f"{s.name} ({_num(sum(e.points for e in s.exercises))})" for s in auto),
              f"total ({_num(most)})", *([f"written answers ({_num(written)}, by hand)"] if written else [])]
    counts = (f"{len(by_student)} students, {len(solutions)} notebooks, "
              f"{sum(len(s.exercises) for s in solutions)} exercises ({_num(most)} points), "
              f"{sum(len(s.questions) for s in solutions)} written questions ({_num(written)} points). "
              "Per-student rows: gradebook.csv; feedback: feedback/<student>.html.")
    lines = ["# Class summary", "", counts, ""]
    if settings:
        lines += [_settings_line(settings), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for student, items in by_student.items():
        cells = {g.notebook: g for g in items}
        row = [markdown_cell(student), *(_num(cells[s.name].points) if s.name in cells else "" for s in auto),
               _num(sum(g.points for g in items))]
        if written:
            answered = sum(1 for g in items for q in g.questions if q.source)
            row.append(f"{answered} / {sum(len(s.questions) for s in solutions)} answered")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Exercises", "", "| notebook | exercise | points | hidden cases | passed | partial |",
              "|---|---|---|---|---|---|"]
    for s in auto:
        for e in s.exercises:
            got = [x for items in by_student.values() for g in items for x in g.exercises
                   if x.notebook == s.name and x.exercise == e.name]
            passed = sum(1 for x in got if x.status == "passed")
            partial = sum(1 for x in got if x.status == "partial")
            lines.append(f"| {s.name} | {e.name} | {_num(e.points)} | {len(e.cases)} | {passed} / "
                         f"{len(by_student)} | {partial} |")
    graded = [g for items in by_student.values() for g in items]
    problems = [f"{markdown_cell(g.student)} / {g.notebook}: {markdown_cell(g.note)}" for g in graded
                if g.note and g.note != "not submitted" and not g.note.startswith("refused")]
    problems += [f"{markdown_cell(g.student)} / {g.notebook}: blocked: "
                 + markdown_cell("; ".join(dict.fromkeys(g.blocked))) for g in graded if g.blocked]
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
    parser.add_argument("--manual", type=Path, default=None, metavar="CSV",
                        help="the teacher's points for written questions (columns student, question, points; "
                             "the answers.csv of an earlier run with its points filled works), merged into "
                             "gradebook.csv and the feedback; `macos-lite gradebook` merges them without "
                             "grading again")
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
    from macos_lite.cli_common import command_error, writable_folder

    try:
        check_submissions_folder(args.submissions)  # before --out is made
    except AssignmentError as exc:
        return command_error(exc)
    writable_folder(args.out, "--out")
    if args.jobs < 1 or args.timeout <= 0:
        print(f"error: --jobs must be at least 1 and --timeout positive, got {args.jobs} and {args.timeout:g}",
              file=sys.stderr)
        return 2
    try:
        grades = grade_submissions(args.submissions, args.solutions, args.out, args.timeout, args.jobs,
                                   isolation=args.isolation, manual=args.manual)
    except AssignmentError as exc:
        return command_error(exc)
    out = Path(args.out)
    print(f"graded {len({g.student for g in grades})} students (preset {GRADING_PRESET}, timeout {args.timeout:g} s "
          f"per notebook); gradebook in {out / 'gradebook.csv'}, feedback in {out / 'feedback'}/, grades in "
          f"{out / 'grades.csv'}, class summary in {out / 'summary.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m macos_lite.assignments.grade ...``: the same as ``macos-lite grade ...``."""
    parser = argparse.ArgumentParser(prog="macos-lite grade", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
