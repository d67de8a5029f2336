"""The exercise checkers: independent correct implementations pass, plausible mistakes fail with the
matching hint, and broken student code gives a failed result instead of an exception."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from macos_lite import checks as C
from macos_lite import geometry as G
from macos_lite.correlation import correlation as reference_correlation
from macos_lite.colocalization import ddt_projection
from macos_lite.losses import (contrastive_terms, correspondence_mask, cycle_error, matching_score, transitivity_error,
                               warped_mask_bce, weighted_objective)
from macos_lite.metrics import pck_per_pair
from macos_lite.predictor import regress_theta
from macos_lite.sweep import standard_error
from macos_lite.training_step import training_step

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


def regress_by_layers(head, corr):
    """G's forward pass written layer by layer with torch.nn.functional (BN in eval mode)."""
    conv1, bn1, _, conv2, bn2, _ = head.conv
    x = F.conv2d(corr, conv1.weight, conv1.bias, padding=conv1.padding)
    x = F.relu(F.batch_norm(x, bn1.running_mean, bn1.running_var, bn1.weight, bn1.bias, eps=bn1.eps))
    x = F.conv2d(x, conv2.weight, conv2.bias, padding=conv2.padding)
    x = F.relu(F.batch_norm(x, bn2.running_mean, bn2.running_var, bn2.weight, bn2.bias, eps=bn2.eps))
    x = F.adaptive_avg_pool2d(x, 5)
    return x.reshape(x.shape[0], -1) @ head.linear.weight.t() + head.linear.bias


def regress_channels_last(head, corr):
    x = head.pool(head.conv(corr))
    return head.linear(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))


def _homogeneous(theta):
    last = torch.tensor([[0.0, 0.0, 1.0]], dtype=theta.dtype)
    return torch.cat((theta.view(2, 3), last))


def transitivity_homogeneous(theta_xy, theta_zx, theta_yz, reverse=False, squared=False):
    """Eq 5 with 3x3 matrices: the chain T_YZ T_ZX T_XY applied to the 10 x 10 grid of Y."""
    q = torch.cat((_cycle_points(10), torch.ones(100, 1, dtype=torch.float64)), 1).to(theta_xy.dtype)
    out = []
    for a, b, c in zip(theta_xy, theta_zx, theta_yz):
        chain = _homogeneous(a) @ _homogeneous(b) @ _homogeneous(c) if reverse else \
            _homogeneous(c) @ _homogeneous(b) @ _homogeneous(a)
        d2 = ((q @ chain.t() - q)[:, :2] ** 2).sum(1)
        out.append(d2.mean() if squared else d2.sqrt().mean())
    return torch.stack(out)


def task_bce_explicit(logits_s, logits_t, theta_st, kind="affine", use_valid=True, detach=True):
    """Eq 11 from the formula: warp sigmoid(M_s) by grid_sample at theta's grid, BCE on the valid pixels."""
    h, w = logits_t.shape[-2:]
    grid = F.affine_grid(theta_st.view(-1, 2, 3).to(logits_t.dtype), (len(theta_st), 1, h, w), align_corners=True)
    target = F.grid_sample(torch.sigmoid(logits_s.detach() if detach else logits_s), grid, align_corners=True)
    valid = ((grid.abs() <= 1).all(-1, keepdim=True).permute(0, 3, 1, 2)).to(logits_t.dtype)
    if not use_valid:
        valid = torch.ones_like(valid)
    p = torch.sigmoid(logits_t)
    bce = -(target * torch.log(p) + (1 - target) * torch.log1p(-p))
    return (bce * valid).sum((1, 2, 3)) / valid.sum((1, 2, 3))


def objective_loops(terms, weights):
    total = 0.0
    for name, values in terms.items():
        total = total + weights[name] * values.sum() / len(values)
    return total


def step_by_hand(model, loss_fn, optimizer, batch, grad_clip=None):
    """zero, forward, backward, clip by the global norm computed by hand, step."""
    for p in model.parameters():
        p.grad = None
    loss = loss_fn(model, batch)
    loss.backward()
    if grad_clip is not None:
        norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
        if norm > grad_clip:
            for p in model.parameters():
                p.grad.mul_(grad_clip / (norm + 1e-6))
    optimizer.step()
    return loss.item()


def step_without_zero_grad(model, loss_fn, optimizer, batch, grad_clip=None):
    loss = loss_fn(model, batch)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def pck_numpy(pred, gt, alpha=0.1, valid=None, size=None, strict=False):
    """PCK counts with numpy loops: a keypoint is correct when its distance is <= alpha * max(H, W)."""
    threshold = alpha * float(max(size))
    correct, counted = [], []
    for b in range(gt.shape[0]):
        c = n = 0
        for k in range(gt.shape[1]):
            if valid is not None and not bool(valid[b, k]):
                continue
            d = float(np.hypot(*(pred[b, k] - gt[b, k]).numpy()))
            n += 1
            c += d < threshold if strict else d <= threshold
        correct.append(c)
        counted.append(n)
    return torch.tensor(correct, dtype=torch.float64), torch.tensor(counted, dtype=torch.float64)


def ddt_numpy(features, per_image=False):
    """DDT with numpy's eigendecomposition of the covariance (the first eigenvector), border rule for the sign."""
    n, c, h, w = features.shape
    x = features.double().numpy().transpose(0, 2, 3, 1).reshape(n, h * w, c)
    x = (x - (x.mean(1, keepdims=True) if per_image else x.mean((0, 1)))).reshape(-1, c)
    vals, vecs = np.linalg.eigh(x.T @ x)
    scores = (x @ vecs[:, -1]).reshape(n, h, w)
    border = np.concatenate([scores[:, 0].ravel(), scores[:, -1].ravel(), scores[:, 1:-1, 0].ravel(),
                             scores[:, 1:-1, -1].ravel()])
    return torch.from_numpy(-scores if border.mean() > 0 else scores).float()


def standard_error_statistics(values):
    import statistics
    return statistics.stdev(values) / len(values) ** 0.5


# ----------------------------------------------------------------------------------------------

REFERENCES = {
    "correlation": reference_correlation,
    "affine_grid": lambda theta, size: G.sampling_grid(theta, "affine", size),
    "tps_coefficients": G.tps_coefficients,
    "matching_score": matching_score,
    "cycle_error": cycle_error,
    "contrastive_terms": contrastive_terms,
    "regress_theta": regress_theta,
    "transitivity_error": transitivity_error,
    "warped_mask_bce": warped_mask_bce,
    "weighted_objective": weighted_objective,
    "training_step": training_step,
    "pck_per_pair": lambda pred, gt, alpha=0.1, valid=None, size=None: pck_per_pair(pred, gt, alpha, "image", valid, size),
    "ddt_projection": ddt_projection,
    "standard_error": standard_error,
}

INDEPENDENT = {
    "correlation": correlation_loops,
    "affine_grid": affine_grid_torch,
    "tps_coefficients": tps_torch_solve,
    "matching_score": score_einsum,
    "cycle_error": cycle_homogeneous,
    "contrastive_terms": contrastive_explicit,
    "regress_theta": regress_by_layers,
    "transitivity_error": transitivity_homogeneous,
    "warped_mask_bce": task_bce_explicit,
    "weighted_objective": objective_loops,
    "training_step": step_by_hand,
    "pck_per_pair": pck_numpy,
    "ddt_projection": ddt_numpy,
    "standard_error": standard_error_statistics,
}

NO_GRADIENT = {"training_step", "pck_per_pair", "ddt_projection", "standard_error"}  # nothing to differentiate

MISTAKES = [  # (exercise, wrong implementation, words the hint must contain)
    ("correlation", correlation_row_major, "transpose of the expected one"),
    ("correlation", lambda a, b: reference_correlation(b, a), "S_BA"),
    ("correlation", lambda a, b: F.normalize(torch.einsum("bck,bcij->bkij", a.transpose(2, 3).flatten(2), b),
                                             dim=1), "ReLU"),
    ("affine_grid", affine_grid_no_corners, "align_corners=False"),
    ("affine_grid", lambda t, s: affine_grid_torch(t, s).flip(-1), "(x, y)"),
    ("affine_grid", lambda t, s: affine_grid_torch(t, s[::-1]), "H rows and W columns"),
    ("tps_coefficients", tps_no_affine, "no affine part"),
    ("tps_coefficients", lambda t, lam=0.0: tps_numpy(t, lam)[:, :9], "no affine part"),
    ("tps_coefficients", lambda t, lam=0.0: tps_numpy(t, 0.0), "lambda is ignored"),
    ("tps_coefficients", lambda t, lam=0.0: tps_numpy(t, lam) * 1.1,
     "does not interpolate the control points at lambda=0"),
    ("matching_score", score_unnormalised, "not normalised"),
    ("matching_score", lambda *a, **k: -score_einsum(*a, **k), "negative"),
    ("cycle_error", cycle_squared, "the norm is squared"),
    ("cycle_error", lambda a, b: cycle_homogeneous(b, a), "order T_ts(T_st(q))"),
    ("contrastive_terms", contrastive_batch_hinge, "per pair, not on the batch sum"),
    ("contrastive_terms", lambda p, a, b, pa, pb, m: contrastive_explicit(p, a, b, 1 - pa, 1 - pb, m),
     "swapped"),
    ("contrastive_terms", lambda *a: sum(contrastive_explicit(*a)), "tuple of 2 tensors (d_plus and d_minus"),
    ("regress_theta", regress_channels_last, "flatten in PyTorch's (channel, row, column) order"),
    ("regress_theta", lambda head, corr: head.linear.bias.expand(len(corr), -1), "untrained identity"),
    ("transitivity_error", lambda a, b, c: transitivity_homogeneous(a, b, c, reverse=True), "chain is reversed"),
    ("transitivity_error", lambda a, b, c: transitivity_homogeneous(a, b, c, squared=True), "the norm is squared"),
    ("warped_mask_bce", lambda s, t, th, kind="affine": task_bce_explicit(s, t, th, kind, use_valid=False),
     "valid pixels only"),
    ("warped_mask_bce", lambda s, t, th, kind="affine": task_bce_explicit(s, t, th, kind, detach=False),
     "detach it"),
    ("weighted_objective", lambda terms, weights: sum(weights[n] * v.sum() for n, v in terms.items()),
     "do not sum it"),
    ("weighted_objective", lambda terms, weights: sum(v.mean() for v in terms.values()), "lambda"),
    ("training_step", step_without_zero_grad, "zero_grad"),
    ("training_step", lambda m, f, o, b, grad_clip=None: f(m, b).item(), "optimizer.step()"),
    ("training_step", lambda m, f, o, b, grad_clip=None: step_by_hand(m, f, o, b, None), "clip the gradient norm"),
    ("pck_per_pair", lambda *a, **k: pck_numpy(*a, **k, strict=True), "use <=, not <"),
    ("pck_per_pair", lambda pred, gt, alpha=0.1, valid=None, size=None: pck_numpy(pred, gt, alpha, None, size),
     "skip the invalid keypoints"),
    ("pck_per_pair", lambda pred, gt, alpha=0.1, valid=None, size=None: pck_numpy(pred, gt, alpha, valid,
                                                                                 (min(size), min(size))),
     "max(H, W)"),
    ("ddt_projection", lambda f: -ddt_numpy(f), "fix the sign"),
    ("ddt_projection", lambda f: ddt_numpy(f, per_image=True), "not per image"),
    ("standard_error", lambda v: float(np.std(v) / np.sqrt(len(v))), "ddof=1"),
    ("standard_error", lambda v: float(np.std(v, ddof=1)), "sqrt(n)"),
]


@pytest.mark.parametrize("exercise", list(C.CHECKS))
def test_reference_passes_with_gradcheck(exercise, capsys):
    result = C.run_check(exercise, REFERENCES[exercise])
    assert result.passed, result.message
    assert result.gradcheck is (None if exercise in NO_GRADIENT else True)
    assert result.rel_error < 1e-6
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{exercise}: relative error") and "✓" in line.split()[3:5]


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
    if exercise in ("contrastive_terms", "pck_per_pair") and broken not in (None, _returns_none):
        broken = _pair(broken)  # keep the (d+, d-) / (correct, counted) structure
    if exercise == "training_step" and words in ("numpy.ndarray", "expected shape"):
        words = "return the loss as a float"  # the step returns the loss, not an output to compare
    result = C.run_check(exercise, broken, verbose=False)
    assert not result.passed and result.gradcheck is None
    assert words in result.hint, result.hint
    assert str(result)  # prints without error


def test_nan_output_is_named():
    result = C.check_cycle_error(lambda a, b: cycle_error(a, b) * float("nan"), verbose=False)
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
    float32_only = C.check_cycle_error(lambda a, b: cycle_error(a.float(), b.float()), verbose=False)
    assert not float32_only.passed and "float64" in float32_only.hint


def test_numpy_round_trip_passes_values_but_not_gradients():
    result = C.check_tps_coefficients(tps_numpy, verbose=False)
    assert not result.passed and result.rel_error < C.TOLERANCE
    assert "no gradient" in result.hint and result.case == "float64 gradient"


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    C.check_contrastive_terms(contrastive_terms, verbose=False)
    assert torch.equal(before, torch.random.get_rng_state())


def test_relative_error_is_scale_aware():
    a = torch.tensor([1.0, 1e-9])
    assert C.relative_error(a, torch.tensor([1.0, 2e-9])) < 1e-8
    assert C.relative_error((a, a), (a, 2 * a)) == pytest.approx(0.5)


def test_unknown_exercise():
    with pytest.raises(KeyError, match="no checker"):
        C.run_check("nope", lambda: None)


# the hidden cases of the solution notebooks use these parameters (other seeds, shapes, dtypes, edge cases)
HIDDEN_VARIANTS = {
    "correlation": [dict(seed=5, batch=1, grid=(2, 5)), dict(seed=6, dtype=torch.float64)],
    "affine_grid": [dict(seed=7, batch=3, size=(4, 4)), dict(seed=8, size=(2, 6), dtype=torch.float64)],
    "tps_coefficients": [dict(seed=9, batch=1, lam=1.0), dict(seed=10, dtype=torch.float64)],
    "regress_theta": [dict(seed=11, grid=(6, 6), batch=1), dict(seed=12, kind="tps", grid=(3, 5)),
                      dict(seed=13, dtype=torch.float64)],
    "matching_score": [dict(seed=3, batch=1), dict(seed=4, grid=(3, 3), dtype=torch.float64)],
    "cycle_error": [dict(seed=14, batch=1), dict(seed=15, dtype=torch.float64)],
    "transitivity_error": [dict(seed=16, batch=1), dict(seed=17, dtype=torch.float64)],
    "contrastive_terms": [dict(seed=18, batch=1), dict(seed=19, batch=6, size=5, margin=0.0)],
    "warped_mask_bce": [dict(seed=20, batch=1, size=(7, 9)), dict(seed=21, shift=1.2)],
    "weighted_objective": [dict(seed=22, batch=1, names=("matching",)), dict(seed=23, dtype=torch.float64)],
    "training_step": [dict(seed=24, grad_clip=None), dict(seed=25, batch=1, lr=0.5, grad_clip=10.0)],
    "pck_per_pair": [dict(seed=26, with_valid=False), dict(seed=27, size=(200, 90), alpha=0.05, batch=1)],
    "ddt_projection": [dict(seed=28, images=1), dict(seed=29, channels=3, grid=(4, 7))],
    "standard_error": [dict(seed=30, values=2), dict(seed=31, values=12)],
}


@pytest.mark.parametrize("exercise", list(C.CHECKS))
def test_hidden_variants_pass_the_reference_and_an_independent_implementation(exercise):
    assert set(HIDDEN_VARIANTS) == set(C.CHECKS)
    for case in HIDDEN_VARIANTS[exercise]:
        for fn in (REFERENCES[exercise], INDEPENDENT[exercise]):
            result = C.run_check(exercise, fn, verbose=False, **case)
            assert result.passed, (case, result.message)


def test_a_squeezed_batch_passes_the_self_check_but_not_the_hidden_batch_of_one():
    def squeezed(theta_st, theta_ts):  # (B, 1) -> (B,) by squeeze(): a 0-d tensor when B = 1
        return cycle_homogeneous(theta_st, theta_ts)[:, None].squeeze()

    assert C.check_cycle_error(squeezed, verbose=False).passed
    hidden = C.check_cycle_error(squeezed, verbose=False, seed=14, batch=1)
    assert not hidden.passed and "seed=14" in hidden.case and "expected shape (1,)" in hidden.hint


def test_a_missing_none_case_fails_only_the_hidden_case():
    def needs_valid(pred, gt, alpha=0.1, valid=None, size=None):
        return pck_numpy(pred, gt, alpha, valid.bool(), size)

    assert C.check_pck_per_pair(needs_valid, verbose=False).passed
    hidden = C.check_pck_per_pair(needs_valid, verbose=False, seed=26, with_valid=False)
    assert not hidden.passed and "AttributeError" in hidden.hint


def test_use_if_passing_picks_the_students_function_only_when_it_passed(capsys):
    def mine(theta_st, theta_ts):
        return cycle_error(theta_st, theta_ts)

    passed = C.check_cycle_error(mine, verbose=False)
    assert C.use_if_passing(passed, mine, cycle_error) is mine
    assert "using your cycle_error" in capsys.readouterr().out
    failed = C.check_cycle_error(cycle_squared, verbose=False)
    assert C.use_if_passing(failed, cycle_squared, cycle_error) is cycle_error
    out = capsys.readouterr().out
    assert "does not pass" in out and "macos_lite.losses.cycle_error" in out


def test_run_check_passes_case_parameters():
    result = C.run_check("cycle_error", cycle_error, verbose=False, seed=99, batch=1)
    assert result.passed and result.expected_shape == (1,)
