"""Checkers for the course exercises: a student's function against the package's reference.

Every checker takes the student's function, calls it on seeded inputs, compares the result with the
reference implementation of the package and returns a :class:`CheckResult`. It also prints one
CS231n-style line::

    correlation: relative error 3.2e-09 ✓ (gradcheck ok)
    correlation: relative error 6.1e-01 ✗ your correlation is the transpose of the expected one: ...

A checker never raises because of the student's code: an exception, ``None``, a numpy array, a wrong
shape or dtype, NaNs, or inputs modified in place all give a failed result whose ``hint`` says what to
change. Known mistakes (a transposed correlation, ``align_corners=False``, a squared norm, ...) are
recognised by comparing the output with the output of that mistake, so the hint names it. When the
values match and the exercise is differentiable, the gradient is checked too (every such exercise is
part of a trained model): ``torch.autograd.gradcheck`` on the student's function in float64, except for
``contrastive_terms`` (the reference computes F's features in float32 whatever the input dtype) and
``warped_mask_bce`` (its target is detached on purpose), whose gradients are compared with the
reference's along a random direction.

Cases. The keyword arguments after ``verbose`` choose the case: ``seed=`` (the inputs), sizes (``batch=``,
``grid=``, ``size=``, ...), ``dtype=`` where the reference keeps the input dtype, and edge cases
(``weights=None`` is always tried; ``with_valid=False``, ``margin=0.0``, ``shift=`` ...). The defaults are
the visible self-check; graded hidden checks use other values, e.g.
``check_matching_score(matching_score, seed=3, batch=1).assert_ok()``. The failing case is named in
``CheckResult.case``.

The relative error is ``max |got - expected| / max(|expected|, |got|)`` over all entries: CS231n's
measure, normalised by the largest magnitude rather than per entry so that entries near zero do not
dominate. A result passes below ``1e-4``. Checkers do not touch the global random state.

The exercises (notebook) and the exact signature a student implements; the checker calls the student's
function exactly as shown, and the reference is the package function of the same name
(:data:`REFERENCES`):

``correlation`` (01)
    ``correlation(f_A, f_B) -> S_AB`` -- :func:`macos_lite.correlation.correlation`.
    f_A, f_B: L2-normalised features ``(B, C, h, w)``; S_AB: ``(B, h*w, h, w)``, ReLU then L2 over the
    channels, channel ``k = row_A + h * col_A`` (column-major in A).
``affine_grid`` (02)
    ``affine_grid(theta, size) -> grid`` -- ``macos_lite.geometry.sampling_grid(theta, "affine", size)``.
    theta ``(B, 6)`` row-major 2x3, size ``(H, W)``; grid ``(B, H, W, 2)``: the source position ``(x, y)``
    of every target pixel, corner-aligned (equal to ``F.affine_grid(..., align_corners=True)``).
``tps_coefficients`` (02)
    ``tps_coefficients(theta, lam=0.0) -> coef`` -- :func:`macos_lite.geometry.tps_coefficients`.
    theta ``(B, 18)`` = ``(Q_X, Q_Y)``, target positions of the X-major 3x3 lattice; coef ``(B, 12, 2)``:
    9 radial weights then ``(a0, a1, a2)``, one column per output coordinate. Called with lam 0 and 0.1.
``regress_theta`` (03)
    ``regress_theta(head, corr) -> theta`` -- :func:`macos_lite.predictor.regress_theta`: G's forward pass
    with the layers of a :class:`~macos_lite.predictor.RegressionHead` (``head.conv``, ``head.pool``,
    ``head.linear``), corr ``(B, h*w, h, w)``, theta ``(B, 6)`` (or ``(B, 18)`` for a TPS head).
``matching_score`` (04)
    ``matching_score(corr, theta, kind, weights=None, image_size=None) -> (B,)`` --
    :func:`macos_lite.losses.matching.matching_score` (eqs 2-3). Called as
    ``matching_score(corr, theta, "affine", weights, image_size=(64, 80))`` and with ``weights=None``.
``cycle_error`` (05)
    ``cycle_error(theta_st, theta_ts) -> (B,)`` -- :func:`macos_lite.losses.consistency.cycle_error`.
    Eq 4 for affine thetas: the mean Euclidean distance ``|T_ts(T_st(q)) - q|`` over a 10 x 10 grid.
``transitivity_error`` (05)
    ``transitivity_error(theta_xy, theta_zx, theta_yz) -> (B,)`` --
    :func:`macos_lite.losses.consistency.transitivity_error` (eq 5): ``|T_YZ(T_ZX(T_XY(q))) - q|``.
``contrastive_terms`` (06)
    ``contrastive_terms(perceptual, images_A, images_B, probs_A, probs_B, margin) -> (d_plus, d_minus)``
    -- :func:`macos_lite.losses.contrastive.contrastive_terms` (eqs 7-9), with a small stand-in F
    (:func:`stand_in_perceptual`); each term ``(B,)``.
``warped_mask_bce`` (07)
    ``warped_mask_bce(logits_s, logits_t, theta_st, kind="affine") -> (B,)`` --
    :func:`macos_lite.losses.task.warped_mask_bce` (eq 11, the task loss of one direction).
``weighted_objective`` (07)
    ``weighted_objective(terms, weights) -> scalar`` -- :func:`macos_lite.losses.objective.weighted_objective`
    (eq 12).
``training_step`` (08)
    ``training_step(model, loss_fn, optimizer, batch, grad_clip=None) -> float`` --
    :func:`macos_lite.training_step.training_step`; compared through the parameters after the step.
``pck_per_pair`` (09)
    ``pck_per_pair(pred, gt, alpha=0.1, valid=None, size=None) -> (correct, counted)`` --
    :func:`macos_lite.metrics.pck_per_pair` with the image normaliser ``L = max(H, W)``.
``ddt_projection`` (10)
    ``ddt_projection(features) -> P`` -- :func:`macos_lite.colocalization.ddt_projection`.
``standard_error`` (11)
    ``standard_error(values) -> float`` -- :func:`macos_lite.sweep.standard_error`.

In a notebook: ``check_correlation(correlation);`` prints the line (the result is returned too);
``check_correlation(correlation).assert_ok()`` raises :class:`CheckFailed` with the hint unless it
passed -- the form graded hidden checks use. ``run_check(name, fn, **case)`` looks a checker up by
name. ``use_if_passing(result, student_fn, package_fn)`` returns the function the rest of a notebook
runs on (the student's once it passed) and says which.
"""

from __future__ import annotations

import math
import numbers
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import geometry as G
from .colocalization import ddt_projection as _ref_ddt_projection
from .correlation import correlation as _ref_correlation
from .losses.consistency import consistency_points
from .losses.consistency import cycle_error as _ref_cycle_error
from .losses.consistency import transitivity_error as _ref_transitivity_error
from .losses.contrastive import contrastive_terms as _ref_contrastive_terms
from .losses.matching import correspondence_mask
from .losses.matching import matching_score as _ref_matching_score
from .losses.objective import TERMS as _TERMS
from .losses.objective import weighted_objective as _ref_weighted_objective
from .losses.task import warped_mask_bce as _ref_warped_mask_bce
from .metrics import pck_per_pair as _ref_pck_per_pair
from .predictor import affine_head, tps_head
from .predictor import regress_theta as _ref_regress_theta
from .sweep import standard_error as _ref_standard_error
from .training_step import training_step as _ref_training_step

__all__ = [
    "CHECKS", "REFERENCES", "CheckFailed", "CheckResult", "check_affine_grid", "check_contrastive_terms",
    "check_correlation", "check_cycle_error", "check_ddt_projection", "check_matching_score", "check_pck_per_pair",
    "check_regress_theta", "check_standard_error", "check_tps_coefficients", "check_training_step",
    "check_transitivity_error", "check_warped_mask_bce", "check_weighted_objective", "relative_error", "run_check",
    "stand_in_perceptual", "use_if_passing",
]

TOLERANCE = 1e-4  # float32 results
MISTAKE_TOLERANCE = 1e-3  # how close an output must be to a known mistake's output to name it

Output = Any  # a tensor, or a tuple of tensors


class CheckFailed(AssertionError):
    """Raised by :meth:`CheckResult.assert_ok`; the message carries the hint."""


@dataclass
class CheckResult:
    """The outcome of one checker.

    rel_error: the relative error against the reference (None when there was nothing to compare);
    shapes/dtypes: of the reference output and of the student's output; hint: what to change ('' when
    passed); case: the inputs that failed (e.g. ``"lam=0.1"``); gradcheck: True/False, None when not run.
    """

    exercise: str
    passed: bool
    rel_error: float | None = None
    expected_shape: tuple | None = None
    got_shape: tuple | None = None
    expected_dtype: str | None = None
    got_dtype: str | None = None
    hint: str = ""
    case: str = ""
    gradcheck: bool | None = None

    def __bool__(self) -> bool:
        return self.passed

    @property
    def line(self) -> str:
        """The CS231n-style one-liner."""
        err = "n/a" if self.rel_error is None else f"{self.rel_error:.1e}"
        if self.passed:
            return f"{self.exercise}: relative error {err} ✓" + (" (gradcheck ok)" if self.gradcheck else "")
        return f"{self.exercise}: relative error {err} ✗ {self.hint}"

    @property
    def message(self) -> str:
        """One line for reports: the hint, with the failing case and the relative error."""
        if self.passed:
            return self.line
        where = f" [{self.case}]" if self.case else ""
        err = "" if self.rel_error is None else f" (relative error {self.rel_error:.1e})"
        return f"{self.exercise}{where}: {self.hint}{err}"

    def __str__(self) -> str:
        lines = [self.line]
        if not self.passed and self.expected_shape is not None and self.got_shape is not None:
            case = f" [{self.case}]" if self.case else ""
            lines.append(f"    expected {self.expected_shape} {self.expected_dtype}, "
                         f"got {self.got_shape} {self.got_dtype}{case}")
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise :class:`CheckFailed` with the hint unless the check passed."""
        if not self.passed:
            raise CheckFailed(self.message)


def relative_error(got: Output, expected: Output) -> float:
    """``max |got - expected| / max(|expected|, |got|)`` over every entry (tuples are concatenated)."""
    g, e = _flat(got), _flat(expected)
    if not e.numel():
        return 0.0
    scale = max(e.abs().max().item(), g.abs().max().item(), 1e-12)
    return (g - e).abs().max().item() / scale


def _flat(x: Output) -> torch.Tensor:
    parts = x if isinstance(x, (tuple, list)) else (x,)
    return torch.cat([p.detach().reshape(-1).to(torch.float64).cpu() for p in parts])


# ----------------------------------------------------------------------------------------------
# The engine shared by every checker
# ----------------------------------------------------------------------------------------------


@dataclass
class _Mistake:
    """A known wrong answer: its output (computed lazily) or a detector on the student's output."""

    hint: str
    output: Callable[[], Output] | None = None
    detect: Callable[[Output], bool] | None = None

    def matches(self, got: Output) -> bool:
        try:
            if self.detect is not None:
                return bool(self.detect(got))
            wrong = self.output()
            return _same_structure(got, wrong) and relative_error(got, wrong) < MISTAKE_TOLERANCE
        except Exception:  # noqa: BLE001 -- naming a mistake must never turn a failed check into a crash
            return False


@dataclass
class _Case:
    """One call of the student's function: ``fn(*args, **kwargs)`` should give ``expected``."""

    args: tuple
    expected: Output
    mistakes: list[_Mistake]
    kwargs: dict = field(default_factory=dict)
    label: str = ""
    hint: str = ""  # when the values differ and no known mistake matches


@dataclass
class _Gradcheck:
    """Inputs (float64, requiring grad) and how to call the student's function on them.

    With ``reference`` (a function called like the student's), the student's gradient is compared with
    the reference's along a random direction instead of finite differences.
    """

    inputs: Callable[[], tuple[torch.Tensor, ...]]
    call: Callable[..., Output]
    reference: Callable | None = None
    hint: str = ""  # said when the gradients differ from the reference's (with ``reference``)


def _shape(x: Output):
    if isinstance(x, (tuple, list)):
        return tuple(_shape(p) for p in x)
    return tuple(x.shape)


def _dtype(x: Output) -> str:
    if isinstance(x, (tuple, list)):
        return ", ".join(_dtype(p) for p in x)
    return str(x.dtype).replace("torch.", "")


def _same_structure(a: Output, b: Output) -> bool:
    return isinstance(a, (tuple, list)) == isinstance(b, (tuple, list)) and _shape(a) == _shape(b)


def _clone(x):
    return x.detach().clone() if torch.is_tensor(x) else x


_LIBRARY_DIRS = tuple(str(Path(m.__file__).resolve().parent) for m in (torch, G))


def _describe_exception(exc: BaseException) -> str:
    """``"TypeError: ... (in fn, line 4: code)"``, pointing at the innermost line of the student's code."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # the first frame is the checker's own call
    own = [f for f in frames if not str(Path(f.filename).resolve()).startswith(_LIBRARY_DIRS)]
    where = ""
    if own or frames:
        last = (own or frames)[-1]
        code = f": {last.line.strip()}" if last.line else ""
        where = f" (in {last.name}, line {last.lineno}{code})"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}{where}"


class _BadReturn(Exception):
    """Raised by a checker's wrapper around the student's function: what it returned is unusable."""


def _call(fn: Callable, args: tuple, kwargs: dict) -> tuple[Output | None, str]:
    """The student's output, or None and what went wrong."""
    try:
        return fn(*args, **kwargs), ""
    except _BadReturn as exc:
        return None, str(exc)
    except NotImplementedError as exc:
        return None, f"not implemented yet ({exc or 'NotImplementedError'})"
    except (Exception, SystemExit) as exc:  # noqa: BLE001 -- student code may raise anything
        return None, f"your function raised {_describe_exception(exc)}"


def _structure_problem(got: Output, expected: Output, shape_hint: str) -> str:
    """Why ``got`` is not a tensor (or tuple of tensors) shaped like ``expected``, '' if it is."""
    if got is None:
        return "your function returned None: did you forget the `return` statement?"
    if isinstance(expected, tuple):
        n = len(expected)
        if not isinstance(got, (tuple, list)) or len(got) != n:
            return f"return a tuple of {n} tensors ({shape_hint}), got {type(got).__name__}"
        parts = got
    else:
        if isinstance(got, (tuple, list)):
            return f"return a single tensor, got a {type(got).__name__} of {len(got)} items"
        parts = (got,)
    for p in parts:
        if not torch.is_tensor(p):
            return f"return torch tensors, got {type(p).__module__}.{type(p).__name__}"
    return ""


def _check(exercise: str, fn: Callable, cases: list[_Case], grad: _Gradcheck | None, verbose: bool,
           shape_hint: str) -> CheckResult:
    with torch.random.fork_rng(devices=[]):  # the notebook's random stream is not the checker's business
        result = _run(exercise, fn, cases, grad, shape_hint)
    if verbose:
        print(result)
    return result


def _compare(exercise: str, fn: Callable, case: _Case, shape_hint: str) -> CheckResult:
    """One case: a passed result (with its relative error) or the first problem found."""
    args = tuple(_clone(a) for a in case.args)
    kwargs = {k: _clone(v) for k, v in case.kwargs.items()}
    exp_shape, exp_dtype = _shape(case.expected), _dtype(case.expected)
    info = {"expected_shape": exp_shape, "expected_dtype": exp_dtype, "case": case.label}
    got, error = _call(fn, args, kwargs)
    problem = error or _structure_problem(got, case.expected, shape_hint)
    if problem:
        return CheckResult(exercise, False, hint=problem, **info)
    got = tuple(p.detach().cpu() for p in got) if isinstance(got, (tuple, list)) else got.detach().cpu()
    info.update(got_shape=_shape(got), got_dtype=_dtype(got))
    known = next((m.hint for m in case.mistakes if m.matches(got)), None)
    if _shape(got) != exp_shape:
        generic = f"expected shape {exp_shape}, got {_shape(got)} ({shape_hint})"
        return CheckResult(exercise, False, hint=known or generic, **info)
    flat = _flat(got)
    if not torch.isfinite(flat).all():
        bad = int((~torch.isfinite(flat)).sum())
        return CheckResult(exercise, False, hint=f"your output has {bad} NaN/inf entries: look for a "
                           "division by zero, a log of 0 or a sqrt of a negative number", **info)
    if _dtype(got) != exp_dtype:
        return CheckResult(exercise, False, hint=f"your output is {_dtype(got)} for {exp_dtype} inputs: keep "
                           "the input dtype (create new tensors with dtype=x.dtype)", **info)
    err = relative_error(got, case.expected)
    if err > TOLERANCE:
        hint = known or case.hint or "your values differ from the reference"
        return CheckResult(exercise, False, rel_error=err, hint=hint, **info)
    changed = [i for i, (a, b) in enumerate(zip(args, case.args))
               if torch.is_tensor(a) and (a.shape != b.shape or not torch.equal(a, b))]
    if changed:
        hint = f"your function changed argument {changed[0] + 1} in place: compute on new tensors instead " \
               "of `x /= ...`"
        return CheckResult(exercise, False, rel_error=err, hint=hint, **info)
    return CheckResult(exercise, True, rel_error=err, **info)


def _run(exercise: str, fn: Callable, cases: list[_Case], grad: _Gradcheck | None, shape_hint: str) -> CheckResult:
    if not callable(fn):
        return CheckResult(exercise, False, hint=f"expected a function, got {type(fn).__name__}")
    worst = 0.0
    for case in cases:
        result = _compare(exercise, fn, case, shape_hint)
        if not result.passed:
            return result
        worst = max(worst, result.rel_error)
    result.rel_error, result.case = worst, ""
    if grad is None:  # nothing to differentiate (a count, a sign-fixed projection, a training step)
        return result
    problem = _gradcheck(fn, grad)
    if problem:
        result.passed, result.hint, result.case = False, problem, "float64 gradient"
    result.gradcheck = not problem
    return result


def _gradcheck(fn: Callable, grad: _Gradcheck) -> str:
    """'' if the student's gradient is right (float64), else a hint."""
    inputs = grad.inputs()
    out, error = _call(lambda *x: grad.call(fn, *x), inputs, {})
    if error:
        error = error.removeprefix("your function raised ")
        return f"your function fails on float64 inputs ({error}): create new tensors with dtype=x.dtype " \
               "and device=x.device instead of the defaults"
    parts = out if isinstance(out, (tuple, list)) else (out,)
    if not all(torch.is_tensor(p) and p.requires_grad for p in parts):
        return "no gradient flows through your function: avoid .detach(), .item(), .numpy() and " \
               "torch.tensor(...) on intermediate results"
    if grad.reference is not None:
        return _compare_gradients(grad, inputs, parts)
    if any(p.dtype != torch.float64 for p in parts):
        return "on float64 inputs your output is not float64: keep the input dtype"
    try:
        ok = torch.autograd.gradcheck(lambda *x: grad.call(fn, *x), inputs, eps=1e-6, atol=1e-5, rtol=1e-3,
                                      raise_exception=False)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 -- student code may raise anything
        return f"gradcheck could not run your function: {_describe_exception(exc)}"
    if not ok:
        return "gradcheck failed in float64: the gradient of your function does not match finite " \
               "differences (look for in-place operations on tensors that need gradients)"
    return ""


def _compare_gradients(grad: _Gradcheck, inputs: tuple, parts: tuple) -> str:
    """'' if the student's vector-Jacobian product matches the reference's along a random direction."""
    ref = grad.call(grad.reference, *inputs)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    g = _generator(0)
    directions = [torch.randn(r.shape, generator=g, dtype=r.dtype) for r in ref]
    try:
        total = sum((p * v.to(p.dtype)).sum() for p, v in zip(parts, directions))
        got = torch.autograd.grad(total, inputs, allow_unused=True)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 -- student code may raise anything
        return f"backpropagating through your function failed: {_describe_exception(exc)}"
    expected = torch.autograd.grad(sum((r * v).sum() for r, v in zip(ref, directions)), inputs, allow_unused=True)
    if any(x is None and e is not None for x, e in zip(got, expected)):
        return "some inputs get no gradient from your function: each must reach the output differentiably"
    got = tuple(torch.zeros_like(i) if x is None else x for x, i in zip(got, inputs))
    expected = tuple(torch.zeros_like(i) if e is None else e for e, i in zip(expected, inputs))
    err = relative_error(got, expected)
    if err > TOLERANCE:
        return grad.hint or f"your gradient differs from the reference's (relative error {err:.1e}): look for " \
               "in-place operations, .detach() or non-differentiable steps"
    return ""


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn64(*shape, generator) -> torch.Tensor:
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# correlation
# ----------------------------------------------------------------------------------------------


def _l2(x: torch.Tensor, dim=1) -> torch.Tensor:
    return x / torch.sqrt((x * x).sum(dim=dim, keepdim=True) + 1e-6)


def check_correlation(correlation: Callable, verbose: bool = True, *, seed: int = 231, batch: int = 2,
                      grid: tuple[int, int] = (3, 4), channels: int = 16,
                      dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``correlation(f_A, f_B) -> S_AB`` (see the module docstring) on ``grid`` feature grids."""
    g = _generator(seed)
    h, w = grid
    f_A = _l2(torch.randn(batch, channels, h, w, generator=g, dtype=dtype))
    f_B = _l2(torch.randn(batch, channels, h, w, generator=g, dtype=dtype))
    b, c = batch, channels
    raw = torch.einsum("bck,bcij->bkij", f_A.transpose(2, 3).reshape(b, c, h * w), f_B)  # column-major A
    raw_rows = torch.einsum("bck,bcij->bkij", f_A.reshape(b, c, h * w), f_B)
    mistakes = [
        _Mistake("your correlation is the transpose of the expected one: S_AB's channel index is "
                 "column-major in A (k = row_A + h_A * col_A), so flatten f_A.transpose(2, 3), not f_A",
                 lambda: _l2(torch.relu(raw_rows))),
        _Mistake("you computed S_BA: S_AB has one channel per cell of A (column-major), laid out on B's "
                 "grid",
                 lambda: _ref_correlation(f_B, f_A)),
        _Mistake("negative similarities survive: apply ReLU before the L2 normalisation", lambda: _l2(raw)),
        _Mistake("S_AB is not normalised: divide by its L2 norm over the channels (dim 1) at every cell of B",
                 lambda: torch.relu(raw)),
        _Mistake("ReLU first, then L2-normalise: you normalised before clipping the negatives",
                 lambda: torch.relu(_l2(raw))),
        _Mistake("normalise over the channels (dim 1) at each cell of B, not over B's grid",
                 lambda: _l2(torch.relu(raw), dim=(2, 3))),
    ]
    case = _Case((f_A, f_B), _ref_correlation(f_A, f_B), mistakes, label=f"seed={seed}, grid={h}x{w}",
                 hint="S_AB[b, k, i, j] = <f_A at A's cell k (column-major), f_B at (i, j)>, "
                      "then ReLU and L2 over k")

    def grad_inputs():
        gg = _generator(seed + 1)
        return tuple(_randn64(1, 5, 2, 3, generator=gg).requires_grad_() for _ in range(2))

    return _check("correlation", correlation, [case], _Gradcheck(grad_inputs, lambda fn, a, b_: fn(a, b_)),
                  verbose, shape_hint="S_AB is (B, h_A * w_A, h_B, w_B)")


# ----------------------------------------------------------------------------------------------
# affine sampling grid
# ----------------------------------------------------------------------------------------------


def _affine_grid(theta: torch.Tensor, size) -> torch.Tensor:
    return G.sampling_grid(theta, "affine", size)


def check_affine_grid(affine_grid: Callable, verbose: bool = True, *, seed: int = 314, batch: int = 2,
                      size: tuple[int, int] = (5, 7), dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``affine_grid(theta, size) -> (B, H, W, 2)`` against the package and ``F.affine_grid``."""
    g = _generator(seed)
    theta = G.identity_theta("affine", batch, dtype=dtype) + 0.2 * torch.randn(batch, 6, generator=g, dtype=dtype)
    size = tuple(int(s) for s in size)
    m = theta.view(-1, 2, 3)
    expected = _affine_grid(theta, size)
    by_torch = F.affine_grid(m, (batch, 1, *size), align_corners=True)
    if relative_error(expected, by_torch) > TOLERANCE:  # both references must agree
        raise RuntimeError("macos_lite.geometry.sampling_grid disagrees with torch's affine_grid")
    no_shift = torch.cat((m[:, :, :2], torch.zeros(batch, 2, 1, dtype=dtype)), dim=2).reshape(-1, 6)
    column_major = m.reshape(-1, 3, 2).transpose(1, 2).reshape(-1, 6)
    transposed = torch.cat((m[:, :, :2].transpose(1, 2), m[:, :, 2:]), dim=2).reshape(-1, 6)
    mistakes = [
        _Mistake("your grid uses align_corners=False (pixel centres at ±(1 - 1/W)); the course is "
                 "corner-aligned: pixel 0 at -1 and pixel W-1 at +1, i.e. torch.linspace(-1, 1, W)",
                 lambda: F.affine_grid(m, (batch, 1, *size), align_corners=False)),
        _Mistake("the last dimension is (x, y), x first (as grid_sample expects), not (y, x)",
                 lambda: expected.flip(-1)),
        _Mistake("the translation column is missing: x_A = a x + b y + t_x with t_x = theta[:, 2], "
                 "t_y = theta[:, 5]", lambda: _affine_grid(no_shift, size)),
        _Mistake("theta is row-major 2x3, [[a, b, t_x], [c, d, t_y]] = theta.view(B, 2, 3); you read it "
                 "column-major", lambda: _affine_grid(column_major, size)),
        _Mistake("you applied the transposed 2x2 part: x_A = a x + b y + t_x, y_A = c x + d y + t_y",
                 lambda: _affine_grid(transposed, size)),
        _Mistake("the grid holds, for every target pixel p_B, its source position p_A = T(p_B): apply theta "
                 "itself, not its inverse", lambda: _affine_grid(G.invert_affine(theta), size)),
        _Mistake("size is (H, W): the grid has H rows and W columns, shape (B, H, W, 2)",
                 detect=lambda got: size[0] != size[1] and _shape(got) == (batch, size[1], size[0], 2)),
    ]
    case = _Case((theta, size), expected, mistakes, label=f"seed={seed}, size={size}",
                 hint="grid[b, i, j] = theta_b @ (x_j, y_i, 1) with x_j = linspace(-1, 1, W)[j], "
                      "y_i = linspace(-1, 1, H)[i]")

    def grad_inputs():
        gg = _generator(seed + 1)
        identity = G.identity_theta("affine", 1, dtype=torch.float64)
        return ((identity + 0.2 * _randn64(1, 6, generator=gg)).requires_grad_(),)

    return _check("affine_grid", affine_grid, [case], _Gradcheck(grad_inputs, lambda fn, t: fn(t, (3, 4))),
                  verbose, shape_hint="the grid is (B, H, W, 2)")


# ----------------------------------------------------------------------------------------------
# TPS coefficients
# ----------------------------------------------------------------------------------------------


def _tps_kernel(ctrl: torch.Tensor) -> torch.Tensor:
    """``U(|P_i - P_j|^2) = d2 log d2`` between control points, 0 on the diagonal."""
    d2 = ((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)
    return d2 * torch.log(d2.clamp_min(1e-300))


def _tps_solve(q: torch.Tensor, ctrl: torch.Tensor, lam: float, kernel_scale: float = 1.0,
               affine: bool = True, lam_everywhere: bool = False) -> torch.Tensor:
    """Coefficients ``(B, K+3, 2)`` for target positions ``q (B, K, 2)``; the options are known mistakes."""
    k, dt = ctrl.shape[0], q.dtype
    kern = kernel_scale * _tps_kernel(ctrl)
    if not affine:
        w = torch.linalg.solve(kern + lam * torch.eye(k, dtype=dt), q)
        return torch.cat((w, torch.zeros(q.shape[0], 3, 2, dtype=dt)), dim=1)
    p = torch.cat((torch.ones(k, 1, dtype=dt), ctrl), dim=1)
    system = torch.cat((torch.cat((kern, p), 1), torch.cat((p.t(), torch.zeros(3, 3, dtype=dt)), 1)), 0)
    on_k = torch.block_diag(torch.eye(k, dtype=dt), torch.zeros(3, 3, dtype=dt))
    system = system + lam * (torch.eye(k + 3, dtype=dt) if lam_everywhere else on_k)
    rhs = torch.cat((q, torch.zeros(q.shape[0], 3, 2, dtype=dt)), dim=1)
    return torch.linalg.solve(system, rhs)


def _tps_interpolates(coef: torch.Tensor, q: torch.Tensor, ctrl: torch.Tensor) -> bool:
    """Whether coefficients ``(B, K+3, 2)`` map every control point P_i onto its target Q_i."""
    ones = torch.ones(len(ctrl), 1, dtype=torch.float64)
    basis = torch.cat((_tps_kernel(ctrl), ones, ctrl), 1)
    return bool(((basis @ coef.to(torch.float64)) - q).abs().max() < 1e-3)


def check_tps_coefficients(tps_coefficients: Callable, verbose: bool = True, *, seed: int = 1996, batch: int = 2,
                           lam: float = 0.1, dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``tps_coefficients(theta, lam=0.0) -> (B, K+3, 2)`` at lam = 0 and at ``lam`` (> 0)."""
    if lam <= 0:
        raise ValueError(f"lam is the regularised case and must be > 0, got {lam}")
    g = _generator(seed)
    theta = G.identity_theta("tps", batch, dtype=dtype) + 0.15 * torch.randn(batch, 18, generator=g, dtype=dtype)
    k = 9
    ctrl = G.tps_control_points(3, torch.float64)
    ctrl_y_major = ctrl.flip(-1)  # the lattice enumerated Y-major: same points, other order
    q = theta.to(torch.float64).view(-1, 2, k).transpose(1, 2)
    q_interleaved = theta.to(torch.float64).view(-1, k, 2)

    def solved(*args, **kwargs):
        return lambda: _tps_solve(*args, **kwargs).to(dtype)

    at_zero = _Case((theta,), G.tps_coefficients(theta, 0.0), [
        _Mistake("your TPS has no affine part: solve the full system [[K, P], [P^T, 0]] (K + 3 unknowns: "
                 "the 9 radial weights then a0, a1, a2), not K w = Q", solved(q, ctrl, 0.0, affine=False)),
        _Mistake("your TPS has no affine part: the output is (B, K + 3, 2), 9 radial weights then a0, a1, a2",
                 detect=lambda got: _shape(got) == (batch, k, 2)),
        _Mistake("expected (B, K + 3, 2): one column per output coordinate (x, y), not (B, 2, K + 3)",
                 detect=lambda got: _shape(got) == (batch, 2, k + 3)),
        _Mistake("your radial kernel is half of U(r) = r^2 log r^2 (the package's d2 * log(d2) with d2 the "
                 "squared distance), so your weights are doubled", solved(q, ctrl, 0.0, 0.5)),
        _Mistake("the control lattice is X-major (P_X = -1,-1,-1, 0,0,0, 1,1,1): use "
                 "macos_lite.geometry.tps_control_points(3)", solved(q, ctrl_y_major, 0.0)),
        _Mistake("theta holds (Q_X, Q_Y): all 9 x's, then all 9 y's; use theta.view(B, 2, 9).transpose(1, "
                 "2), not theta.view(B, 9, 2)", solved(q_interleaved, ctrl, 0.0)),
        _Mistake("your TPS does not interpolate the control points at lambda=0: with your coefficients, "
                 "sum_j w_j U(|P_i - P_j|^2) + a0 + a1 x_i + a2 y_i must give back Q_i",
                 detect=lambda got: not _tps_interpolates(got, q, ctrl)),
    ], kwargs={"lam": 0.0}, label=f"seed={seed}, lam=0",
        hint="your coefficients interpolate the control points but are not the TPS solution: the weights "
             "must satisfy the side conditions P^T w = 0 (the last 3 rows of the system)")
    at_lam = _Case((theta,), G.tps_coefficients(theta, lam), [
        _Mistake("lambda is ignored: the regularised system is [[K + lam I, P], [P^T, 0]]",
                 solved(q, ctrl, 0.0)),
        _Mistake("lambda goes on K's diagonal only, not on the zero block of the system",
                 solved(q, ctrl, lam, lam_everywhere=True)),
    ], kwargs={"lam": lam}, label=f"seed={seed}, lam={lam}",
        hint=f"at lam={lam} solve [[K + lam I, P], [P^T, 0]] c = [Q; 0]")

    def grad_inputs():
        identity = G.identity_theta("tps", 1, dtype=torch.float64)
        return ((identity + 0.15 * _randn64(1, 18, generator=_generator(seed + 1))).requires_grad_(),)

    return _check("tps_coefficients", tps_coefficients, [at_zero, at_lam],
                  _Gradcheck(grad_inputs, lambda fn, t: fn(t, lam=lam)), verbose,
                  shape_hint="the coefficients are (B, K + 3, 2)")


# ----------------------------------------------------------------------------------------------
# the predictor G's forward pass
# ----------------------------------------------------------------------------------------------


def _random_head(grid: tuple[int, int], seed: int, kind: str, dtype: torch.dtype) -> nn.Module:
    """A regression head with random weights everywhere (the last layer too) and random BN statistics,
    in eval mode; built without drawing from the global random stream."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = (affine_head(grid) if kind == "affine" else tps_head(grid)).to(dtype)
        with torch.no_grad():
            head.linear.weight.normal_(0.0, 0.05)
            for bn in (head.conv[1], head.conv[4]):
                bn.running_mean.normal_(0.0, 0.1)
                bn.running_var.uniform_(0.5, 1.5)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.normal_(0.0, 0.1)
    return head.eval()


def check_regress_theta(regress_theta: Callable, verbose: bool = True, *, seed: int = 3, batch: int = 2,
                        grid: tuple[int, int] = (4, 4), kind: str = "affine",
                        dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``regress_theta(head, corr) -> theta (B, D)``: G's forward pass (conv stack, pool, flatten,
    linear) with the layers of a :class:`macos_lite.predictor.RegressionHead` in eval mode."""
    h, w = grid
    head = _random_head(grid, seed, kind, dtype)
    g = _generator(seed)
    corr = _l2(torch.relu(torch.randn(batch, h * w, h, w, generator=g, dtype=dtype)))
    with torch.no_grad():
        expected = _ref_regress_theta(head, corr)
        features = head.pool(head.conv(corr))
        convs_only = head.pool(torch.relu(head.conv[3](torch.relu(head.conv[0](corr)))))
        mistakes = [
            _Mistake("your theta is the untrained identity: pass the correlation through head.conv, "
                     "head.pool and head.linear instead of returning the bias",
                     lambda: head.linear.bias.expand(batch, -1)),
            _Mistake("flatten in PyTorch's (channel, row, column) order, torch.flatten(x, 1), as the linear "
                     "layer was trained; you moved the channels last first",
                     lambda: head.linear(features.permute(0, 2, 3, 1).flatten(1))),
            _Mistake("use the whole head.conv stack (conv, BatchNorm, ReLU, conv, BatchNorm, ReLU): you skipped "
                     "the BatchNorm layers", lambda: head.linear(convs_only.flatten(1))),
            _Mistake("the ReLU comes after each BatchNorm: your theta is the linear layer of unclipped features",
                     lambda: head.linear(head.pool(head.conv[4](head.conv[3](head.conv[1](head.conv[0](corr)))))
                                         .flatten(1))),
        ]
    case = _Case((head, corr), expected, mistakes, label=f"seed={seed}, grid={h}x{w}, {kind}",
                 hint="theta = head.linear(torch.flatten(head.pool(head.conv(corr)), 1))")
    # float64: the gradient is compared with the reference's along one direction (finite differences
    # through the conv stack cost ~40 forward passes, too slow for an exercise cell)
    head64 = _random_head((2, 2), seed, kind, torch.float64)

    def grad_inputs():
        gg = _generator(seed + 1)
        return (torch.rand(1, 4, 2, 2, generator=gg, dtype=torch.float64).requires_grad_(),)

    return _check("regress_theta", regress_theta, [case], _Gradcheck(grad_inputs, lambda fn, c: fn(head64, c),
                                                           reference=_ref_regress_theta),
                  verbose, shape_hint=f"theta is (B, {expected.shape[1]})")


# ----------------------------------------------------------------------------------------------
# matching score (eqs 2-3)
# ----------------------------------------------------------------------------------------------


def check_matching_score(matching_score: Callable, verbose: bool = True, *, seed: int = 2020, batch: int = 2,
                         grid: tuple[int, int] = (4, 5), dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``matching_score(corr, theta, kind, weights=None, image_size=None) -> (B,)`` (eqs 2-3)."""
    g = _generator(seed)
    b, (h, w) = batch, grid
    size = (16 * h, 16 * w)
    corr = _l2(torch.relu(torch.randn(b, h * w, h, w, generator=g, dtype=dtype)))
    theta = G.identity_theta("affine", b, dtype=dtype) + 0.1 * torch.randn(b, 6, generator=g, dtype=dtype)
    weights = torch.rand(b, h, w, generator=g, dtype=dtype) + 0.1
    m = correspondence_mask(theta, "affine", (h, w), size)  # (B, p, q)
    c = corr.reshape(b, h * w, h * w)
    s_q = (m * c).sum(1)
    wq = weights.reshape(b, h * w)

    def weighted(scores, wts=wq):
        return (wts * scores).sum(1) / wts.sum(1)

    expected = _ref_matching_score(corr, theta, "affine", weights, size)
    label = f"seed={seed}, grid={h}x{w}"
    with_weights = _Case((corr, theta, "affine", weights), expected, [
        _Mistake("your score is not normalised: eq 3 is a weighted mean, divide sum_q M(q) s(q) by "
                 "sum_q M(q)", lambda: (wq * s_q).sum(1)),
        _Mistake("eq 2 sums over the source cells p (dim 1 of S, its channels), giving one score per "
                 "target cell q", lambda: weighted((m * c).sum(2))),
        _Mistake("m(p, q) is indexed (source cell p, target cell q) like S: do not transpose it",
                 lambda: weighted((m.transpose(1, 2) * c).sum(1))),
        _Mistake("the weights are ignored: the score is sum_q M(q) s(q) / sum_q M(q)", lambda: s_q.mean(1)),
        _Mistake("target cells q are row-major: weights.reshape(B, h * w) matches "
                 "corr.reshape(B, h * w, h * w)",
                 lambda: weighted(s_q, weights.transpose(1, 2).reshape(b, h * w))),
        _Mistake("return the score itself; the loss (eq 3) is its negative, taken later", lambda: -expected),
    ], kwargs={"image_size": size}, label=f"{label}, with weights",
        hint="s(q) = sum_p m(p, q) S(p, q) with m = correspondence_mask(theta, kind, (h, w), image_size), "
             "then the weighted mean over q")
    without = _Case((corr, theta, "affine", None), _ref_matching_score(corr, theta, "affine", None, size), [
        _Mistake("your score is not normalised: without weights it is the plain mean of s(q) over the "
                 "target cells", lambda: s_q.sum(1)),
    ], kwargs={"image_size": size}, label=f"{label}, weights=None",
        hint="with weights=None return s(q) averaged over q")

    gg = _generator(seed + 1)
    theta64 = G.identity_theta("affine", 1, dtype=torch.float64) + 0.1 * _randn64(1, 6, generator=gg)

    def grad_inputs():
        gi = _generator(seed + 2)
        return (torch.rand(1, 12, 3, 4, generator=gi, dtype=torch.float64).requires_grad_(),
                (torch.rand(1, 3, 4, generator=gi, dtype=torch.float64) + 0.1).requires_grad_())

    def call(fn, corr64, weights64):
        return fn(corr64, theta64, "affine", weights64, image_size=(48, 64))

    return _check("matching_score", matching_score, [with_weights, without], _Gradcheck(grad_inputs, call),
                  verbose, shape_hint="one score per sample, (B,)")


# ----------------------------------------------------------------------------------------------
# cycle consistency (eq 4) and transitivity (eq 5)
# ----------------------------------------------------------------------------------------------


def _chain(points: torch.Tensor, *thetas: torch.Tensor) -> torch.Tensor:
    """``T_last(...T_first(q)) - q`` for affine thetas applied in the order given, ``(B, N, 2)``."""
    out = points
    for theta in thetas:
        out = G.transform_points(out, theta, "affine")
    return out - points


def _cell_centres(n: int, dtype: torch.dtype) -> torch.Tensor:
    axis = (torch.arange(n, dtype=dtype) + 0.5) / (n / 2) - 1  # cell centres instead of corners
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack((gx, gy), -1).view(-1, 2)


def _distance_mistakes(diff: torch.Tensor, eq: str) -> list[_Mistake]:
    """The mistakes of a mean point distance over the grid, from the chain's residuals ``(B, N, 2)``."""
    return [
        _Mistake(f"the norm is squared: eq {eq} uses the Euclidean distance; take the square root per point, "
                 "then average", lambda: (diff**2).sum(-1).mean(-1)),
        _Mistake("average the distances per point, not the squared distances under one square root",
                 lambda: (diff**2).sum(-1).mean(-1).sqrt()),
        _Mistake("average over the n x n points, do not sum", lambda: diff.norm(dim=-1).sum(-1)),
        _Mistake("use the Euclidean distance sqrt(dx^2 + dy^2), not |dx| + |dy|",
                 lambda: diff.abs().sum(-1).mean(-1)),
    ]


def check_cycle_error(cycle_error: Callable, verbose: bool = True, *, seed: int = 404, batch: int = 3,
                      dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``cycle_error(theta_st, theta_ts) -> (B,)`` (eq 4, affine thetas, normalised units)."""
    g = _generator(seed)
    theta_st = G.identity_theta("affine", batch, dtype=dtype) + 0.2 * torch.randn(batch, 6, generator=g, dtype=dtype)
    theta_ts = G.invert_affine(theta_st) + 0.05 * torch.randn(batch, 6, generator=g, dtype=dtype)
    q = consistency_points(10, dtype)
    diff = _chain(q, theta_st, theta_ts)
    mistakes = _distance_mistakes(diff, "4") + [
        _Mistake("compose in the order T_ts(T_st(q)): theta_st maps the points first",
                 lambda: _chain(q, theta_ts, theta_st).norm(dim=-1).mean(-1)),
        _Mistake("the points span [-1, 1] corner to corner: an n x n grid of torch.linspace(-1, 1, n) "
                 "(macos_lite.losses.consistency_points)",
                 lambda: _chain(_cell_centres(10, dtype), theta_st, theta_ts).norm(dim=-1).mean(-1)),
    ]
    case = _Case((theta_st, theta_ts), _ref_cycle_error(theta_st, theta_ts), mistakes, label=f"seed={seed}",
                 hint="the mean over a 10 x 10 grid q in [-1, 1]^2 of |T_ts(T_st(q)) - q|")

    def grad_inputs():
        gg = _generator(seed + 1)
        t = G.identity_theta("affine", 2, dtype=torch.float64) + 0.2 * _randn64(2, 6, generator=gg)
        back = G.invert_affine(t) + 0.1 * _randn64(2, 6, generator=gg)
        return t.requires_grad_(), back.requires_grad_()

    return _check("cycle_error", cycle_error, [case], _Gradcheck(grad_inputs, lambda fn, a, b_: fn(a, b_)),
                  verbose, shape_hint="one error per sample, (B,)")


def check_transitivity_error(transitivity_error: Callable, verbose: bool = True, *, seed: int = 505,
                             batch: int = 3, dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``transitivity_error(theta_xy, theta_zx, theta_yz) -> (B,)`` (eq 5, affine thetas): the mean
    ``|T_YZ(T_ZX(T_XY(q))) - q|`` over the 10 x 10 grid q of Y."""
    g = _generator(seed)

    def near_identity(scale):
        return G.identity_theta("affine", batch, dtype=dtype) + scale * torch.randn(batch, 6, generator=g, dtype=dtype)

    theta_xy, theta_zx = near_identity(0.2), near_identity(0.2)
    # the closing map nearly undoes the first two, so that the chain's order matters and the error is small
    first_two = _compose_affine(theta_zx, theta_xy)
    theta_yz = G.invert_affine(first_two) + 0.05 * torch.randn(batch, 6, generator=g, dtype=dtype)
    q = consistency_points(10, dtype)
    diff = _chain(q, theta_xy, theta_zx, theta_yz)
    mistakes = _distance_mistakes(diff, "5") + [
        _Mistake("the chain is reversed: start with theta_xy (Y's points into X), then theta_zx, then "
                 "theta_yz, i.e. T_YZ(T_ZX(T_XY(q)))",
                 lambda: _chain(q, theta_yz, theta_zx, theta_xy).norm(dim=-1).mean(-1)),
        _Mistake("all three maps belong in the chain: you composed only two of them",
                 lambda: _chain(q, theta_xy, theta_zx).norm(dim=-1).mean(-1)),
    ]
    expected = _ref_transitivity_error(theta_xy, theta_zx, theta_yz)
    case = _Case((theta_xy, theta_zx, theta_yz), expected, mistakes, label=f"seed={seed}",
                 hint="the mean over a 10 x 10 grid q in [-1, 1]^2 of |T_YZ(T_ZX(T_XY(q))) - q|, with "
                      "macos_lite.geometry.transform_points(points, theta, 'affine') for each map")

    def grad_inputs():
        gg = _generator(seed + 1)
        return tuple((G.identity_theta("affine", 2, dtype=torch.float64) + 0.2 * _randn64(2, 6, generator=gg))
                     .requires_grad_() for _ in range(3))

    return _check("transitivity_error", transitivity_error, [case],
                  _Gradcheck(grad_inputs, lambda fn, a, b_, c: fn(a, b_, c)), verbose,
                  shape_hint="one error per sample, (B,)")


def _compose_affine(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """theta of ``T_outer(T_inner(q))`` for row-major 2x3 thetas ``(B, 6)``."""
    last = torch.tensor([0.0, 0.0, 1.0], dtype=outer.dtype).expand(outer.shape[0], 1, 3)
    m_out = torch.cat((outer.view(-1, 2, 3), last), 1)
    m_in = torch.cat((inner.view(-1, 2, 3), last), 1)
    return (m_out @ m_in)[:, :2].reshape(-1, 6)


# ----------------------------------------------------------------------------------------------
# perceptual contrastive loss (eqs 7-9)
# ----------------------------------------------------------------------------------------------


def stand_in_perceptual(dtype: torch.dtype = torch.float32, seed: int = 7) -> nn.Module:
    """A tiny frozen stand-in for F: conv 3->6, ReLU, global average pooling -> ``(B, 6)``."""
    g = _generator(seed)
    conv = nn.utils.skip_init(nn.Conv2d, 3, 6, 3, padding=1)  # no draw from the global generator
    with torch.no_grad():
        conv.weight.copy_(0.5 * torch.randn(conv.weight.shape, generator=g))
        conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=g))
    net = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return net.to(dtype).eval().requires_grad_(False)


def _contrastive_inputs(b: int, size: int, seed: int, dtype=torch.float32):
    g = _generator(seed)
    images_A = torch.rand(b, 3, size, size, generator=g, dtype=dtype)
    images_B = torch.rand(b, 3, size, size, generator=g, dtype=dtype)
    probs_A = torch.sigmoid(2 * torch.randn(b, 1, size, size, generator=g, dtype=dtype))
    probs_B = torch.sigmoid(2 * torch.randn(b, 1, size, size, generator=g, dtype=dtype))
    return images_A, images_B, probs_A, probs_B


def _features(perceptual, images_A, images_B, probs_A, probs_B):
    """``F(I_A^o), F(I_B^o), F(I_A^b), F(I_B^b)``."""
    return (perceptual(probs_A * images_A), perceptual(probs_B * images_B),
            perceptual((1 - probs_A) * images_A), perceptual((1 - probs_B) * images_B))


def _middle_margin(perceptual, *inputs) -> float:
    """A margin between the two middle separations: the hinge is active for some pairs, not for others."""
    f_oA, f_oB, f_bA, f_bB = _features(perceptual, *inputs)
    sep = (((f_oA - f_bA) ** 2).sum(1) + ((f_oB - f_bB) ** 2).sum(1)).sort().values
    if len(sep) == 1:
        return float(sep[0] / (2 * f_oA.shape[1]) * 1.5)  # one pair: an active hinge
    mid = len(sep) // 2
    return float((sep[mid - 1] + sep[mid]) / (4 * f_oA.shape[1]))


def check_contrastive_terms(contrastive_terms: Callable, verbose: bool = True, *, seed: int = 909, batch: int = 4,
                            size: int = 8, margin: float | None = None) -> CheckResult:
    """Check ``contrastive_terms(perceptual, images_A, images_B, probs_A, probs_B, margin) -> (d+, d-)``.

    margin None: one between the pairs' separations, so that the hinge is active for some pairs only.
    """
    perceptual = stand_in_perceptual()
    inputs = _contrastive_inputs(batch, size, seed)
    images_A, images_B, probs_A, probs_B = inputs
    with torch.no_grad():
        if margin is None:
            margin = _middle_margin(perceptual, *inputs)
        expected = _ref_contrastive_terms(perceptual, *inputs, margin)
        f_oA, f_oB, f_bA, f_bB = _features(perceptual, *inputs)
        swapped = _ref_contrastive_terms(perceptual, images_A, images_B, 1 - probs_A, 1 - probs_B, margin)
    d_plus = expected[0]
    b, c = f_oA.shape
    sep = (((f_oA - f_bA) ** 2).sum(1) + ((f_oB - f_bB) ** 2).sum(1)) / (2 * c)

    def batch_of(value):
        return value.expand(b).clone()

    def unsquared():
        sep_norm = ((f_oA - f_bA).norm(dim=1) + (f_oB - f_bB).norm(dim=1)) / (2 * c)
        return (f_oA - f_oB).norm(dim=1) / c, torch.relu(margin - sep_norm)

    on_batch = "the hinge max(0, m - separation) is taken per pair, not on the batch sum or mean of the " \
               "separations"
    mistakes = [
        _Mistake(on_batch, lambda: (d_plus, batch_of(torch.relu(margin - sep.sum())))),
        _Mistake(on_batch, lambda: (d_plus, batch_of(torch.relu(margin - sep.mean())))),
        _Mistake(on_batch, lambda: (d_plus, batch_of(torch.relu(b * margin - sep.sum()) / b))),
        _Mistake("divide the squared distances by the feature dimension c",
                 lambda: (d_plus * c, torch.relu(margin - sep * c))),
        _Mistake("the separation averages the two images: divide the sum of the two squared distances by 2c",
                 lambda: (d_plus, torch.relu(margin - 2 * sep))),
        _Mistake("the distances are squared Euclidean norms |F(x) - F(y)|^2 (no square root)", unsquared),
        _Mistake("I^o = M * I is the object image and I^b = (1 - M) * I the background: you swapped them",
                 lambda: swapped),
        _Mistake("d- is a hinge: max(0, m - separation), never negative", lambda: (d_plus, margin - sep)),
    ]
    case = _Case((perceptual, *inputs, margin), expected, mistakes, label=f"seed={seed}, batch={batch}",
                 hint="d+ = |F(I_A^o) - F(I_B^o)|^2 / c and d- = max(0, m - (|F(I_A^o) - F(I_A^b)|^2 "
                      "+ |F(I_B^o) - F(I_B^b)|^2) / (2c)), per pair")
    perceptual64 = stand_in_perceptual(torch.float64)
    images64_A, images64_B, probs64_A, probs64_B = _contrastive_inputs(2, 6, seed + 1, torch.float64)
    with torch.no_grad():
        margin64 = _middle_margin(perceptual64, images64_A, images64_B, probs64_A, probs64_B)

    def grad_inputs():
        return probs64_A.clone().requires_grad_(), probs64_B.clone().requires_grad_()

    def call(fn, p_A, p_B):
        return tuple(fn(perceptual64, images64_A, images64_B, p_A, p_B, margin64))

    return _check("contrastive_terms", contrastive_terms, [case],
                  _Gradcheck(grad_inputs, call, reference=_ref_contrastive_terms), verbose,
                  shape_hint="d_plus and d_minus, (B,) each")


# ----------------------------------------------------------------------------------------------
# task consistency (eqs 10-11)
# ----------------------------------------------------------------------------------------------


def check_warped_mask_bce(warped_mask_bce: Callable, verbose: bool = True, *, seed: int = 1010, batch: int = 2,
                          size: tuple[int, int] = (12, 16), shift: float = 0.3) -> CheckResult:
    """Check ``warped_mask_bce(logits_s, logits_t, theta_st, kind="affine") -> (B,)`` (eq 11, one direction).

    shift: the translation of theta (in normalised units); the larger, the more of t falls outside s.
    """
    g = _generator(seed)
    h, w = size
    logits_s = 2 * torch.randn(batch, 1, h, w, generator=g)
    logits_t = 2 * torch.randn(batch, 1, h, w, generator=g)
    theta = G.identity_theta("affine", batch) + 0.1 * torch.randn(batch, 6, generator=g)
    theta[:, 2] += shift
    expected = _ref_warped_mask_bce(logits_s, logits_t, theta, "affine")
    grid = G.sampling_grid(theta, "affine", (h, w))
    valid = G.inside_mask(grid).unsqueeze(1).float()

    def bce(target, logits=logits_t, weights=valid, mean=True):
        per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weights
        total = per_pixel.flatten(1).sum(1)
        return total / weights.flatten(1).sum(1).clamp_min(1.0) if mean else total

    def warp(probs, grid_=grid):
        return F.grid_sample(probs, grid_, align_corners=True)

    target = warp(torch.sigmoid(logits_s))
    inverse_grid = G.sampling_grid(G.invert_affine(theta), "affine", (h, w))
    mistakes = [
        _Mistake("average over the valid pixels only: pixels of t whose source position falls outside s "
                 "(macos_lite.geometry.inside_mask(grid)) carry no target",
                 lambda: bce(target, weights=torch.ones_like(valid))),
        _Mistake("the target is a probability: warp torch.sigmoid(logits_s), not the logits",
                 lambda: bce(warp(logits_s))),
        _Mistake("divide by the number of valid pixels: the loss is a mean, not a sum", lambda: bce(target, mean=False)),
        _Mistake("theta_st maps t's points into s: sample s's mask at sampling_grid(theta_st, ...) as it is, "
                 "not at its inverse", lambda: bce(warp(torch.sigmoid(logits_s), inverse_grid),
                                                   weights=G.inside_mask(inverse_grid).unsqueeze(1).float())),
        _Mistake("the warped source mask is the target of t's logits, not the other way round",
                 lambda: bce(torch.sigmoid(logits_t), logits=warp(logits_s))),
    ]
    case = _Case((logits_s, logits_t, theta), expected, mistakes, kwargs={"kind": "affine"},
                 label=f"seed={seed}, size={h}x{w}, shift={shift}",
                 hint="target = grid_sample(sigmoid(logits_s), sampling_grid(theta_st, kind, (H, W)), "
                      "align_corners=True), then BCE-with-logits of logits_t against it, averaged over the "
                      "valid pixels")
    theta64 = theta[:1].double()

    def grad_inputs():
        gg = _generator(seed + 1)
        return (_randn64(1, 1, 6, 8, generator=gg).requires_grad_(), _randn64(1, 1, 6, 8, generator=gg).requires_grad_())

    def call(fn, s, t):
        return fn(s, t, theta64, kind="affine")

    hint = "the warped source mask is a fixed target: detach it (logits_s.detach()), so that eq 11 trains " \
           "t's mask only, not the source mask or theta"
    return _check("warped_mask_bce", warped_mask_bce, [case],
                  _Gradcheck(grad_inputs, call, reference=_ref_warped_mask_bce, hint=hint), verbose,
                  shape_hint="one loss per sample, (B,)")


# ----------------------------------------------------------------------------------------------
# the full objective (eq 12)
# ----------------------------------------------------------------------------------------------


def check_weighted_objective(weighted_objective: Callable, verbose: bool = True, *, seed: int = 1212,
                             batch: int = 3, names: tuple[str, ...] = ("matching", "cycle", "task"),
                             dtype: torch.dtype = torch.float32) -> CheckResult:
    """Check ``weighted_objective(terms, weights) -> scalar``: eq 12, ``sum_t lambda_t mean_batch(L_t)``."""
    g = _generator(seed)
    terms = {name: torch.rand(batch, generator=g, dtype=dtype) + 0.5 for name in names}
    weights = {name: round(float(torch.rand(1, generator=g)) + 0.1, 3) for name in _TERMS}
    weights[_TERMS[-1]] = 0.0  # a term that is off
    expected = _ref_weighted_objective(terms, weights)

    def combine(reduce, weighted=True):
        return lambda: sum((weights[n] if weighted else 1.0) * reduce(v) for n, v in terms.items())

    mistakes = [
        _Mistake("average each term over the batch (value.mean()), do not sum it: the total must not grow "
                 "with the batch size", combine(torch.sum)),
        _Mistake("each term is multiplied by its lambda (weights[name])", combine(torch.mean, weighted=False)),
        _Mistake("the total is the sum of the weighted terms, not their mean",
                 lambda: expected / len(terms)),
    ]
    case = _Case((terms, weights), expected, mistakes, label=f"seed={seed}, terms={','.join(names)}",
                 hint="L = sum over the computed terms of weights[name] * terms[name].mean()")

    def grad_inputs():
        gg = _generator(seed + 1)
        return tuple(torch.rand(2, generator=gg, dtype=torch.float64).requires_grad_() for _ in names)

    def call(fn, *values):
        return fn(dict(zip(names, values)), weights)

    return _check("weighted_objective", weighted_objective, [case], _Gradcheck(grad_inputs, call), verbose,
                  shape_hint="one number, a 0-d tensor")


# ----------------------------------------------------------------------------------------------
# one training step
# ----------------------------------------------------------------------------------------------


def _toy_problem(seed: int, batch: int, dtype: torch.dtype = torch.float32):
    """A linear model 3 -> 2 with stale gradients left in ``.grad``, an MSE loss and a batch."""
    g = _generator(seed)
    model = nn.utils.skip_init(nn.Linear, 3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, 3, generator=g))
        model.bias.copy_(torch.randn(2, generator=g))
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=g)  # what the previous step left behind
    inputs = torch.randn(batch, 3, generator=g)
    targets = 3 * torch.randn(batch, 2, generator=g)
    return model.to(dtype), (inputs.to(dtype), targets.to(dtype))


def _mse(model: nn.Module, batch) -> torch.Tensor:
    inputs, targets = batch
    return ((model(inputs) - targets) ** 2).mean()


def _by_hand_step(model, batch, lr, grad_clip, zero=True, step=True, clip=True):
    """The step written out, with switches for the known mistakes; returns the parameters and the loss."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    if zero:
        opt.zero_grad()
    loss = _mse(model, batch)
    loss.backward()
    params = list(model.parameters())
    if clip and grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    if step:
        opt.step()
    return (*[p.detach().clone() for p in params], loss.detach().clone())


def check_training_step(training_step: Callable, verbose: bool = True, *, seed: int = 808, batch: int = 4,
                        lr: float = 0.1, grad_clip: float | None = 0.5) -> CheckResult:
    """Check ``training_step(model, loss_fn, optimizer, batch, grad_clip=None) -> float`` on a linear model
    with an SGD optimiser: the parameters after the step and the loss returned (the loss before the update).

    The model's ``.grad`` holds stale gradients when the step starts, as after a previous step.
    """

    def fresh():
        return _toy_problem(seed, batch)

    def outcome(fn):
        def run():
            model, data = fresh()
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            loss = fn(model, _mse, opt, data, grad_clip=grad_clip)
            if loss is None:
                return None
            if torch.is_tensor(loss) and loss.numel() == 1:
                loss = loss.detach().reshape(())
            elif isinstance(loss, numbers.Real):
                loss = torch.tensor(float(loss))
            else:
                what = f"a tensor of shape {tuple(loss.shape)}" if torch.is_tensor(loss) else \
                    f"{type(loss).__module__}.{type(loss).__name__}"
                raise _BadReturn(f"return the loss as a float (loss.item()), got {what}")
            return (*[p.detach().clone() for p in model.parameters()], loss.to(torch.float32))
        return run

    def mistake(**switches):
        def run():
            model, data = fresh()
            return _by_hand_step(model, data, lr, grad_clip, **switches)
        return run

    expected = outcome(_ref_training_step)()
    mistakes = [
        _Mistake("call optimizer.zero_grad() before loss.backward(): PyTorch adds new gradients to the old "
                 "ones in .grad, so your step also applied the previous step's gradients", mistake(zero=False)),
        _Mistake("the parameters did not change: call optimizer.step() after loss.backward()",
                 mistake(step=False)),
        _Mistake("clip the gradient norm to grad_clip when it is not None, between loss.backward() and "
                 "optimizer.step() (torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)); clipping "
                 "after the step changes nothing", mistake(clip=False)),
    ]
    case = _Case((), expected, mistakes, label=f"seed={seed}, grad_clip={grad_clip}",
                 hint="zero_grad, loss = loss_fn(model, batch), loss.backward(), clip_grad_norm_ (when grad_clip "
                      "is not None), optimizer.step(), return loss.item()")
    student = outcome(training_step) if callable(training_step) else training_step
    return _check("training_step", student, [case], None, verbose,
                  shape_hint="return the loss as a float; the parameters are updated in place")


# ----------------------------------------------------------------------------------------------
# PCK (the keypoint metric)
# ----------------------------------------------------------------------------------------------


def check_pck_per_pair(pck_per_pair: Callable, verbose: bool = True, *, seed: int = 909, batch: int = 3,
                       keypoints: int = 8, size: tuple[int, int] = (120, 160), alpha: float = 0.1,
                       with_valid: bool = True) -> CheckResult:
    """Check ``pck_per_pair(pred, gt, alpha=0.1, valid=None, size=None) -> (correct (B,), counted (B,))``
    with the image normaliser ``L = max(H, W)``; pixel coordinates, float64."""
    g = _generator(seed)
    b, n = batch, keypoints
    hh, ww = size
    L = max(hh, ww)
    gt = torch.stack((torch.randint(0, ww, (b, n), generator=g), torch.randint(0, hh, (b, n), generator=g)), -1)
    gt = gt.double()
    radius = alpha * L * (2 * torch.rand(b, n, 1, generator=g, dtype=torch.float64))  # errors up to 2 alpha L
    angle = 2 * math.pi * torch.rand(b, n, 1, generator=g, dtype=torch.float64)
    pred = gt + radius * torch.cat((angle.cos(), angle.sin()), -1)
    pred[:, 0] = gt[:, 0] + torch.tensor([alpha * L, 0.0], dtype=torch.float64)  # exactly on the threshold
    valid = torch.rand(b, n, generator=g) > 0.25 if with_valid else None
    size_t = torch.tensor([hh, ww])
    kwargs = {"alpha": alpha, "valid": valid, "size": size_t}
    expected = _ref_pck_per_pair(pred, gt, alpha, "image", valid, size_t)
    keep = torch.ones(b, n, dtype=torch.bool) if valid is None else valid
    diff = pred - gt

    def counts(dist, threshold, mask=keep, strict=False):
        ok = (dist < threshold) if strict else (dist <= threshold)
        return (ok & mask).double().sum(1), mask.double().sum(1)

    euclid = diff.norm(dim=-1)
    mistakes = [
        _Mistake("a keypoint exactly at alpha * L counts as correct: use <=, not <",
                 lambda: counts(euclid, alpha * L, strict=True)),
        _Mistake("skip the invalid keypoints (valid False): they are neither correct nor counted",
                 lambda: counts(euclid, alpha * L, mask=torch.ones(b, n, dtype=torch.bool))),
        _Mistake("L is the larger side of the image, max(H, W), not the smaller",
                 lambda: counts(euclid, alpha * min(hh, ww))),
        _Mistake("the distance is Euclidean, sqrt(dx^2 + dy^2), not |dx| + |dy| or max(|dx|, |dy|)",
                 lambda: counts(diff.abs().sum(-1), alpha * L)),
        _Mistake("the distance is Euclidean, sqrt(dx^2 + dy^2), not |dx| + |dy| or max(|dx|, |dy|)",
                 lambda: counts(diff.abs().amax(-1), alpha * L)),
        _Mistake("compare the distance with alpha * L, not its square", lambda: counts(euclid**2, alpha * L)),
    ]
    case = _Case((pred, gt), expected, mistakes, kwargs=kwargs,
                 label=f"seed={seed}, size={hh}x{ww}, alpha={alpha}, valid={'given' if with_valid else 'None'}",
                 hint="correct = |pred - gt| <= alpha * max(H, W) for the valid keypoints, summed per pair; "
                      "counted = the number of valid keypoints per pair (both float64)")
    return _check("pck_per_pair", pck_per_pair, [case], None, verbose,
                  shape_hint="(correct, counted), (B,) each, float64")


# ----------------------------------------------------------------------------------------------
# DDT co-localisation
# ----------------------------------------------------------------------------------------------


def _set_features(seed: int, n: int, channels: int, grid: tuple[int, int]) -> torch.Tensor:
    """Descriptors of a set with a recurring object: a common direction inside a central blob, plus noise."""
    g = _generator(seed)
    h, w = grid
    direction = torch.randn(channels, generator=g)
    feats = 0.3 * torch.randn(n, channels, h, w, generator=g) + 0.5
    blob = torch.zeros(h, w)
    blob[h // 4: h - h // 4, w // 4: w - w // 4] = 1.0
    return feats + direction[None, :, None, None] * blob


def check_ddt_projection(ddt_projection: Callable, verbose: bool = True, *, seed: int = 1111, images: int = 3,
                         channels: int = 6, grid: tuple[int, int] = (6, 6)) -> CheckResult:
    """Check ``ddt_projection(features (N, C, h, w)) -> P (N, h, w)``: the first principal direction of the
    set's centred descriptors, signed so that the border is negative on average."""
    feats = _set_features(seed, images, channels, grid)
    n, c, h, w = feats.shape
    x = feats.double().permute(0, 2, 3, 1).reshape(-1, c)
    centred = x - x.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    expected = _ref_ddt_projection(feats)
    mistakes = [
        _Mistake("fix the sign: principal directions have no sign of their own; flip P when the mean score on "
                 "the border cells is positive (objects seldom fill the border)", lambda: -expected),
        _Mistake("centre the descriptors on the set's mean (x - x.mean(0)) before the SVD",
                 lambda: _signed_border((x @ torch.linalg.svd(x, full_matrices=False)[2][0]).view(n, h, w))),
        _Mistake("the mean is over every descriptor of the set (all N images together), not per image",
                 lambda: _per_image_ddt(feats)),
        _Mistake("use the first principal direction (the largest singular value, vh[0]), not the last",
                 lambda: _signed_border((centred @ vh[-1]).view(n, h, w))),
        _Mistake("flatten the descriptors with the channels last: features.permute(0, 2, 3, 1).reshape(-1, C)",
                 lambda: _signed_border(_wrong_flatten(feats))),
    ]
    case = _Case((feats,), expected, mistakes, label=f"seed={seed}, {n} images of {h}x{w}",
                 hint="x = descriptors (N*h*w, C) minus their mean; v = first right singular vector of x; "
                      "P = x @ v reshaped to (N, h, w), negated when its border mean is positive")
    return _check("ddt_projection", ddt_projection, [case], None, verbose, shape_hint="P is (N, h, w)")


def _signed_border(scores: torch.Tensor) -> torch.Tensor:
    border = torch.cat((scores[:, 0].flatten(), scores[:, -1].flatten(), scores[:, 1:-1, 0].flatten(),
                        scores[:, 1:-1, -1].flatten()))
    return (-scores if border.mean() > 0 else scores).float()


def _per_image_ddt(feats: torch.Tensor) -> torch.Tensor:
    n, c, h, w = feats.shape
    x = feats.double().permute(0, 2, 3, 1).reshape(n, -1, c)
    x = (x - x.mean(1, keepdim=True)).reshape(-1, c)
    return _signed_border((x @ torch.linalg.svd(x, full_matrices=False)[2][0]).view(n, h, w))


def _wrong_flatten(feats: torch.Tensor) -> torch.Tensor:
    n, c, h, w = feats.shape
    x = feats.double().reshape(-1, c)  # mixes channels and cells
    x = x - x.mean(0)
    return (x @ torch.linalg.svd(x, full_matrices=False)[2][0]).view(n, h, w)


# ----------------------------------------------------------------------------------------------
# the standard error of a mean (reporting sweeps over seeds)
# ----------------------------------------------------------------------------------------------


def check_standard_error(standard_error: Callable, verbose: bool = True, *, seed: int = 1313,
                         values: int = 5) -> CheckResult:
    """Check ``standard_error(values) -> float``: ``std(values, ddof=1) / sqrt(n)`` of a list of floats."""
    if values < 2:
        raise ValueError(f"the standard error needs at least two values, got values={values}")
    g = _generator(seed)
    data = [round(float(v), 4) for v in 0.4 + 0.1 * torch.randn(values, generator=g, dtype=torch.float64)]
    t = torch.tensor(data, dtype=torch.float64)
    n = len(data)
    expected = torch.tensor(_ref_standard_error(data), dtype=torch.float64)
    mistakes = [
        _Mistake("use the sample standard deviation (ddof=1, divide by n - 1): you used the population one",
                 lambda: t.std(correction=0) / math.sqrt(n)),
        _Mistake("the standard error of the mean divides the standard deviation by sqrt(n)", lambda: t.std()),
        _Mistake("divide by sqrt(n), not by n", lambda: t.std() / n),
        _Mistake("take the square root: std / sqrt(n), not the variance / n", lambda: t.var() / n),
    ]

    def as_tensor(fn):  # the engine compares tensors: a returned number becomes a 0-d float64 tensor
        def call(v):
            out = fn(v)
            return torch.tensor(float(out), dtype=torch.float64) if isinstance(out, numbers.Real) else out
        return call

    case = _Case((data,), expected, mistakes, label=f"seed={seed}, {n} values",
                 hint="std(values, ddof=1) / sqrt(len(values)), as a Python float")
    fn = as_tensor(standard_error) if callable(standard_error) else standard_error
    return _check("standard_error", fn, [case], None, verbose, shape_hint="one number (a Python float)")


# ----------------------------------------------------------------------------------------------
# the registry, and using the student's function afterwards
# ----------------------------------------------------------------------------------------------


CHECKS: dict[str, Callable[..., CheckResult]] = {
    "correlation": check_correlation,
    "affine_grid": check_affine_grid,
    "tps_coefficients": check_tps_coefficients,
    "regress_theta": check_regress_theta,
    "matching_score": check_matching_score,
    "cycle_error": check_cycle_error,
    "transitivity_error": check_transitivity_error,
    "contrastive_terms": check_contrastive_terms,
    "warped_mask_bce": check_warped_mask_bce,
    "weighted_objective": check_weighted_objective,
    "training_step": check_training_step,
    "pck_per_pair": check_pck_per_pair,
    "ddt_projection": check_ddt_projection,
    "standard_error": check_standard_error,
}

REFERENCES: dict[str, str] = {
    "correlation": "macos_lite.correlation.correlation",
    "affine_grid": "macos_lite.geometry.sampling_grid(theta, 'affine', size)",
    "tps_coefficients": "macos_lite.geometry.tps_coefficients",
    "regress_theta": "macos_lite.predictor.regress_theta",
    "matching_score": "macos_lite.losses.matching_score",
    "cycle_error": "macos_lite.losses.cycle_error",
    "transitivity_error": "macos_lite.losses.transitivity_error",
    "contrastive_terms": "macos_lite.losses.contrastive_terms",
    "warped_mask_bce": "macos_lite.losses.warped_mask_bce",
    "weighted_objective": "macos_lite.losses.weighted_objective",
    "training_step": "macos_lite.training_step.training_step",
    "pck_per_pair": "macos_lite.metrics.pck_per_pair",
    "ddt_projection": "macos_lite.colocalization.ddt_projection",
    "standard_error": "macos_lite.sweep.standard_error",
}
"""The package function each exercise is checked against (what :func:`use_if_passing` names)."""


def run_check(exercise: str, fn: Callable, verbose: bool = True, **case) -> CheckResult:
    """Run the checker of ``exercise`` (a key of :data:`CHECKS`) on ``fn``; ``case``: the checker's keyword
    arguments (``seed=``, sizes, ``dtype=``)."""
    if exercise not in CHECKS:
        raise KeyError(f"no checker for exercise {exercise!r}; known: {', '.join(CHECKS)}")
    return CHECKS[exercise](fn, verbose=verbose, **case)


def use_if_passing(result: CheckResult, student_fn: Callable, package_fn: Callable) -> Callable:
    """The function the rest of a notebook runs on: the student's when its check passed, else the package's.

    Prints which one, so that a figure made after a failed exercise says it shows the package's function.

    Example:
        >>> corr_fn = use_if_passing(check_correlation(correlation), correlation, package_correlation)  # doctest: +SKIP
        using your correlation in the cells below
    """
    name = result.exercise
    if result.passed:
        print(f"using your {name} in the cells below")
        return student_fn
    ref = REFERENCES.get(name) or \
        f"{getattr(package_fn, '__module__', None) or 'macos_lite'}.{getattr(package_fn, '__name__', name)}"
    print(f"your {name} does not pass its check yet: the cells below use the package's {ref}")
    return package_fn
