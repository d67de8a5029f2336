"""The exercise checkers: independent correct implementations pass, plausible mistakes fail with the
matching hint, and broken student code gives a failed result instead of an exception."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from macos_lite import checks as C
from macos_lite import geometry as G
from macos_lite.correlation import correlation as reference_correlation
from macos_lite.losses import contrastive_terms, correspondence_mask, cycle_error, matching_score

# ----------------------------------------------------------------------------------------------
# Student implementations written from the formulas, independently of the package


def correlation_loops(f_A, f_B):
    """S_AB by explicit loops over A's cells, column-major channel order, ReLU, L2 over channels."""
    h, w = f_A.shape[-2:]
    out = []
    for col in range(w):
        for row in range(h):  # row varies fastest: k = row + h * col
            out.append((f_A[:, :, row, col, None, None] * f_B).sum(1))
    s = torch.relu(torch.stack(out, dim=1))
    return F.normalize(s, dim=1)


def correlation_row_major(f_A, f_B):
    b, c, h, w = f_A.shape
    s = torch.einsum("bck,bcij->bkij", f_A.reshape(b, c, h * w), f_B)
    return F.normalize(torch.relu(s), dim=1)


def affine_grid_torch(theta, size):
    return F.affine_grid(theta.view(-1, 2, 3), (theta.shape[0], 1, *size), align_corners=True)


def affine_grid_no_corners(theta, size):
    return F.affine_grid(theta.view(-1, 2, 3), (theta.shape[0], 1, *size), align_corners=False)


def tps_numpy(theta, lam=0.0, affine=True):
    """Closed-form TPS solve with numpy in float64 (U(r) = r^2 log r^2), back to torch."""
    axis = np.linspace(-1, 1, 3)
    ctrl = np.array([(x, y) for x in axis for y in axis])  # X-major
    d2 = ((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        kern = np.where(d2 > 0, d2 * np.log(d2), 0.0) + lam * np.eye(9)
    p = np.hstack([np.ones((9, 1)), ctrl])
    system = np.block([[kern, p], [p.T, np.zeros((3, 3))]]) if affine else kern
    out = []
    for row in theta.detach().numpy().astype(np.float64):
        q = np.stack([row[:9], row[9:]], axis=1)
        rhs = np.vstack([q, np.zeros((3, 2))]) if affine else q
        out.append(np.linalg.solve(system, rhs))
    coef = torch.from_numpy(np.stack(out)).to(theta.dtype)
    return coef if affine else torch.cat((coef, torch.zeros(len(coef), 3, 2, dtype=theta.dtype)), 1)


def tps_no_affine(theta, lam=0.0):
    return tps_numpy(theta, lam, affine=False)


def tps_torch_solve(theta, lam=0.0):
    """A differentiable student TPS: build L and solve with torch.linalg.solve."""
    ctrl = G.tps_control_points(3, theta.dtype)
    d2 = ((ctrl[:, None] - ctrl[None]) ** 2).sum(-1)
    kern = torch.where(d2 > 0, d2 * torch.log(d2.clamp_min(1e-12)), torch.zeros_like(d2)) + lam * torch.eye(9)
    p = torch.cat((torch.ones(9, 1, dtype=theta.dtype), ctrl), 1)
    system = torch.cat((torch.cat((kern, p), 1), torch.cat((p.t(), torch.zeros(3, 3, dtype=theta.dtype)), 1)))
    q = theta.view(-1, 2, 9).transpose(1, 2)
    rhs = torch.cat((q, torch.zeros(theta.shape[0], 3, 2, dtype=theta.dtype)), 1)
    return torch.linalg.solve(system, rhs)


def score_einsum(corr, theta, kind, weights=None, image_size=None):
    b, _, h, w = corr.shape
    m = correspondence_mask(theta, kind, (h, w), image_size or (16 * h, 16 * w))
    s = torch.einsum("bpq,bpq->bq", m, corr.reshape(b, h * w, h * w))
    if weights is None:
        return s.mean(1)
    wq = weights.reshape(b, -1)
    return (wq * s).sum(1) / wq.sum(1)


def score_unnormalised(corr, theta, kind, weights=None, image_size=None):
    b, _, h, w = corr.shape
    m = correspondence_mask(theta, kind, (h, w), image_size or (16 * h, 16 * w))
    s = (m * corr.reshape(b, h * w, h * w)).sum(1)
    return (s * (1 if weights is None else weights.reshape(b, -1))).sum(1)


def _cycle_points(n=10):
    axis = torch.linspace(-1, 1, n, dtype=torch.float64)
    return torch.tensor([(x, y) for y in axis for x in axis], dtype=torch.float64)


def cycle_homogeneous(theta_st, theta_ts, kind="affine", n=10, squared=False):
    """Eq 4 with 3x3 homogeneous matrices: mean |T_ts(T_st(q)) - q| over an n x n grid."""
    q = torch.cat((_cycle_points(n), torch.ones(n * n, 1, dtype=torch.float64)), 1).to(theta_st.dtype)
    last = torch.tensor([[0.0, 0.0, 1.0]], dtype=theta_st.dtype)
    errors = []
    for a, b in zip(theta_st, theta_ts):
        m_st = torch.cat((a.view(2, 3), last))
        m_ts = torch.cat((b.view(2, 3), last))
        d2 = ((q @ (m_ts @ m_st).t() - q)[:, :2] ** 2).sum(1)
        errors.append(d2.mean() if squared else d2.sqrt().mean())
    return torch.stack(errors)


def cycle_squared(theta_st, theta_ts, kind="affine", n=10):
    return cycle_homogeneous(theta_st, theta_ts, kind, n, squared=True)


def contrastive_explicit(perceptual, images_A, images_B, probs_A, probs_B, margin, batch_hinge=False):
    f_oA, f_oB = perceptual(probs_A * images_A), perceptual(probs_B * images_B)
    f_bA, f_bB = perceptual((1 - probs_A) * images_A), perceptual((1 - probs_B) * images_B)
    c = f_oA.shape[1]
    d_plus = ((f_oA - f_oB) ** 2).sum(1) / c
    sep = (((f_oA - f_bA) ** 2).sum(1) + ((f_oB - f_bB) ** 2).sum(1)) / (2 * c)
    if batch_hinge:  # the official code's bug: one hinge on the batch sum
        return d_plus, torch.clamp(margin - sep.sum(), min=0).expand_as(sep)
    return d_plus, torch.clamp(margin - sep, min=0)


def contrastive_batch_hinge(*args):
    return contrastive_explicit(*args, batch_hinge=True)


# ----------------------------------------------------------------------------------------------

REFERENCES = {
    "correlation": reference_correlation,
    "affine_grid": lambda theta, size: G.sampling_grid(theta, "affine", size),
    "tps_solve": G.tps_coefficients,
    "matching_score": matching_score,
    "cycle_loss": cycle_error,
    "contrastive_loss": contrastive_terms,
}

INDEPENDENT = {
    "correlation": correlation_loops,
    "affine_grid": affine_grid_torch,
    "tps_solve": tps_torch_solve,
    "matching_score": score_einsum,
    "cycle_loss": cycle_homogeneous,
    "contrastive_loss": contrastive_explicit,
}

MISTAKES = [  # (exercise, wrong implementation, words the hint must contain)
    ("correlation", correlation_row_major, "transpose of the expected one"),
    ("correlation", lambda a, b: reference_correlation(b, a), "S_BA"),
    ("correlation", lambda a, b: F.normalize(torch.einsum("bck,bcij->bkij", a.transpose(2, 3).flatten(2), b),
                                             dim=1), "ReLU"),
    ("affine_grid", affine_grid_no_corners, "align_corners=False"),
    ("affine_grid", lambda t, s: affine_grid_torch(t, s).flip(-1), "(x, y)"),
    ("affine_grid", lambda t, s: affine_grid_torch(t, s[::-1]), "H rows and W columns"),
    ("tps_solve", tps_no_affine, "no affine part"),
    ("tps_solve", lambda t, lam=0.0: tps_numpy(t, lam)[:, :9], "no affine part"),
    ("tps_solve", lambda t, lam=0.0: tps_numpy(t, 0.0), "lambda is ignored"),
    ("tps_solve", lambda t, lam=0.0: tps_numpy(t, lam) * 1.1,
     "does not interpolate the control points at lambda=0"),
    ("matching_score", score_unnormalised, "not normalised"),
    ("matching_score", lambda *a, **k: -score_einsum(*a, **k), "negative"),
    ("cycle_loss", cycle_squared, "the norm is squared"),
    ("cycle_loss", lambda a, b: cycle_homogeneous(b, a), "order T_ts(T_st(q))"),
    ("contrastive_loss", contrastive_batch_hinge, "per pair, not on the batch sum"),
    ("contrastive_loss", lambda p, a, b, pa, pb, m: contrastive_explicit(p, a, b, 1 - pa, 1 - pb, m),
     "swapped"),
    ("contrastive_loss", lambda *a: sum(contrastive_explicit(*a)), "tuple of 2 tensors (d_plus and d_minus"),
]


@pytest.mark.parametrize("exercise", list(C.CHECKS))
def test_reference_passes_with_gradcheck(exercise, capsys):
    result = C.run_check(exercise, REFERENCES[exercise])
    assert result.passed, result.message
    assert result.gradcheck is True
    assert result.rel_error < 1e-6
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{exercise}: relative error") and line.split()[-3] == "✓"


@pytest.mark.parametrize("exercise", list(C.CHECKS))
def test_independent_implementation_passes(exercise):
    result = C.run_check(exercise, INDEPENDENT[exercise], verbose=False)
    assert result.passed, result.message
    assert result.rel_error < C.TOLERANCE


@pytest.mark.parametrize("exercise, wrong, words", MISTAKES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_mistake_fails_with_its_hint(exercise, wrong, words, capsys):
    result = C.run_check(exercise, wrong)
    assert not result.passed
    assert words in result.hint, result.hint
    assert "✗" in capsys.readouterr().out
    with pytest.raises(C.CheckFailed, match="hint|" + exercise):
        result.assert_ok()


def _raises(*args, **kwargs):
    raise NotImplementedError("Exercise demo: replace this line with your code")


def _crashes(*args, **kwargs):
    return args[0] @ "not a tensor"


def _returns_none(*args, **kwargs):
    return None


def _pair(fn):
    return lambda *args, **kwargs: (fn(*args, **kwargs), fn(*args, **kwargs))


@pytest.mark.parametrize("exercise", list(C.CHECKS))
@pytest.mark.parametrize("broken, words", [
    (_raises, "not implemented yet"),
    (_crashes, "your function raised TypeError"),
    (_returns_none, "returned None"),
    (lambda *a, **k: np.zeros(3), "numpy.ndarray"),
    (lambda *a, **k: torch.full((7, 1), float("nan")), "expected shape"),
    (None, "expected a function"),
])
def test_broken_code_gives_a_failed_result(exercise, broken, words):
    if exercise == "contrastive_loss" and broken not in (None, _returns_none):  # keep the (d+, d-) structure
        broken = _pair(broken)
    result = C.run_check(exercise, broken, verbose=False)
    assert not result.passed and result.gradcheck is None
    assert words in result.hint, result.hint
    assert str(result)  # prints without error


def test_nan_output_is_named():
    result = C.check_cycle_loss(lambda a, b: cycle_error(a, b) * float("nan"), verbose=False)
    assert "NaN" in result.hint


def test_in_place_modification_is_caught():
    def normalising_in_place(f_A, f_B):
        f_A /= f_A.norm(dim=1, keepdim=True)
        return reference_correlation(f_A, f_B)

    result = C.check_correlation(normalising_in_place, verbose=False)
    assert not result.passed and "in place" in result.hint


def test_gradient_problems_are_caught():
    detached = C.check_correlation(lambda a, b: reference_correlation(a, b).detach(), verbose=False)
    assert not detached.passed and "no gradient" in detached.hint
    float32_only = C.check_cycle_loss(lambda a, b: cycle_error(a.float(), b.float()), verbose=False)
    assert not float32_only.passed and "float64" in float32_only.hint


def test_numpy_round_trip_passes_values_but_not_gradients():
    result = C.check_tps_solve(tps_numpy, verbose=False)
    assert not result.passed and result.rel_error < C.TOLERANCE
    assert "no gradient" in result.hint and result.case == "float64 gradient"


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    C.check_contrastive_loss(contrastive_terms, verbose=False)
    assert torch.equal(before, torch.random.get_rng_state())


def test_relative_error_is_scale_aware():
    a = torch.tensor([1.0, 1e-9])
    assert C.relative_error(a, torch.tensor([1.0, 2e-9])) < 1e-8
    assert C.relative_error((a, a), (a, 2 * a)) == pytest.approx(0.5)


def test_unknown_exercise():
    with pytest.raises(KeyError, match="no checker"):
        C.run_check("nope", lambda: None)
