"""Student notebooks generated from the fixture solution notebooks, and the unattended grader.

The grader runs real kernels: one batch (eleven students, eight notebook runs) is graded once per module
and shared by the grading tests.
"""

import argparse
import ast
import copy
import csv
import html as html_lib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import psutil
import pytest
import torch

from macos_lite.assignments import AssignmentError, make_assignment, student_notebook
from macos_lite.assignments import assign as assign_cli
from macos_lite.assignments import grade as grade_cli
from macos_lite.assignments.containment import guard_cell_source, read_log
from macos_lite.assignments.grade import grade_submissions, grading_notebook
from macos_lite.assignments.notebook import find_exercises

FIXTURES = Path(__file__).parent / "fixtures" / "assignments"
SOLUTIONS = sorted(FIXTURES.glob("*.ipynb"))
TIMEOUT = 5


def load(path):
    return nbformat.read(str(path), as_version=4)


def solution_lines(path):
    """The stripped lines between the markers of a solution notebook, found without the package."""
    lines, inside = [], False
    for cell in load(path).cells:
        for line in cell.source.splitlines():
            if "BEGIN SOLUTION" in line:
                inside = True
            elif "END SOLUTION" in line:
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def all_strings(node):
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in [k, *all_strings(v)]]
    if isinstance(node, list):
        return [s for v in node for s in all_strings(v)]
    return []


def exercise_cell(nb, name):
    return next(c for c in nb.cells if c.metadata.get("macos_lite", {}).get("exercise") == name
                and "exercise" in c.metadata.get("tags", []))


# ----------------------------------------------------------------------------------------------
# assign


@pytest.fixture(scope="module")
def assigned(tmp_path_factory):
    out = tmp_path_factory.mktemp("student")
    return out, make_assignment([FIXTURES], out)


def test_manifest_lists_exercises_and_points(assigned):
    out, manifest = assigned
    assert json.loads((out / "manifest.json").read_text()) == manifest
    entries = {n["notebook"]: n for n in manifest["notebooks"]}
    assert set(entries) == {p.name for p in SOLUTIONS}
    assert entries["01_correlation.ipynb"]["exercises"] == [
        {"name": "correlation", "points": 2, "hidden_checks": 2,
         "hidden_cases": [{"name": "batch 3, 5 x 2 and 4 x 3 grids, float64", "points": 1},
                          {"name": "every similarity negative", "points": 1}]}]
    # a hidden check without points takes the exercise's points (notebooks written before points per case)
    assert entries["02_cycle.ipynb"]["exercises"] == [
        {"name": "cycle_loss", "points": 3, "hidden_checks": 1, "hidden_cases": [{"name": "case 1", "points": 3}]}]
    assert entries["01_correlation.ipynb"]["questions"] == []
    assert entries["02_cycle.ipynb"]["questions"] == [{"name": "why_not_squared", "points": 1}]
    assert manifest["total_points"] == 5 and manifest["total_question_points"] == 1


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_student_version_has_no_solution_text(assigned, solution):
    out, _ = assigned
    student = json.loads((out / solution.name).read_text())
    text = "\n".join(all_strings(student))
    secret = solution_lines(solution)
    assert secret, "the fixture must contain solution blocks"
    for line in secret:
        assert line not in text
    assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
    assert ".assert_ok()" not in text  # the hidden checks are gone, the visible self-check stays
    assert any("check_" in s for s in all_strings(student))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_student_code_cells_parse_and_are_stripped(assigned, solution):
    out, _ = assigned
    nb = load(out / solution.name)
    nbformat.validate(nb)
    for cell in nb.cells:
        assert "hidden-check" not in cell.metadata.get("tags", [])
        if cell.cell_type == "code":
            ast.parse(cell.source)
            assert cell.outputs == [] and cell.execution_count is None
    assert "widgets" not in nb.metadata and nb.metadata.kernelspec.name == "python3"


def test_blank_keeps_the_indentation_and_raises_when_run(assigned):
    out, _ = assigned
    cell = exercise_cell(load(out / "01_correlation.ipynb"), "correlation")
    assert cell.metadata["macos_lite"] == {"exercise": "correlation", "points": 2}
    assert '    raise NotImplementedError("Exercise correlation: ' in cell.source
    namespace = {"torch": torch}
    exec(compile(cell.source, "exercise-cell", "exec"), namespace)  # noqa: S102 -- run the student cell
    with pytest.raises(NotImplementedError, match="Exercise correlation"):
        namespace["correlation"](torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3))


def test_markdown_answers_are_blanked(assigned):
    out, _ = assigned
    texts = [c.source for c in load(out / "02_cycle.ipynb").cells if c.cell_type == "markdown"]
    assert any("*Your answer here.*" in t for t in texts)


def test_outputs_and_metadata_never_carry_solutions(tmp_path):
    nb = load(SOLUTIONS[0])
    secret = solution_lines(SOLUTIONS[0])[0]
    cell = exercise_cell(nb, "correlation")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=secret)]
    cell.execution_count = 3
    cell.metadata["scratch"] = secret
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"w": secret}}}
    student, _ = student_notebook(nb, "x.ipynb")
    assert secret not in json.dumps(student)
    # a kept metadata key holding solution text stops the generation
    cell.metadata["macos_lite"]["note"] = secret
    with pytest.raises(AssignmentError, match="would survive"):
        student_notebook(nb, "x.ipynb")


def _unclosed(nb):
    cell = exercise_cell(nb, "correlation")
    cell.source = cell.source.replace("    ### END SOLUTION", "")


def _bad_indent(nb):
    cell = exercise_cell(nb, "correlation")
    cell.source = "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n  x = 2"


@pytest.mark.parametrize("edit, words", [
    (_unclosed, "never closed"),
    (lambda nb: nb.cells[1].update(source="x = 1\n### END SOLUTION"), "without a BEGIN"),
    (lambda nb: exercise_cell(nb, "correlation").metadata["macos_lite"].update(points=-1), "points"),
    (lambda nb: nb.cells.__setitem__(slice(None), [c for c in nb.cells
                                                    if "hidden-check" not in c.metadata.get("tags", [])]),
     "no `hidden-check` cell"),
    (lambda nb: nb.cells.append(copy.deepcopy(exercise_cell(nb, "correlation"))), "used twice"),
    (_bad_indent, "not valid Python"),
])
def test_convention_errors_name_the_cell(edit, words):
    nb = load(SOLUTIONS[0])
    edit(nb)
    with pytest.raises(AssignmentError, match=words) as info:
        student_notebook(nb, "bad.ipynb")
    assert "bad.ipynb" in str(info.value)


def test_assign_command(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    assign_cli.add_arguments(parser)
    assert assign_cli.run(parser.parse_args([str(SOLUTIONS[0]), "--out", str(tmp_path / "s")])) == 0
    assert (tmp_path / "s" / SOLUTIONS[0].name).exists() and "1 student notebooks" in capsys.readouterr().out
    assert assign_cli.run(parser.parse_args([str(FIXTURES), "--out", str(FIXTURES)])) == 2  # would overwrite
    assert "choose another folder" in capsys.readouterr().err


def test_hidden_checks_are_inserted_after_their_exercise():
    solution = grade_cli._Solution("01_correlation.ipynb", find_exercises(load(SOLUTIONS[0]), "s"))
    submitted = load(SOLUTIONS[0])
    nb, origin = grading_notebook(submitted, solution, "GUARD")
    kinds = [origin[c.id] for c in nb.cells]
    assert kinds[0] == ("guard",) and nb.cells[0].source == "GUARD"
    at = kinds.index(("student", 2))  # the exercise cell
    assert kinds[at + 1:at + 3] == [("check", "correlation", 0), ("check", "correlation", 1)]
    assert len({c.id for c in nb.cells}) == len(nb.cells)
    submitted.cells.pop(2)  # a student who deleted the exercise cell: the checks run at the end
    nb, origin = grading_notebook(submitted, solution, "GUARD")
    assert origin[nb.cells[-1].id] == ("check", "correlation", 1)


# ----------------------------------------------------------------------------------------------
# the course's own exercises (notebooks 07-11): their hidden cases, run in-process without a kernel

COURSE = Path(__file__).resolve().parents[1] / "notebooks"
# notebook -> its exercises; each exercise cell and its hidden-check cells import what they use
COURSE_EXERCISES = {
    "07_task_consistency_and_objective.ipynb": ("warped_mask_bce", "weighted_objective"),
    "08_training.ipynb": ("training_step",),
    "09_evaluation.ipynb": ("pck_per_pair",),
    "10_interactive_demos.ipynb": ("ddt_projection",),
    "11_ablations_and_sensitivity.ipynb": ("standard_error",),
}
COURSE_CASES = [(nb, ex) for nb, names in COURSE_EXERCISES.items() for ex in names]


def case_points(exercise_source: str, ex) -> list:
    """The points each hidden case of ``ex`` earns after running ``exercise_source`` (0 when its cell raises)."""
    namespace: dict = {}
    try:
        exec(compile(exercise_source, "<exercise>", "exec"), namespace)
    except Exception:  # a broken exercise cell: every case fails
        return [0 for _ in ex.cases]
    earned = []
    for case in ex.cases:
        try:
            exec(compile(case.cell.source, f"<{case.name}>", "exec"), dict(namespace))
            earned.append(case.points)
        except Exception:
            earned.append(0)
    return earned


def course_exercise(notebook: str, name: str):
    nb = load(COURSE / notebook)
    return nb, next(e for e in find_exercises(nb, notebook) if e.name == name)


@pytest.mark.parametrize("notebook, name", COURSE_CASES, ids=[n for _, n in COURSE_CASES])
def test_course_solution_earns_every_hidden_case_and_a_blank_copy_none(notebook, name, capsys):
    nb, ex = course_exercise(notebook, name)
    assert len(ex.cases) >= 2 and all(c.points > 0 for c in ex.cases)
    assert ex.points == sum(c.points for c in ex.cases)
    assert case_points(nb.cells[ex.cell].source, ex) == [c.points for c in ex.cases]
    student, _ = student_notebook(nb, notebook)
    blank = exercise_cell(student, name).source
    assert "NotImplementedError" in blank
    assert sum(case_points(blank, ex)) == 0


@pytest.mark.parametrize("notebook, name", COURSE_CASES, ids=[n for _, n in COURSE_CASES])
def test_course_hidden_cases_differ_from_the_visible_self_check(notebook, name):
    nb, ex = course_exercise(notebook, name)
    checker = f"check_{name}({name}"
    visible = [c.source for c in nb.cells if c.cell_type == "code" and checker in c.source
               and "hidden-check" not in c.metadata.get("tags", [])]
    assert len(visible) == 1 and f"check_{name}({name})" in visible[0]  # the self-check: the checker's defaults
    calls = [c.cell.source[c.cell.source.index(checker):] for c in ex.cases]
    assert all(call.startswith(checker + ",") for call in calls)  # every hidden case sets its own case
    assert len(set(calls)) == len(calls)


def test_a_course_exercise_passing_its_self_check_but_not_a_hidden_case_earns_partial_points(capsys):
    nb, ex = course_exercise("09_evaluation.ipynb", "pck_per_pair")
    source = nb.cells[ex.cell].source
    handled = "keep = torch.ones(b, n, dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool()"
    assert handled in source
    forgets_none = source.replace(handled, "keep = valid.bool()")  # valid=None is not handled
    namespace: dict = {}
    exec(forgets_none, namespace)
    from macos_lite.checks import check_pck_per_pair

    assert check_pck_per_pair(namespace["pck_per_pair"], verbose=False).passed  # the visible self-check
    earned = case_points(forgets_none, ex)
    by_case = dict(zip((c.name for c in ex.cases), earned))
    assert by_case["no valid mask"] == 0 and 0 < sum(earned) < ex.points

# ----------------------------------------------------------------------------------------------
# containment, without a kernel


def test_guard_blocks_actions_outside_the_folder(tmp_path):
    folder, log = tmp_path / "folder", tmp_path / "guard.log"
    folder.mkdir()
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep")
    script = guard_cell_source(str(folder), str(log), preload=()) + textwrap.dedent(f"""
        import os, shutil, subprocess, pathlib
        def attempt(name, action):
            try:
                action()
                print(name, "allowed")
            except PermissionError as exc:
                print(name, "blocked", exc)
        attempt("write-inside", lambda: os.mkdir("a") or open("a/b.txt", "w").close())
        attempt("rmtree-inside", lambda: shutil.rmtree("a"))
        attempt("read-outside", lambda: open({str(sentinel)!r}).read())
        attempt("delete", lambda: os.remove({str(sentinel)!r}))
        attempt("write", lambda: open({str(sentinel)!r}, "a"))
        attempt("rename", lambda: os.rename({str(sentinel)!r}, "stolen.txt"))
        attempt("rmtree", lambda: shutil.rmtree({str(tmp_path)!r}))
        attempt("symlink-write", lambda: os.symlink({str(sentinel)!r}, "link") or open("link", "w"))
        attempt("process", lambda: subprocess.run(["true"]))
        attempt("system", lambda: os.system("true"))
        attempt("ctypes", lambda: __import__("ctypes").CDLL(None))
        import _posixsubprocess, sys
        attempt("fork_exec", lambda: _posixsubprocess.fork_exec(
            ["/bin/true"], [b"/bin/true"], True, (), None, None, -1, -1, -1, -1, -1, -1, -1, -1, False, False,
            None, None, None, -1, None, False))
        def fresh_import():
            del sys.modules["_posixsubprocess"]
            import _posixsubprocess
        attempt("fresh-import", fresh_import)
        def fresh_module():
            import _imp, importlib.util
            _imp.create_dynamic(importlib.util.find_spec("_posixsubprocess"))
        attempt("fresh-module", fresh_module)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True,
                            timeout=60, check=False)
    outcome = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert outcome == {"write-inside": "allowed", "rmtree-inside": "allowed", "read-outside": "allowed",
                       "delete": "blocked", "write": "blocked", "rename": "blocked", "rmtree": "blocked",
                       "symlink-write": "blocked", "process": "blocked", "system": "blocked",
                       "ctypes": "blocked", "fork_exec": "blocked", "fresh-import": "blocked",
                       "fresh-module": "blocked"}, result.stdout + result.stderr
    assert sentinel.read_text() == "keep"
    guard = read_log(log)
    assert guard.ready and guard.pid is not None and not guard.failure
    assert f"submission tried to delete {sentinel} outside its folder: blocked" in guard.blocked
    assert "submission tried to start a process (_posixsubprocess.fork_exec): blocked" in guard.blocked
    assert "submission tried to import a fresh copy of _posixsubprocess: blocked" in guard.blocked


def test_a_failing_guard_ends_the_kernel_instead_of_running_unguarded(tmp_path):
    log = tmp_path / "guard.log"
    script = guard_cell_source(str(tmp_path), str(log), preload=("no_such_module_here",)) + "\nprint('ran')"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode != 0 and "ran" not in result.stdout
    guard = read_log(log)
    assert not guard.ready and "no_such_module_here" in guard.failure


# ----------------------------------------------------------------------------------------------
# grade: one batch of five students


def _variant(source, edit, target):
    nb = load(source)
    edit(nb)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(target))


@pytest.fixture(scope="module")
def graded(tmp_path_factory, assigned):
    root = tmp_path_factory.mktemp("grading")
    subs = root / "submissions"
    sentinel = root / "sentinel.txt"
    sentinel.write_text("keep me")
    teacher = root / "teacher_model.pt"  # written from C code: only the OS-level sandbox stops it
    teacher.write_bytes(b"the teacher's weights")
    student_dir, _ = assigned
    for solution in SOLUTIONS:
        _variant(solution, lambda nb: None, subs / "alice" / solution.name)  # the solutions
        _variant(student_dir / solution.name, lambda nb: None, subs / "bob" / solution.name)  # untouched
    corr = SOLUTIONS[0]

    def syntax_error(nb):
        cell = exercise_cell(nb, "correlation")
        cell.source = cell.source.replace("def correlation(f_A, f_B):", "def correlation(f_A, f_B)")

    def sleeps(nb):
        cell = exercise_cell(nb, "correlation")
        cell.source = "import time\ntime.sleep(600)\n" + cell.source

    def malicious(nb):
        attack = textwrap.dedent(f"""
            import os, shutil, subprocess
            for attack in (lambda: os.remove({str(sentinel)!r}), lambda: shutil.rmtree({str(root)!r}),
                           lambda: subprocess.run(["rm", "-f", {str(sentinel)!r}]),
                           lambda: os.system("rm -f " + {str(sentinel)!r})):
                try:
                    attack()
                except OSError as exc:  # every attack swallows the guard's error, so that all of them run
                    print("swallowed:", exc)
            import _posixsubprocess  # no audit event of its own: the guard must catch it anyway
            try:
                _posixsubprocess.fork_exec(["/bin/true"], [b"/bin/true"], True, (), None, None, -1, -1, -1, -1,
                                           -1, -1, -1, -1, False, False, None, None, None, -1, None, False)
            except OSError as exc:
                print("swallowed:", exc)
            for fd in range(3, 256):  # try to erase what the guard logged
                try:
                    target = os.readlink(f"/proc/self/fd/{{fd}}")
                    if "guard" in target:
                        os.ftruncate(fd, 0)
                        import numpy
                        numpy.zeros(0, dtype="u1").tofile(target)
                except (OSError, ValueError):
                    pass
            import torch
            try:
                torch.save({{"stolen": 1}}, {str(teacher)!r})
            except Exception as exc:
                print("swallowed:", exc)""")
        nb.cells.insert(1, nbformat.v4.new_code_cell(attack))

    def no_epsilon(nb):  # passes the self-check, fails the hidden all-negative case: partial credit
        cell = exercise_cell(nb, "correlation")
        blank = "return s / torch.sqrt((s * s).sum(1, keepdim=True) + 1e-6)"
        assert blank in cell.source
        cell.source = cell.source.replace(blank, "return s / s.norm(dim=1, keepdim=True)")

    def no_epsilon_and_preset(nb):
        no_epsilon(nb)
        nb.cells.insert(1, nbformat.v4.new_code_cell('import os\nprint("preset:", os.environ["MACOS_LITE_PRESET"])'))

    _variant(corr, no_epsilon_and_preset, subs / "gina" / corr.name)
    # a submission that is a link to the solution itself, a folder that is a link, odd folder names
    (subs / "mallory").mkdir()
    (subs / "mallory" / corr.name).symlink_to(Path("..") / ".." / "solutions_copy" / corr.name)
    (root / "solutions_copy").mkdir()
    _variant(corr, lambda nb: None, root / "solutions_copy" / corr.name)
    (subs / "oscar").symlink_to(subs / "alice", target_is_directory=True)
    for odd in ODD_NAMES:
        (subs / odd).mkdir()  # nothing submitted: no run, but a row in every table
    _variant(corr, syntax_error, subs / "carol" / corr.name)
    _variant(corr, sleeps, subs / "dave" / corr.name)
    _variant(corr, malicious, subs / "eve" / corr.name)
    (subs / "frank").mkdir()
    (subs / "frank" / corr.name).write_text("{ this is not a notebook")
    out = root / "out"
    said = []
    preset = os.environ.get("MACOS_LITE_PRESET")
    os.environ["MACOS_LITE_PRESET"] = "demo"  # the grader pins smoke whatever the teacher's shell says
    try:
        grades = grade_submissions(subs, [FIXTURES], out, timeout=TIMEOUT, jobs=2, progress=said.append)
    finally:
        if preset is None:
            os.environ.pop("MACOS_LITE_PRESET")
        else:
            os.environ["MACOS_LITE_PRESET"] = preset
    with open(out / "grades.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"root": root, "out": out, "grades": grades, "rows": rows, "sentinel": sentinel, "teacher": teacher,
            "said": said}


ODD_NAMES = ("=1+1", "a|b", "new\nline")


def rows_of(graded, student):
    return {(r["notebook"], r["exercise"]): r for r in graded["rows"] if r["student"] == student}


@pytest.mark.slow  # all grading tests share one batch of real kernel runs
def test_grades_csv_layout(graded):
    with open(graded["out"] / "grades.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["student", "notebook", "exercise", "points", "max_points", "status", "message"]
    assert {r["student"] for r in graded["rows"]} == {"alice", "bob", "carol", "dave", "eve", "frank", "gina",
                                                     "mallory", "oscar", "'=1+1", "a|b", "new\nline"}


@pytest.mark.slow
def test_solutions_get_full_marks(graded):
    rows = rows_of(graded, "alice")
    assert {k: (r["status"], r["points"]) for k, r in rows.items()} == {
        ("01_correlation.ipynb", "correlation"): ("passed", "2"),
        ("02_cycle.ipynb", "cycle_loss"): ("passed", "3"),
        ("02_cycle.ipynb", "why_not_squared"): ("manual", "0")}  # the written answer waits for the teacher
    alice = [g for g in graded["grades"] if g.student == "alice"]
    assert all(not g.blocked and not g.note for g in alice)  # the course's own code trips no guard
    executed = load(graded["out"] / "students" / "alice" / "01_correlation.ipynb")
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "correlation: relative error" in printed and "✓" in printed


@pytest.mark.slow
def test_untouched_student_notebooks_get_zero_with_the_reason(graded):
    rows = rows_of(graded, "bob")
    assert rows.pop(("02_cycle.ipynb", "why_not_squared"))["message"] == "no answer given"
    for (notebook, exercise), r in rows.items():
        assert r["points"] == "0" and r["status"] == "failed"
        assert "not implemented yet" in r["message"] and f"Exercise {exercise}" in r["message"]


@pytest.mark.slow
def test_syntax_error_is_reported_on_its_cell(graded):
    rows = rows_of(graded, "carol")
    r = rows[("01_correlation.ipynb", "correlation")]
    assert r["status"] == "error" and r["points"] == "0"
    assert "SyntaxError" in r["message"] and "cell 3" in r["message"]
    assert rows[("02_cycle.ipynb", "cycle_loss")]["status"] == "missing"


@pytest.mark.slow
def test_endless_submission_times_out_and_leaves_no_kernel(graded):
    r = rows_of(graded, "dave")[("01_correlation.ipynb", "correlation")]
    assert r["status"] == "timeout" and f"timed out after {TIMEOUT} s" in r["message"]
    assert "cell 3 (`import time`)" in r["message"]
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if "macos-lite-grade-" in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


@pytest.mark.slow
def test_malicious_submission_is_contained_and_reported(graded):
    sentinel = graded["sentinel"]
    assert sentinel.read_text() == "keep me"
    rows = rows_of(graded, "eve")
    assert rows[("01_correlation.ipynb", "correlation")]["status"] == "passed"  # its own work still counts
    blocked = rows[("01_correlation.ipynb", "(containment)")]
    assert blocked["status"] == "blocked" and blocked["max_points"] == "0"
    assert f"submission tried to delete {sentinel} outside its folder: blocked" in blocked["message"]
    assert "start a process" in blocked["message"]
    report = (graded["out"] / "students" / "eve" / "report.md").read_text()
    assert f"tried to delete {sentinel} outside its folder: blocked" in report


@pytest.mark.slow
def test_writes_from_c_code_cannot_reach_a_teachers_file(graded):
    from macos_lite.assignments.grade import sandbox_problem

    problem = sandbox_problem()
    if problem:  # the grader must then say plainly that this is not stopped
        assert any("no OS-level isolation" in line and "torch.save" in line for line in graded["said"])
        pytest.skip(f"no OS-level sandbox on this machine: {problem}")
    assert any(line.startswith("isolation: bubblewrap") for line in graded["said"])
    assert graded["teacher"].read_bytes() == b"the teacher's weights"
    rows = rows_of(graded, "eve")
    assert rows[("01_correlation.ipynb", "correlation")]["status"] == "passed"


@pytest.mark.slow
def test_unreadable_notebook_is_reported(graded):
    r = rows_of(graded, "frank")[("01_correlation.ipynb", "correlation")]
    assert r["status"] == "error" and "not a readable notebook" in r["message"]


@pytest.mark.slow
def test_reports_per_student_and_for_the_class(graded):
    summary = (graded["out"] / "summary.md").read_text()
    for student in ("alice", "bob", "carol", "dave", "eve"):
        assert f"| {student} |" in summary
        assert (graded["out"] / "students" / student / "report.md").exists()
    assert "| alice | 2 | 3 | 5 |" in summary
    assert "dave / 01_correlation.ipynb: timed out" in summary
    report = (graded["out"] / "students" / "bob" / "report.md").read_text()
    assert "**Total: 0 / 5 points**" in report and "not implemented yet" in report


@pytest.mark.slow
def test_a_submission_passing_the_self_check_but_not_a_hidden_case_earns_partial_points(graded):
    r = rows_of(graded, "gina")[("01_correlation.ipynb", "correlation")]
    assert (r["status"], r["points"], r["max_points"]) == ("partial", "1", "2")
    assert "1 of 2 hidden cases passed" in r["message"] and "every similarity negative" in r["message"]
    assert "keep a small epsilon" in r["message"]  # the hidden case's own hint
    executed = load(graded["out"] / "students" / "gina" / "01_correlation.ipynb")
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "correlation: relative error" in printed and "✓" in printed  # the visible self-check passed


@pytest.mark.slow
def test_the_grader_pins_the_smoke_preset_and_states_it(graded):
    executed = load(graded["out"] / "students" / "gina" / "01_correlation.ipynb")
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "preset: smoke" in printed  # although the grader's environment said demo
    for text in ((graded["out"] / "summary.md").read_text(),
                 (graded["out"] / "students" / "gina" / "report.md").read_text()):
        assert "MACOS_LITE_PRESET=smoke" in text and f"a timeout of {TIMEOUT} s per notebook" in text


@pytest.mark.slow
@pytest.mark.parametrize("student, why", [
    ("mallory", "01_correlation.ipynb is a symbolic link; submit the notebook file itself"),
    ("oscar", "the folder oscar is a symbolic link"),
])
def test_linked_submissions_are_refused(graded, student, why):
    rows = rows_of(graded, student)
    r = rows[("01_correlation.ipynb", "correlation")]
    assert (r["status"], r["points"]) == ("refused", "0") and why in r["message"]
    blocked = rows[("01_correlation.ipynb", "(containment)")]
    assert why in blocked["message"] and blocked["status"] == "blocked"


@pytest.mark.slow
def test_a_guard_log_the_submission_tries_to_erase_keeps_every_blocked_action(graded):
    blocked = rows_of(graded, "eve")[("01_correlation.ipynb", "(containment)")]["message"]
    assert "start a process (_posixsubprocess.fork_exec): blocked" in blocked
    assert f"submission tried to delete {graded['sentinel']} outside its folder: blocked" in blocked


def _gradebook(graded):
    with open(graded["out"] / "gradebook.csv", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.slow
def test_gradebook_gives_the_solutions_full_points_and_untouched_copies_zero(graded, assigned):
    _, manifest = assigned
    header, *rows = _gradebook(graded)
    exercises = [(Path(n["notebook"]).stem, e["name"], e["points"]) for n in manifest["notebooks"]
                 for e in n["exercises"]]
    questions = [(Path(n["notebook"]).stem, q["name"], q["points"]) for n in manifest["notebooks"]
                 for q in n["questions"]]
    full = sum(p for *_, p in exercises) + sum(p for *_, p in questions)
    assert header == ["student", *(f"{nb}/{name} ({points:g})" for nb, name, points in exercises),
                      *(f"{nb}/{name} (written, {points:g})" for nb, name, points in questions),
                      f"total ({full:g})"]
    by_student = {r[0]: r[1:] for r in rows}
    assert len(rows) == len(by_student) == 12  # one row per student
    n = len(exercises)
    assert [float(x) for x in by_student["alice"][:n]] == [p for *_, p in exercises]
    assert by_student["alice"][n:n + len(questions)] == [""] * len(questions)  # manual points not given yet
    assert float(by_student["alice"][-1]) == sum(p for *_, p in exercises)
    assert [float(x) for x in by_student["bob"][:n]] == [0] * n and float(by_student["bob"][-1]) == 0
    assert float(by_student["gina"][0]) == 1


@pytest.mark.slow
def test_every_student_gets_feedback_without_hidden_tests_or_solutions(graded):
    hidden = {line.strip() for path in SOLUTIONS for c in load(path).cells
              if "hidden-check" in c.metadata.get("tags", []) for line in c.source.splitlines() if len(line.strip()) > 8}
    assert hidden
    subs = graded["root"] / "submissions"
    for student in {r["student"] for r in graded["rows"]}:
        name = student[1:] if student.startswith("'") else student
        page = (graded["out"] / "feedback" / f"{name}.html").read_text(encoding="utf-8")
        text = html_lib.unescape(page)
        assert not any(line in text for line in hidden), student
        submitted = set()
        for path in (subs / name).glob("*.ipynb"):
            if not (subs / name).is_symlink() and not path.is_symlink() and name != "frank":
                submitted |= {line.strip() for c in load(path).cells for line in c.source.splitlines()}
        for path in SOLUTIONS:  # solution text only where the student handed it in themselves
            for line in solution_lines(path):
                assert line not in text or line in submitted, (student, line)
    bob = html_lib.unescape((graded["out"] / "feedback" / "bob.html").read_text(encoding="utf-8"))
    assert "every similarity negative" in bob and "not implemented yet" in bob  # case names and hints
    gina = html_lib.unescape((graded["out"] / "feedback" / "gina.html").read_text(encoding="utf-8"))
    assert "keep a small epsilon" in gina and "1 / 2" in gina


@pytest.mark.slow
def test_odd_student_names_are_escaped_in_markdown_and_csv(graded):
    summary = (graded["out"] / "summary.md").read_text()
    table = [line for line in summary.splitlines() if line.startswith("| ")][:13]
    cells = [len(line.replace("\\|", "").split("|")) for line in table]
    assert len(set(cells)) == 1, table  # no row has more cells than the header
    assert "| a\\|b |" in summary and "| new line |" in summary and "| =1+1 |" in summary
    for name in ("grades.csv", "gradebook.csv", "answers.csv"):
        with open(graded["out"] / name, newline="", encoding="utf-8") as f:
            for row in csv.reader(f):
                assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), (name, row)
    assert ["'=1+1"] == [r[0] for r in _gradebook(graded) if "1+1" in r[0]]
    report = (graded["out"] / "students" / "new\nline" / "report.md").read_text()
    assert report.startswith("# Grades: new line\n")


def test_grade_command_reports_bad_input(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    grade_cli.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "nowhere"), "--solutions", str(FIXTURES),
                              "--out", str(tmp_path / "o")])
    assert args.timeout == grade_cli.DEFAULT_TIMEOUT and args.jobs == 1
    assert grade_cli.run(args) == 2
    assert f"SUBMISSIONS_DIR {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("what, words", [
    ("missing", "does not exist"),
    ("file", "is a file, not a folder"),
    ("broken link", "is a link to {tmp}/gone, which does not exist"),
    ("empty", "holds no student sub-folder"),
])
def test_grade_on_a_submissions_path_that_is_not_a_folder_of_students(what, words, tmp_path, capsys):
    from macos_lite import cli

    path = tmp_path / "submissions"
    if what == "file":
        path.write_text("{}")
    elif what == "broken link":
        path.symlink_to(tmp_path / "gone")
    elif what == "empty":
        (path / ".hidden").mkdir(parents=True)
        (path / "01.ipynb").write_text("{}")
    out = tmp_path / "out"
    code = cli.main(["grade", str(path), "--solutions", str(FIXTURES), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err == (f"error: SUBMISSIONS_DIR {path} {words.format(tmp=tmp_path)}; give the folder of "
                            "submissions: one sub-folder per student holding that student's <notebook>.ipynb "
                            "files\n")
    assert not out.exists()  # nothing made before the mistake is found
