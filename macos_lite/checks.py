"""Checkers for the course exercises: a student's function against the package's reference.

Every checker takes the student's function, calls it on fixed, seeded inputs (float32, the dtype the
course uses), compares the result with the reference implementation of the package and returns a
:class:`CheckResult`. It also prints one CS231n-style line::

    correlation: relative error 3.2e-09 ✓ (gradcheck ok)
    correlation: relative error 6.1e-01 ✗ your correlation is the transpose of the expected one: ...

A checker never raises because of the student's code: an exception, ``None``, a numpy array, a wrong
shape or dtype, NaNs, or inputs modified in place all give a failed result whose ``hint`` says what to
change. Known mistakes (a transposed correlation, ``align_corners=False``, a squared norm, ...) are
recognised by comparing the output with the output of that mistake, so the hint names it. When the
values match, the gradient is checked too (every exercise is part of a trained model):
``torch.autograd.gradcheck`` on the student's function in float64, except for ``contrastive_loss``,
whose reference computes F's features in float32 whatever the input dtype, so its gradient is compared
with the reference's along a random direction.

The relative error is ``max |got - expected| / max(|expected|, |got|)`` over all entries: CS231n's
measure, normalised by the largest magnitude rather than per entry so that entries near zero do not
dominate. A float32 result passes below ``1e-4``. Checkers do not touch the global random state.

The exercises and the exact signature a student implements; the checker calls the student's function
exactly as shown, and the reference is the package function named after it:

``correlation``
    ``correlation(f_A, f_B) -> S_AB`` -- :func:`macos_lite.correlation.correlation`.
    f_A, f_B: L2-normalised features ``(B, C, h, w)``; S_AB: ``(B, h*w, h, w)``, ReLU then L2 over the
    channels, channel ``k = row_A + h * col_A`` (column-major in A).
``affine_grid``
    ``affine_grid(theta, size) -> grid`` -- ``macos_lite.geometry.sampling_grid(theta, "affine", size)``.
    theta ``(B, 6)`` row-major 2x3, size ``(H, W)``; grid ``(B, H, W, 2)``: the source position ``(x, y)``
    of every target pixel, corner-aligned (equal to ``F.affine_grid(..., align_corners=True)``).
``tps_solve``
    ``tps_coefficients(theta, lam=0.0) -> coef`` -- :func:`macos_lite.geometry.tps_coefficients`.
    theta ``(B, 18)`` = ``(Q_X, Q_Y)``, target positions of the X-major 3x3 lattice; coef ``(B, 12, 2)``:
    9 radial weights then ``(a0, a1, a2)``, one column per output coordinate. Called with lam 0 and 0.1.
``matching_score``
    ``matching_score(corr, theta, kind, weights=None, image_size=None) -> (B,)`` --
    :func:`macos_lite.losses.matching.matching_score` (eqs 2-3). Called as
    ``matching_score(corr, theta, "affine", weights, image_size=(64, 80))`` and with ``weights=None``.
``cycle_loss``
    ``cycle_error(theta_st, theta_ts) -> (B,)`` -- :func:`macos_lite.losses.consistency.cycle_error`.
    Eq 4 for affine thetas: the mean Euclidean distance ``|T_ts(T_st(q)) - q|`` over a 10 x 10 grid.
``contrastive_loss``
    ``contrastive_terms(perceptual, images_A, images_B, probs_A, probs_B, margin) -> (d_plus, d_minus)``
    -- :func:`macos_lite.losses.contrastive.contrastive_terms` (eqs 7-9), with a small stand-in F
    (:func:`stand_in_perceptual`); each term ``(B,)``.

In a notebook: ``check_correlation(correlation);`` prints the line (the result is returned too);
``check_correlation(correlation).assert_ok()`` raises :class:`CheckFailed` with the hint unless it
passed -- the form graded hidden checks use. ``run_check(name, fn)`` looks a checker up by name.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import geometry as G
from .correlation import correlation as _ref_correlation
from .losses.consistency import consistency_points
from .losses.consistency import cycle_error as _ref_cycle_error
from .losses.contrastive import contrastive_terms as _ref_contrastive_terms
from .losses.matching import correspondence_mask
from .losses.matching import matching_score as _ref_matching_score

__all__ = [
    "CHECKS", "CheckFailed", "CheckResult", "check_affine_grid", "check_contrastive_loss",
    "check_correlation", "check_cycle_loss", "check_matching_score", "check_tps_solve", "relative_error",
    "run_check", "stand_in_perceptual",
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


def _call(fn: Callable, args: tuple, kwargs: dict) -> tuple[Output | None, str]:
    """The student's output, or None and what went wrong."""
    try:
        return fn(*args, **kwargs), ""
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


def _check(exercise: str, fn: Callable, cases: list[_Case], grad: _Gradcheck, verbose: bool,
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


def _run(exercise: str, fn: Callable, cases: list[_Case], grad: _Gradcheck, shape_hint: str) -> CheckResult:
    if not callable(fn):
        return CheckResult(exercise, False, hint=f"expected a function, got {type(fn).__name__}")
    worst = 0.0
    for case in cases:
        result = _compare(exercise, fn, case, shape_hint)
        if not result.passed:
            return result
        worst = max(worst, result.rel_error)
    result.rel_error, result.case = worst, ""
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
    if any(x is None for x in got):
        return "some inputs get no gradient from your function: each must reach the output differentiably"
    expected = torch.autograd.grad(sum((r * v).sum() for r, v in zip(ref, directions)), inputs)
    err = relative_error(tuple(got), tuple(expected))
    if err > TOLERANCE:
        return f"your gradient differs from the reference's (relative error {err:.1e}): look for in-place " \
               "operations, .detach() or non-differentiable steps"
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


def check_correlation(correlation: Callable, verbose: bool = True) -> CheckResult:
    """Check ``correlation(f_A, f_B) -> S_AB`` (see the module docstring) on 3 x 4 feature grids."""
    g = _generator(231)
    f_A = _l2(torch.randn(2, 16, 3, 4, generator=g))
    f_B = _l2(torch.randn(2, 16, 3, 4, generator=g))
    b, c, h, w = f_A.shape
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
    case = _Case((f_A, f_B), _ref_correlation(f_A, f_B), mistakes,
                 hint="S_AB[b, k, i, j] = <f_A at A's cell k (column-major), f_B at (i, j)>, "
                      "then ReLU and L2 over k")

    def grad_inputs():
        gg = _generator(232)
        return tuple(_randn64(1, 5, 2, 3, generator=gg).requires_grad_() for _ in range(2))

    return _check("correlation", correlation, [case], _Gradcheck(grad_inputs, lambda fn, a, b_: fn(a, b_)),
                  verbose, shape_hint="S_AB is (B, h_A * w_A, h_B, w_B)")


# ----------------------------------------------------------------------------------------------
# affine sampling grid
# ----------------------------------------------------------------------------------------------


def _affine_grid(theta: torch.Tensor, size) -> torch.Tensor:
    return G.sampling_grid(theta, "affine", size)


def check_affine_grid(affine_grid: Callable, verbose: bool = True) -> CheckResult:
    """Check ``affine_grid(theta, size) -> (B, H, W, 2)`` against the package and ``F.affine_grid``."""
    g = _generator(314)
    theta = G.identity_theta("affine", 2) + 0.2 * torch.randn(2, 6, generator=g)
    size = (5, 7)
    m = theta.view(-1, 2, 3)
    expected = _affine_grid(theta, size)
    by_torch = F.affine_grid(m, (2, 1, *size), align_corners=True)
    if relative_error(expected, by_torch) > TOLERANCE:  # both references must agree
        raise RuntimeError("macos_lite.geometry.sampling_grid disagrees with torch's affine_grid")
    no_shift = torch.cat((m[:, :, :2], torch.zeros(2, 2, 1)), dim=2).reshape(-1, 6)
    column_major = m.reshape(-1, 3, 2).transpose(1, 2).reshape(-1, 6)
    transposed = torch.cat((m[:, :, :2].transpose(1, 2), m[:, :, 2:]), dim=2).reshape(-1, 6)
    mistakes = [
        _Mistake("your grid uses align_corners=False (pixel centres at ±(1 - 1/W)); the course is "
                 "corner-aligned: pixel 0 at -1 and pixel W-1 at +1, i.e. torch.linspace(-1, 1, W)",
                 lambda: F.affine_grid(m, (2, 1, *size), align_corners=False)),
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
                 detect=lambda got: _shape(got) == (2, size[1], size[0], 2)),
    ]
    case = _Case((theta, size), expected, mistakes,
                 hint="grid[b, i, j] = theta_b @ (x_j, y_i, 1) with x_j = linspace(-1, 1, W)[j], "
                      "y_i = linspace(-1, 1, H)[i]")

    def grad_inputs():
        gg = _generator(315)
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


def check_tps_solve(tps_coefficients: Callable, verbose: bool = True) -> CheckResult:
    """Check ``tps_coefficients(theta, lam=0.0) -> (B, K+3, 2)`` at lam = 0 and lam = 0.1."""
    g = _generator(1996)
    theta = G.identity_theta("tps", 2) + 0.15 * torch.randn(2, 18, generator=g)
    k = 9
    ctrl = G.tps_control_points(3, torch.float64)
    ctrl_y_major = ctrl.flip(-1)  # the lattice enumerated Y-major: same points, other order
    q = theta.to(torch.float64).view(-1, 2, k).transpose(1, 2)
    q_interleaved = theta.to(torch.float64).view(-1, k, 2)

    def solved(*args, **kwargs):
        return lambda: _tps_solve(*args, **kwargs).to(torch.float32)

    at_zero = _Case((theta,), G.tps_coefficients(theta, 0.0), [
        _Mistake("your TPS has no affine part: solve the full system [[K, P], [P^T, 0]] (K + 3 unknowns: "
                 "the 9 radial weights then a0, a1, a2), not K w = Q", solved(q, ctrl, 0.0, affine=False)),
        _Mistake("your TPS has no affine part: the output is (B, K + 3, 2), 9 radial weights then a0, a1, a2",
                 detect=lambda got: _shape(got) == (2, k, 2)),
        _Mistake("expected (B, K + 3, 2): one column per output coordinate (x, y), not (B, 2, K + 3)",
                 detect=lambda got: _shape(got) == (2, 2, k + 3)),
        _Mistake("your radial kernel is half of U(r) = r^2 log r^2 (the package's d2 * log(d2) with d2 the "
                 "squared distance), so your weights are doubled", solved(q, ctrl, 0.0, 0.5)),
        _Mistake("the control lattice is X-major (P_X = -1,-1,-1, 0,0,0, 1,1,1): use "
                 "macos_lite.geometry.tps_control_points(3)", solved(q, ctrl_y_major, 0.0)),
        _Mistake("theta holds (Q_X, Q_Y): all 9 x's, then all 9 y's; use theta.view(B, 2, 9).transpose(1, "
                 "2), not theta.view(B, 9, 2)", solved(q_interleaved, ctrl, 0.0)),
        _Mistake("your TPS does not interpolate the control points at lambda=0: with your coefficients, "
                 "sum_j w_j U(|P_i - P_j|^2) + a0 + a1 x_i + a2 y_i must give back Q_i",
                 detect=lambda got: not _tps_interpolates(got, q, ctrl)),
    ], kwargs={"lam": 0.0}, label="lam=0",
        hint="your coefficients interpolate the control points but are not the TPS solution: the weights "
             "must satisfy the side conditions P^T w = 0 (the last 3 rows of the system)")
    at_lam = _Case((theta,), G.tps_coefficients(theta, 0.1), [
        _Mistake("lambda is ignored: the regularised system is [[K + lam I, P], [P^T, 0]]",
                 solved(q, ctrl, 0.0)),
        _Mistake("lambda goes on K's diagonal only, not on the zero block of the system",
                 solved(q, ctrl, 0.1, lam_everywhere=True)),
    ], kwargs={"lam": 0.1}, label="lam=0.1", hint="at lam=0.1 solve [[K + lam I, P], [P^T, 0]] c = [Q; 0]")

    def grad_inputs():
        identity = G.identity_theta("tps", 1, dtype=torch.float64)
        return ((identity + 0.15 * _randn64(1, 18, generator=_generator(1997))).requires_grad_(),)

    return _check("tps_solve", tps_coefficients, [at_zero, at_lam],
                  _Gradcheck(grad_inputs, lambda fn, t: fn(t, lam=0.1)), verbose,
                  shape_hint="the coefficients are (B, K + 3, 2)")


# ----------------------------------------------------------------------------------------------
# matching score (eqs 2-3)
# ----------------------------------------------------------------------------------------------


def check_matching_score(matching_score: Callable, verbose: bool = True) -> CheckResult:
    """Check ``matching_score(corr, theta, kind, weights=None, image_size=None) -> (B,)`` (eqs 2-3)."""
    g = _generator(2020)
    b, h, w = 2, 4, 5
    size = (16 * h, 16 * w)
    corr = _l2(torch.relu(torch.randn(b, h * w, h, w, generator=g)))
    theta = G.identity_theta("affine", b) + 0.1 * torch.randn(b, 6, generator=g)
    weights = torch.rand(b, h, w, generator=g) + 0.1
    m = correspondence_mask(theta, "affine", (h, w), size)  # (B, p, q)
    c = corr.reshape(b, h * w, h * w)
    s_q = (m * c).sum(1)
    wq = weights.reshape(b, h * w)

    def weighted(scores, wts=wq):
        return (wts * scores).sum(1) / wts.sum(1)

    expected = _ref_matching_score(corr, theta, "affine", weights, size)
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
    ], kwargs={"image_size": size}, label="with weights",
        hint="s(q) = sum_p m(p, q) S(p, q) with m = correspondence_mask(theta, kind, (h, w), image_size), "
             "then the weighted mean over q")
    without = _Case((corr, theta, "affine", None), _ref_matching_score(corr, theta, "affine", None, size), [
        _Mistake("your score is not normalised: without weights it is the plain mean of s(q) over the "
                 "target cells", lambda: s_q.sum(1)),
    ], kwargs={"image_size": size}, label="weights=None",
        hint="with weights=None return s(q) averaged over q")

    gg = _generator(2021)
    theta64 = G.identity_theta("affine", 1, dtype=torch.float64) + 0.1 * _randn64(1, 6, generator=gg)

    def grad_inputs():
        gi = _generator(2022)
        return (torch.rand(1, 12, 3, 4, generator=gi, dtype=torch.float64).requires_grad_(),
                (torch.rand(1, 3, 4, generator=gi, dtype=torch.float64) + 0.1).requires_grad_())

    def call(fn, corr64, weights64):
        return fn(corr64, theta64, "affine", weights64, image_size=(48, 64))

    return _check("matching_score", matching_score, [with_weights, without], _Gradcheck(grad_inputs, call),
                  verbose, shape_hint="one score per sample, (B,)")


# ----------------------------------------------------------------------------------------------
# cycle consistency (eq 4)
# ----------------------------------------------------------------------------------------------


def _cycle_diff(points: torch.Tensor, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``T_second(T_first(q)) - q`` for affine thetas, ``(B, N, 2)``."""
    return G.transform_points(G.transform_points(points, first, "affine"), second, "affine") - points


def check_cycle_loss(cycle_error: Callable, verbose: bool = True) -> CheckResult:
    """Check ``cycle_error(theta_st, theta_ts) -> (B,)`` (eq 4, affine thetas, normalised units)."""
    g = _generator(404)
    theta_st = G.identity_theta("affine", 3) + 0.2 * torch.randn(3, 6, generator=g)
    theta_ts = G.invert_affine(theta_st) + 0.05 * torch.randn(3, 6, generator=g)
    q = consistency_points(10)
    diff = _cycle_diff(q, theta_st, theta_ts)
    axis = (torch.arange(10, dtype=torch.float32) + 0.5) / 5 - 1  # cell centres instead of corners
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    centres = torch.stack((gx, gy), -1).view(-1, 2)
    mistakes = [
        _Mistake("the norm is squared: eq 4 uses the Euclidean distance |T_ts(T_st(q)) - q|; take the square "
                 "root per point, then average", lambda: (diff**2).sum(-1).mean(-1)),
        _Mistake("average the distances per point, not the squared distances under one square root",
                 lambda: (diff**2).sum(-1).mean(-1).sqrt()),
        _Mistake("compose in the order T_ts(T_st(q)): theta_st maps the points first",
                 lambda: _cycle_diff(q, theta_ts, theta_st).norm(dim=-1).mean(-1)),
        _Mistake("average over the n x n points, do not sum", lambda: diff.norm(dim=-1).sum(-1)),
        _Mistake("use the Euclidean distance sqrt(dx^2 + dy^2), not |dx| + |dy|",
                 lambda: diff.abs().sum(-1).mean(-1)),
        _Mistake("the points span [-1, 1] corner to corner: an n x n grid of torch.linspace(-1, 1, n) "
                 "(macos_lite.losses.consistency_points)",
                 lambda: _cycle_diff(centres, theta_st, theta_ts).norm(dim=-1).mean(-1)),
    ]
    case = _Case((theta_st, theta_ts), _ref_cycle_error(theta_st, theta_ts), mistakes,
                 hint="the mean over a 10 x 10 grid q in [-1, 1]^2 of |T_ts(T_st(q)) - q|")

    def grad_inputs():
        gg = _generator(405)
        t = G.identity_theta("affine", 2, dtype=torch.float64) + 0.2 * _randn64(2, 6, generator=gg)
        back = G.invert_affine(t) + 0.1 * _randn64(2, 6, generator=gg)
        return t.requires_grad_(), back.requires_grad_()

    return _check("cycle_loss", cycle_error, [case], _Gradcheck(grad_inputs, lambda fn, a, b_: fn(a, b_)),
                  verbose, shape_hint="one error per sample, (B,)")


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
    mid = len(sep) // 2
    return float((sep[mid - 1] + sep[mid]) / (4 * f_oA.shape[1]))


def check_contrastive_loss(contrastive_terms: Callable, verbose: bool = True) -> CheckResult:
    """Check ``contrastive_terms(perceptual, images_A, images_B, probs_A, probs_B, margin) -> (d+, d-)``."""
    perceptual = stand_in_perceptual()
    inputs = _contrastive_inputs(4, 8, 909)
    images_A, images_B, probs_A, probs_B = inputs
    with torch.no_grad():
        margin = _middle_margin(perceptual, *inputs)
        expected = _ref_contrastive_terms(perceptual, *inputs, margin)
        f_oA, f_oB, f_bA, f_bB = _features(perceptual, *inputs)
        swapped = _ref_contrastive_terms(perceptual, images_A, images_B, 1 - probs_A, 1 - probs_B, margin)
    d_plus = expected[0]
    b, c = f_oA.shape
    sep = (((f_oA - f_bA) ** 2).sum(1) + ((f_oB - f_bB) ** 2).sum(1)) / (2 * c)

    def batch(value):
        return value.expand(b).clone()

    def unsquared():
        sep_norm = ((f_oA - f_bA).norm(dim=1) + (f_oB - f_bB).norm(dim=1)) / (2 * c)
        return (f_oA - f_oB).norm(dim=1) / c, torch.relu(margin - sep_norm)

    on_batch = "the hinge max(0, m - separation) is taken per pair, not on the batch sum or mean of the " \
               "separations"
    mistakes = [
        _Mistake(on_batch, lambda: (d_plus, batch(torch.relu(margin - sep.sum())))),
        _Mistake(on_batch, lambda: (d_plus, batch(torch.relu(margin - sep.mean())))),
        _Mistake(on_batch, lambda: (d_plus, batch(torch.relu(b * margin - sep.sum()) / b))),
        _Mistake("divide the squared distances by the feature dimension c",
                 lambda: (d_plus * c, torch.relu(margin - sep * c))),
        _Mistake("the separation averages the two images: divide the sum of the two squared distances by 2c",
                 lambda: (d_plus, torch.relu(margin - 2 * sep))),
        _Mistake("the distances are squared Euclidean norms |F(x) - F(y)|^2 (no square root)", unsquared),
        _Mistake("I^o = M * I is the object image and I^b = (1 - M) * I the background: you swapped them",
                 lambda: swapped),
        _Mistake("d- is a hinge: max(0, m - separation), never negative", lambda: (d_plus, margin - sep)),
    ]
    case = _Case((perceptual, *inputs, margin), expected, mistakes,
                 hint="d+ = |F(I_A^o) - F(I_B^o)|^2 / c and d- = max(0, m - (|F(I_A^o) - F(I_A^b)|^2 "
                      "+ |F(I_B^o) - F(I_B^b)|^2) / (2c)), per pair")
    perceptual64 = stand_in_perceptual(torch.float64)
    images64_A, images64_B, probs64_A, probs64_B = _contrastive_inputs(2, 6, 910, torch.float64)
    with torch.no_grad():
        margin64 = _middle_margin(perceptual64, images64_A, images64_B, probs64_A, probs64_B)

    def grad_inputs():
        return probs64_A.clone().requires_grad_(), probs64_B.clone().requires_grad_()

    def call(fn, p_A, p_B):
        return tuple(fn(perceptual64, images64_A, images64_B, p_A, p_B, margin64))

    return _check("contrastive_loss", contrastive_terms, [case],
                  _Gradcheck(grad_inputs, call, reference=_ref_contrastive_terms), verbose,
                  shape_hint="d_plus and d_minus, (B,) each")


CHECKS: dict[str, Callable[..., CheckResult]] = {
    "correlation": check_correlation,
    "affine_grid": check_affine_grid,
    "tps_solve": check_tps_solve,
    "matching_score": check_matching_score,
    "cycle_loss": check_cycle_loss,
    "contrastive_loss": check_contrastive_loss,
}


def run_check(exercise: str, fn: Callable, verbose: bool = True) -> CheckResult:
    """Run the checker of ``exercise`` (a key of :data:`CHECKS`) on ``fn``."""
    if exercise not in CHECKS:
        raise KeyError(f"no checker for exercise {exercise!r}; known: {', '.join(CHECKS)}")
    return CHECKS[exercise](fn, verbose=verbose)
