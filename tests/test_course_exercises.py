"""The exercises of the course notebooks 01-06: hidden cases that differ from the self-check, and that grade.

The hidden-check cells are run here against the notebooks' own solution cells, without executing the notebooks
(their data and models are not needed: an exercise cell only uses the imports listed in ``NAMESPACE``).
"""

from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F

import macos_lite.checks as C
from macos_lite import geometry
from macos_lite.assignments.notebook import find_exercises, find_questions
from macos_lite.backbones import l2_normalize
from macos_lite.losses import consistency_points, correspondence_mask, object_background

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {p.name[:2]: p for p in sorted((ROOT / "notebooks").glob("0[1-6]_*.ipynb"))}
EXERCISES = {"01": {"correlation"}, "02": {"affine_grid", "tps_coefficients"}, "03": {"regress_theta"},
             "04": {"matching_score"}, "05": {"cycle_error", "transitivity_error"}, "06": {"contrastive_terms"}}


def namespace() -> dict:
    """What the exercise and hidden-check cells use from their notebook's import cell."""
    ns = {"torch": torch, "F": F, "G": geometry, "geo": geometry, "l2_normalize": l2_normalize,
          "consistency_points": consistency_points, "correspondence_mask": correspondence_mask,
          "object_background": object_background}
    ns.update({name: getattr(C, name) for name in C.__all__})
    return ns


def exercises_of(key):
    nb = nbformat.read(NOTEBOOKS[key], as_version=4)
    return nb, find_exercises(nb, NOTEBOOKS[key].name)


def visible_sources(nb) -> set:
    return {c.source.strip() for c in nb.cells if c.cell_type == "code" and "hidden-check" not in c.metadata.get("tags", [])}


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_every_exercise_has_differing_hidden_cases_with_points(key):
    nb, exercises = exercises_of(key)
    assert {e.name for e in exercises} == EXERCISES[key]
    shown = visible_sources(nb)
    for e in exercises:
        assert e.name in C.CHECKS, f"{e.name}: no checker of that name"
        assert 2 <= len(e.cases) <= 3, e.name
        sources = [c.cell.source.strip() for c in e.cases]
        assert len(set(sources)) == len(sources), f"{e.name}: two identical hidden cases"
        for c in e.cases:
            assert c.declared is not None and c.declared > 0, (e.name, c.name)
            assert c.cell.source.strip() not in shown, f"{e.name}: hidden case {c.name!r} is a visible cell"
            # a call of the checker with its defaults is the self-check: every hidden case changes the inputs
            assert f"check_{e.name}({e.name}).assert_ok()" not in c.cell.source, (e.name, c.name)
        assert e.points == pytest.approx(sum(c.points for c in e.cases))


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_notebook_ends_with_written_questions(key):
    nb = nbformat.read(NOTEBOOKS[key], as_version=4)
    questions = find_questions(nb, NOTEBOOKS[key].name)
    assert 1 <= len(questions) <= 3
    assert questions[-1].cell == len(nb.cells) - 2  # the last question, then its answer cell, end the notebook
    assert all(q.points > 0 for q in questions)


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_the_solutions_pass_every_hidden_case(key):
    nb, exercises = exercises_of(key)
    for e in exercises:
        ns = namespace()
        exec(nb.cells[e.cell].source, ns)
        for c in e.cases:
            exec(c.cell.source, ns)  # raises CheckFailed (or AssertionError) on a wrong solution


def test_a_correlation_without_epsilon_passes_the_self_check_but_not_every_hidden_case():
    nb, (e,) = exercises_of("01")
    ns = namespace()
    source = nb.cells[e.cell].source
    exact = "return s / torch.sqrt((s * s).sum(dim=1, keepdim=True) + 1e-6)"
    assert exact in source
    exec(source.replace(exact, "return s / s.norm(dim=1, keepdim=True)"), ns)
    assert C.check_correlation(ns["correlation"], verbose=False).passed
    failed = []
    for c in e.cases:
        try:
            exec(c.cell.source, ns)
        except AssertionError:
            failed.append(c.name)
    assert "every similarity negative" in failed and len(failed) < len(e.cases)  # partial credit
