"""Demo 6: the matching score s(theta) of eqs 1-3 as the learner drags an affine theta.

For a correlation ``S_st`` ``(1, h*w, h, w)`` of a pair (source s = A, target t = B) and an affine theta
(target -> source, the parameters of :mod:`macos_lite.widgets.affine`), the demo shows the per-cell score
``s(q) = sum_p m(p, q) S(p, q)`` (eq 2, soft mask of eq 1 with tolerance ``phi``) on B's grid, its mean
``s(theta)`` -- the weighted mean of :func:`macos_lite.losses.matching_score`, whose negative is eq 3 -- and
the source warped into B's frame by theta, next to B. The sliders update while they are dragged
(``continuous_update=True``): the figure is three small images, cheap to redraw.

Taught in notebook 04 (the matching loss).
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import geometry as G
from .. import losses
from ._base import Demo, as_image, new_figure, show_image
from .affine import PARAMETERS, affine_theta, format_theta


def score_state(corr, theta, image_size, weights=None, phi: float = 1.0, image_A=None, image_B=None) -> dict:
    """The data of the score figure.

    corr ``(1, h*w, h, w)`` (S_AB, channels column-major over A's cells); theta 6 numbers (B -> A);
    image_size ``(H, W)`` pixels the features were computed at; weights ``(1, h, w)`` over B's cells or None.
    Returns ``theta (6,)``, ``score`` (float, eq 2 averaged with the weights), ``score_map`` ``(h, w)`` (eq 2
    per target cell) and, with images, ``warped`` = A in B's frame and ``image_B``.
    """
    corr = torch.as_tensor(corr).detach().double().cpu()
    if corr.dim() != 4 or corr.shape[0] != 1 or corr.shape[1] != corr.shape[2] * corr.shape[3]:
        raise ValueError(f"corr must be one correlation (1, h*w, h, w), got {tuple(corr.shape)}")
    th = torch.as_tensor(theta).detach().double().cpu().reshape(1, 6)
    _, _, h, w = corr.shape
    m = losses.correspondence_mask(th, "affine", (h, w), image_size, phi)
    s_q = (m * corr.reshape(1, h * w, h * w)).sum(1).view(h, w)
    wts = None if weights is None else torch.as_tensor(weights).detach().double().cpu().reshape(1, h, w)
    score = losses.matching_score(corr, th, "affine", wts, image_size=image_size, phi=phi)
    state = {"theta": th[0], "score": float(score), "score_map": s_q}
    if image_A is not None:
        a = as_image(image_A)
        state["warped"] = G.warp_image(a[None].double(), th, "affine")[0].float()
    if image_B is not None:
        state["image_B"] = as_image(image_B)
    return state


class ScoreDemo(Demo):
    """Sliders ``scale, aspect, rotation, shear, tx, ty`` (as :class:`AffineDemo`) and ``phi``.

    ``state`` is :func:`score_state` plus ``params``; ``history`` lists ``(theta, score)`` of every
    setting seen, so the learner can read off where the score peaked.
    """

    figsize = (9.0, 3.2)

    def __init__(self, corr, image_size, image_A=None, image_B=None, weights=None, theta=None, **params):
        self.corr, self.image_size, self.weights = corr, tuple(image_size), weights
        self.image_A, self.image_B = image_A, image_B
        self.history: list = []
        start = {k: v[3] for k, v in PARAMETERS.items()} | params
        if theta is not None:
            from .affine import affine_params

            start = affine_params(theta)[0]
        controls = {
            name: widgets.FloatSlider(value=start[name], min=lo, max=hi, step=step, description=name,
                                      continuous_update=True, readout_format=".2f")
            for name, (lo, hi, step, _) in PARAMETERS.items()
        }
        controls["phi"] = widgets.FloatSlider(value=1.0, min=0.25, max=3.0, step=0.05, description="phi (cells)",
                                              continuous_update=True)
        names = list(controls)
        rows = [widgets.HBox([widgets.VBox([controls[n] for n in names[:4]]),
                              widgets.VBox([controls[n] for n in names[4:]])])]
        super().__init__(controls, rows)

    def layout(self, fig) -> list:
        return list(fig.subplots(1, 3))

    def params(self) -> dict:
        return {k: self.controls[k].value for k in PARAMETERS}

    @property
    def theta(self) -> torch.Tensor:
        return affine_theta(**self.params())

    def compute(self) -> dict:
        state = score_state(self.corr, self.theta, self.image_size, self.weights, self.controls["phi"].value,
                            self.image_A, self.image_B)
        self.history.append((state["theta"], state["score"]))
        return state | {"params": self.params()}

    def plot(self, axes: list, state: dict) -> None:
        ax_w, ax_b, ax_s = axes
        if "warped" in state:
            show_image(ax_w, state["warped"], "A warped into B's frame by theta")
        if "image_B" in state:
            show_image(ax_b, state["image_B"], "B")
        for ax in (ax_w, ax_b):
            ax.set_xticks([])
            ax.set_yticks([])
        ax_s.imshow(state["score_map"].numpy(), vmin=0.0, vmax=1.0, cmap="magma", gid="score-map")
        ax_s.set_xticks([])
        ax_s.set_yticks([])
        ax_s.set_title(f"s(q) on B's grid; mean s(theta) = {state['score']:.3f}", fontsize=9)
        ax_s.figure.suptitle(format_theta(state["theta"]), fontsize=9, family="monospace")


def score_widget(corr, image_size, image_A=None, image_B=None, weights=None, theta=None, **params) -> ScoreDemo:
    """Interactive matching score of the correlation ``corr`` ``(1, h*w, h, w)`` as theta is dragged.

    ``score_widget(corr_AB, (H, W), image_A, image_B, rotation=10)``; drive it from Python with
    ``demo.controls["tx"].value = 0.1`` and read ``demo.state["score"]``.
    """
    return ScoreDemo(corr, image_size, image_A, image_B, weights, theta, **params)


def draw_score(corr, theta, image_size, image_A=None, image_B=None, weights=None, phi: float = 1.0):
    """Static figure of :func:`score_state`."""
    fig = new_figure(*ScoreDemo.figsize)
    axes = list(fig.subplots(1, 3))
    ScoreDemo.plot(None, axes, score_state(corr, theta, image_size, weights, phi, image_A, image_B))
    return fig
