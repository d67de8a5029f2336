'''Assignments: student notebooks generated from solution notebooks, and an unattended grader.

A course notebook is written once, as a *solution notebook* carrying the markers below.
``macos-lite assign`` (:mod:`.assign`) turns it into the student version; ``macos-lite grade``
(:mod:`.grade`) runs the students' copies with the hidden checks and writes the grades.

Conventions
===========

Solution blocks
    In a code cell, the lines between a line ``### BEGIN SOLUTION`` and a line ``### END SOLUTION``
    (each alone on its line; any number of ``#``) are the solution. The student version replaces the
    whole block, markers included, by one line at the indentation of the ``BEGIN`` line::

        raise NotImplementedError("Exercise <name>: replace this line with your code")

    where ``<name>`` is the exercise of the cell (or of the closest exercise cell above it; the notebook's
    name when there is none). Put the markers inside a function body to keep its signature and
    docstring visible; a block may also stand at the top level of a cell. Blocks do not nest. In a
    markdown cell the block becomes ``*Your answer here.*`` (for written answers). Every code cell of
    the student version must still parse (IPython magics allowed), and no solution-only line may
    survive anywhere in the file (sources, outputs, metadata): generation fails otherwise.

Exercise cells
    The code cell defining a graded function carries the tag ``exercise`` and the exercise's name and
    points; in the ``.ipynb`` (JupyterLab: property inspector, "Cell Metadata")::

        "metadata": {"tags": ["exercise"], "macos_lite": {"exercise": "correlation", "points": 2}}

    Names are unique per notebook, points are numbers >= 0. For the exercises that have a checker, use
    its name (``correlation``, ``affine_grid``, ``tps_solve``, ``matching_score``, ``cycle_loss``,
    ``contrastive_loss``) and the function name and signature it documents (:mod:`macos_lite.checks`).
    The grader matches a submission to the solution by this name, so students must keep the cell's
    metadata (Jupyter keeps it when the cell is edited, not when the cell is deleted and re-created).

Hidden checks
    Code cells tagged ``hidden-check`` hold checks only the grader runs, typically
    ``check_<name>(<function>).assert_ok()`` with a checker of :mod:`macos_lite.checks`. A hidden-check
    cell belongs to the closest exercise cell above it, or to the exercise named in its own
    ``metadata["macos_lite"]["exercise"]``. Every exercise needs at least one. The student version drops
    them; visible self-check cells (untagged, e.g. ``check_correlation(correlation);``) stay, so that
    students can run them.

Student versions
    Same file names; outputs, execution counts, widget state and all metadata except the cell keys
    ``tags``/``macos_lite`` and the notebook keys ``kernelspec``/``language_info`` are removed.
    ``manifest.json`` lists ``{"notebook", "points", "exercises": [{"name", "points", "hidden_checks"}]}``
    per notebook and ``total_points``.

Grading
    Per exercise, all or nothing: its points when every one of its hidden checks ran without an
    exception; otherwise 0 with the checker's hint (a ``CheckFailed``), or the exception's last line and
    the cell that raised it (an error in the exercise cell itself is named first). Statuses: ``passed``,
    ``failed`` (a checker said no), ``error`` (an exception, or the run stopped), ``timeout``,
    ``missing`` (notebook not submitted), and ``blocked`` on a 0-point ``(containment)`` row listing what
    the guard stopped (points are not taken away for it: the teacher decides).

Containment (see :mod:`.containment`)
    Each submission runs in a fresh temporary folder that is its cwd, ``HOME`` and ``TMPDIR``, and a first
    cell injected by the grader installs an audit hook the submission cannot remove: writes, deletions
    and renames outside the folder, new processes, ``ctypes``, signals to other processes and network
    connections raise ``ContainmentError`` ("submission tried to delete /path outside its folder:
    blocked") and are reported. A timeout (default 120 s after the grader's setup) kills the run with its
    kernel. This protects a teacher's files from accidents and casual mischief in a classroom; it is not a
    security sandbox: C code (e.g. ``torch.save`` to a path) is not watched, reads are not limited, memory
    and disk are not capped, and a determined student who reaches the interpreter's internals may defeat
    it. Grade untrusted code inside a container or VM.

Worked example
==============

A solution notebook, cell by cell (``[tags]`` and metadata shown above each cell)::

    # cell 1 ---------------------------------------------------------------
    import torch
    from macos_lite.checks import check_correlation

    # cell 2 --- tags: ["exercise"], metadata["macos_lite"]: {"exercise": "correlation", "points": 2}
    def correlation(f_A, f_B):
        """S_AB: ReLU + L2 over channels, channel k = row_A + h_A * col_A."""
        b, c, h, w = f_A.shape
        ### BEGIN SOLUTION
        a = f_A.transpose(2, 3).reshape(b, c, h * w)
        s = torch.relu(torch.einsum("bck,bcij->bkij", a, f_B))
        return s / torch.sqrt((s * s).sum(1, keepdim=True) + 1e-6)
        ### END SOLUTION

    # cell 3 --- a visible self-check
    check_correlation(correlation);

    # cell 4 --- tags: ["hidden-check"]
    check_correlation(correlation).assert_ok()

The student version keeps cells 1 and 3, drops cell 4, and cell 2 becomes::

    def correlation(f_A, f_B):
        """S_AB: ReLU + L2 over channels, channel k = row_A + h_A * col_A."""
        b, c, h, w = f_A.shape
        raise NotImplementedError("Exercise correlation: replace this line with your code")

Then::

    macos-lite assign notebooks/ --out student/
    macos-lite grade submissions/ --solutions notebooks/ --out grades/ --timeout 120

with ``submissions/<student>/<notebook>.ipynb``. Untouched, cell 2 earns 0 points with the message
"correlation: not implemented yet (Exercise correlation: replace this line with your code)".

The ``macos-lite`` command line reaches both through :func:`add_assign_arguments`, :func:`run_assign`,
:func:`add_grade_arguments` and :func:`run_grade` (the ``add_arguments``/``run`` pairs of :mod:`.assign`
and :mod:`.grade`).
'''

from .notebook import (
    BEGIN_MARKER,
    END_MARKER,
    EXERCISE_TAG,
    HIDDEN_CHECK_TAG,
    META_KEY,
    AssignmentError,
    Exercise,
    find_exercises,
    make_assignment,
    student_notebook,
)

__all__ = [
    "BEGIN_MARKER", "END_MARKER", "EXERCISE_TAG", "HIDDEN_CHECK_TAG", "META_KEY", "AssignmentError",
    "Exercise",
    "add_assign_arguments", "add_grade_arguments", "find_exercises", "make_assignment", "run_assign",
    "run_grade", "student_notebook",
]

# The command line's entry points. The grader is imported only when used: importing it here would make
# ``python -m macos_lite.assignments.grade`` import that module twice.


def add_assign_arguments(parser) -> None:
    """The ``assign`` subcommand's options (see :mod:`.assign`)."""
    from . import assign

    assign.add_arguments(parser)


def run_assign(args) -> int:
    from . import assign

    return assign.run(args)


def add_grade_arguments(parser) -> None:
    """The ``grade`` subcommand's options (see :mod:`.grade`)."""
    from . import grade

    grade.add_arguments(parser)


def run_grade(args) -> int:
    from . import grade

    return grade.run(args)
