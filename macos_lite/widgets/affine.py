"""Demo 1: affine warping, with theta as readable parameters or as its six raw numbers.

Parameterisation (what the sliders mean): theta maps *target* points into the *source*,
``p_A = L p_B + t`` with ``L = R(rotation) @ [[1, shear], [0, 1]] @ diag(scale, scale * aspect)`` and
``t = (tx, ty)``, all in normalised coordinates. The image y axis points down, so a positive rotation
turns the *sampling positions* clockwise on screen and the *content* of the warped image
counter-clockwise: ``rotation=90`` gives theta ``(0, -1, 0, 1, 0, 0)`` and a warped image equal to
``torch.rot90(A, 1, dims=(-2, -1))`` (for a square image).

The six parameters and the six numbers describe the same maps, except reflections (det L < 0) and
values beyond the sliders' ranges; the demo then says that the sliders only approximate theta.

Taught in notebook 10 (interactive demos).
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import torch

from .. import geometry as G
from ..geometry import affine_theta  # the constructor lives in geometry; the widgets re-export it
from ..viz import grid_lines
from ._base import (
    Demo,
    as_image,
    as_points,
    as_theta,
    keep_frame,
    new_figure,
    plot_keypoints,
    plot_polylines,
    show_image,
)

# name: (min, max, step, identity value)
PARAMETERS = {
    "scale": (0.25, 2.0, 0.01, 1.0),
    "aspect": (0.25, 2.0, 0.01, 1.0),
    "rotation": (-180.0, 180.0, 1.0, 0.0),
    "shear": (-1.0, 1.0, 0.01, 0.0),
    "tx": (-1.0, 1.0, 0.01, 0.0),
    "ty": (-1.0, 1.0, 0.01, 0.0),
}
RAW_NAMES = tuple(f"theta{i}" for i in range(6))
RAW_LABELS = ("a11", "a12", "tx", "a21", "a22", "ty")  # row-major 2 x 3
DECIMALS = 6  # raw numbers are kept rounded: cos(90 deg) shows as 0, not 6e-17


def affine_params(theta) -> tuple[dict, bool]:
    """Inverse of :func:`affine_theta`: ``(parameters, exact)``.

    The first column of L gives scale and rotation; the second column, seen in the rotated frame,
    is ``(shear * scale * aspect, scale * aspect)``. ``exact`` is False for reflections and
    degenerate maps, whose parameters are then only the nearest reflection-free map.
    """
    a11, a12, tx, a21, a22, ty = as_theta(theta, 6)[0].tolist()
    sx = math.hypot(a11, a21)
    if sx < 1e-12:
        return {**{k: v[3] for k, v in PARAMETERS.items()}, "tx": tx, "ty": ty}, False
    angle = math.atan2(a21, a11)
    c, s = math.cos(angle), math.sin(angle)
    along, across = c * a12 + s * a22, -s * a12 + c * a22  # R^T @ (a12, a22)
    sy = abs(across)
    params = {"scale": sx, "aspect": sy / sx, "rotation": math.degrees(angle),
              "shear": along / sy if sy > 1e-12 else 0.0, "tx": tx, "ty": ty}
    return params, across > 1e-12


def affine_state(image, theta, keypoints=None, grid: int = 9) -> dict:
    """The data of the affine figure.

    image ``(C, H, W)``; theta 6 numbers (maps target -> source); keypoints ``(N, 2)`` pixels of the
    source. Returns ``theta (6,)``, ``image``, ``warped`` ``(C, H, W)`` = ``warp_image(A, theta)``,
    ``grid_target`` / ``grid_source`` polylines ``(2 * grid, M, 2)`` in pixels (a regular grid of the
    target frame and its image under T in the source), and, with keypoints, ``keypoints_source`` and
    ``keypoints_target`` (the source keypoints carried into the warped image by the *inverse* of T).
    """
    img = as_image(image)
    th = as_theta(theta, 6)
    size = tuple(img.shape[-2:])
    lines = grid_lines(grid)
    mapped = G.transform_points(lines.reshape(1, -1, 2), th, "affine").view_as(lines)
    state = {
        "theta": th[0],
        "image": img,
        "warped": G.warp_image(img[None].double(), th, "affine")[0].float(),
        "grid_target": G.normalized_to_pixel(lines, size),
        "grid_source": G.normalized_to_pixel(mapped, size),
    }
    kps = as_points(keypoints)
    if kps is not None:
        state["keypoints_source"] = kps
        if abs(float(th[0, 0] * th[0, 4] - th[0, 1] * th[0, 3])) > 1e-12:
            moved = G.transfer_keypoints(kps[None], th, "affine", size, size, "A_to_B")
            state["keypoints_target"] = moved[0]
        else:  # a singular map has no inverse: the keypoints have nowhere to go
            state["keypoints_target"] = torch.full_like(kps, float("nan"))
    return state


def rounded(theta: torch.Tensor) -> list[float]:
    """Theta as the demo keeps it: rounded to DECIMALS (``+ 0.0`` turns -0.0 into 0.0)."""
    return [round(float(v), DECIMALS) + 0.0 for v in theta]


def format_theta(theta: torch.Tensor) -> str:
    t = [f"{v:+.3f}" for v in theta.tolist()]
    return f"theta = [[{t[0]}, {t[1]}, {t[2]}], [{t[3]}, {t[4]}, {t[5]}]]"


def plot_source_panel(ax, image, grid_source, keypoints=None, title: str = "") -> None:
    """The source with the image of the target grid; the view widens to show samples outside A."""
    show_image(ax, image, title)
    plot_polylines(ax, grid_source, gid="grid-source")
    plot_keypoints(ax, keypoints, gid="keypoints-source")
    h, w = image.shape[-2:]
    xs, ys = grid_source[..., 0], grid_source[..., 1]
    ax.set_xlim(max(min(-0.5, float(xs.min()) - 1), -w), min(max(w - 0.5, float(xs.max()) + 1), 2 * w))
    ax.set_ylim(min(max(h - 0.5, float(ys.max()) + 1), 2 * h), max(min(-0.5, float(ys.min()) - 1), -h))
    ax.set_facecolor("0.85")  # grey outside A: those target pixels read zeros


def affine_layout(fig) -> list:
    return list(fig.subplots(1, 2))


def plot_affine(axes: list, state: dict) -> None:
    """Draw :func:`affine_state`: the source with T(grid), the warped image with the regular grid."""
    ax_src, ax_out = axes
    plot_source_panel(ax_src, state["image"], state["grid_source"], state.get("keypoints_source"),
                      "source A with T(grid): where each target pixel samples")
    show_image(ax_out, state["warped"], "warped A(T(p)): A in the target frame")
    plot_polylines(ax_out, state["grid_target"], gid="grid-target")
    plot_keypoints(ax_out, state.get("keypoints_target"), gid="keypoints-target")
    keep_frame(ax_out, state["warped"].shape[-2:])
    ax_out.figure.suptitle(format_theta(state["theta"]), fontsize=9, family="monospace")


def draw_affine(image, theta=None, keypoints=None, grid: int = 9):
    """Static figure of the affine warp of ``image`` by ``theta`` (default identity), see
    :func:`affine_state`; e.g. ``draw_affine(image, affine_theta(rotation=30), keypoints)``."""
    fig = new_figure(*AffineDemo.figsize)
    state = affine_state(image, affine_theta() if theta is None else theta, keypoints, grid)
    plot_affine(affine_layout(fig), state)
    return fig


class AffineDemo(Demo):
    """Sliders ``scale, aspect, rotation, shear, tx, ty`` (tab 1) and the raw ``theta0..theta5`` (tab 2).

    Moving a slider rewrites the raw numbers; editing a raw number moves the sliders to its
    decomposition (:func:`affine_params`). The raw numbers are what is drawn. ``state`` is
    :func:`affine_state` plus ``params`` (slider values) and ``consistent`` (sliders reproduce theta).
    """

    figsize = (8.4, 4.2)
    live = True  # sliders follow the drag with a preview of the warped image
    layout = staticmethod(affine_layout)
    plot = staticmethod(plot_affine)

    def __init__(self, image, keypoints=None, theta=None, grid: int = 9, **params):
        unknown = set(params) - set(PARAMETERS)
        if unknown:
            raise ValueError(f"unknown affine parameters {sorted(unknown)}; known: {list(PARAMETERS)}")
        if theta is not None and params:
            raise ValueError("start from theta or from parameters, not both")
        self.image, self.keypoints, self.grid = as_image(image), as_points(keypoints), grid
        if theta is None:
            start = {k: v[3] for k, v in PARAMETERS.items()} | params
            theta = affine_theta(**start)
        else:
            theta = as_theta(theta, 6)[0]
            start = affine_params(theta)[0]
        sliders = {
            name: widgets.FloatSlider(value=start[name], min=lo, max=hi, step=step, description=name,
                                      continuous_update=True, readout_format=".2f")
            for name, (lo, hi, step, _) in PARAMETERS.items()
        }
        raw = {name: widgets.FloatText(value=value, description=label, step=0.05,
                                       layout=widgets.Layout(width="170px"))
               for name, label, value in zip(RAW_NAMES, RAW_LABELS, rounded(theta))}
        self.status = widgets.HTML()
        tabs = widgets.Tab(children=[widgets.VBox(list(sliders.values())),
                                     widgets.VBox([widgets.HBox(list(raw.values())[:3]),
                                                   widgets.HBox(list(raw.values())[3:])])],
                           titles=("parameters", "theta (2 x 3)"))
        super().__init__({**sliders, **raw}, rows=[tabs, self.status])

    @property
    def theta(self) -> torch.Tensor:
        """The drawn theta ``(6,)`` float64: the raw numbers."""
        return torch.tensor([self.controls[n].value for n in RAW_NAMES], dtype=torch.float64)

    def on_change(self, name: str) -> None:
        if name in PARAMETERS:
            for n, v in zip(RAW_NAMES, rounded(affine_theta(**self.params()))):
                self.controls[n].value = v
        else:
            for k, v in affine_params(self.theta)[0].items():
                self.controls[k].value = v  # a slider clips values beyond its range

    def params(self) -> dict:
        """The slider values by name."""
        return {k: self.controls[k].value for k in PARAMETERS}

    def compute(self) -> dict:
        params = self.params()
        consistent = bool(torch.allclose(affine_theta(**params), self.theta, atol=1e-4))
        self.status.value = ("sliders and theta agree" if consistent else
                             "<b>theta is a reflection or beyond the sliders' ranges: the sliders show the "
                             "nearest map they can</b>")
        state = affine_state(self.image, self.theta, self.keypoints, self.grid)
        return state | {"params": params, "consistent": consistent}


def affine_widget(image, keypoints=None, theta=None, grid: int = 9, **params) -> AffineDemo:
    """Interactive affine warping of ``image`` (``(C, H, W)`` in [0, 1]) with optional source keypoints.

    Start from ``theta`` (6 numbers) or from parameters, e.g. ``affine_widget(img, kps, rotation=30)``.
    Drive it from Python: ``demo.controls["rotation"].value = 90`` or ``demo.controls["theta1"].value = 0.5``.
    """
    return AffineDemo(image, keypoints, theta, grid, **params)
