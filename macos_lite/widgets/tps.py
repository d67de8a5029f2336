"""Demo 2: thin-plate-spline warping by moving the control points of a 3 x 3 lattice.

A TPS theta holds the *source* positions ``Q`` of the control lattice ``P`` of the target frame (X-major
order): the map sends ``P_k`` to ``Q_k`` and interpolates smoothly in between (exactly when the
regulariser ``lam = 0``; for ``lam > 0`` it trades exactness for a smoother, more affine map).
The demo moves ``Q_k = P_k + (dx, dy)`` one point at a time.

Taught in notebook 10 (interactive demos).
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import geometry as G
from ..viz import grid_lines
from ._base import (
    Demo,
    as_image,
    as_points,
    keep_frame,
    new_figure,
    plot_keypoints,
    plot_polylines,
    show_image,
)
from .affine import plot_source_panel

SURFACES = {"magnitude": "|T(p) - p|", "x": "x displacement", "y": "y displacement"}


def tps_theta(offsets=None, grid_size: int = 3) -> torch.Tensor:
    """TPS theta ``(2 n^2,)`` float64 of the lattice moved by ``offsets`` ``(n^2, 2)``: ``Q = P + offsets``
    (normalised, X-major order; None: the identity)."""
    q = G.tps_control_points(grid_size, torch.float64)
    if offsets is not None:
        q = q + torch.as_tensor(offsets, dtype=torch.float64).reshape(-1, 2)
    return q.t().reshape(-1)  # (Q_X..., Q_Y...)


def transfer_finite(points: torch.Tensor, theta: torch.Tensor, kind: str, size, lam: float) -> torch.Tensor:
    """Source pixel points into the target frame with the inverse map; NaN rows stay NaN."""
    out = torch.full_like(points, float("nan"))
    ok = torch.isfinite(points).all(-1)
    if ok.any():
        out[ok] = G.transfer_keypoints(points[ok][None], theta, kind, size, size, "A_to_B", lam)[0]
    return out


def tps_state(image, theta=None, lam: float = 0.0, keypoints=None, grid: int = 9,
              surface: str = "magnitude") -> dict:
    """The data of the TPS figure.

    image ``(C, H, W)``; theta ``2 n^2`` numbers (default: the identity lattice); lam the regulariser;
    keypoints ``(N, 2)`` source pixels. Returns ``theta``, ``lam``, ``image``, ``warped`` ``(C, H, W)``,
    ``grid_target`` / ``grid_source`` polylines in pixels (as the affine demo), ``grid_nodes`` ``(grid,
    grid, 2)`` the source pixels of the grid's nodes (node ``[i, j]`` = T of ``(x_j, y_i)``),
    ``control_target`` / ``control_source`` ``(n^2, 2)`` pixels of P and Q, ``displacement`` ``(H, W, 2)``
    pixels ``T(p) - p`` on the target frame, ``surface`` and ``surface_map`` ``(H, W)`` the shown
    component, and with keypoints ``keypoints_source`` / ``keypoints_target``.
    """
    if surface not in SURFACES:
        raise ValueError(f"surface must be one of {list(SURFACES)}, got {surface!r}")
    img = as_image(image)
    th = torch.as_tensor(tps_theta() if theta is None else theta).detach().double().cpu().reshape(1, -1)
    n = G.tps_grid_size(th.shape[1])  # also checks that theta holds 2 n^2 numbers
    size = tuple(img.shape[-2:])

    def px(points):
        return G.normalized_to_pixel(points, size)

    lines = grid_lines(grid)
    axis = torch.linspace(-1.0, 1.0, grid, dtype=torch.float64)
    nodes = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1)  # [i, j] = (x_j, y_i)
    points = torch.cat((lines.reshape(-1, 2), nodes.reshape(-1, 2)))
    mapped = G.transform_points(points[None], th, "tps", lam)[0]
    on_lines = lines.shape[0] * lines.shape[1]
    sampling = G.sampling_grid(th, "tps", size, lam)[0]
    displacement = px(sampling) - px(G.normalized_grid(size, torch.float64))
    component = {"magnitude": displacement.norm(dim=-1), "x": displacement[..., 0], "y": displacement[..., 1]}
    state = {
        "theta": th[0],
        "lam": float(lam),
        "image": img,
        "warped": G.warp_image(img[None].double(), th, "tps", lam=lam)[0].float(),
        "grid_target": px(lines),
        "grid_source": px(mapped[:on_lines].view_as(lines)),
        "grid_nodes": px(mapped[on_lines:].view(grid, grid, 2)),
        "control_target": px(G.tps_control_points(n, torch.float64)),
        "control_source": px(th[0].view(2, n * n).t()),
        "displacement": displacement,
        "surface": surface,
        "surface_map": component[surface],
    }
    kps = as_points(keypoints)
    if kps is not None:
        state["keypoints_source"] = kps
        state["keypoints_target"] = transfer_finite(kps, th, "tps", size, lam)
    return state


def tps_layout(fig) -> list:
    """Three panels and a colorbar."""
    return list(fig.subplots(1, 4, width_ratios=(1, 1, 1, 0.05)))


def plot_tps(axes: list, state: dict) -> None:
    """Draw :func:`tps_state`: source with T(grid) and P -> Q arrows, warped image, displacement surface.

    A ``selected`` entry in ``state`` (a control point index) is ringed in red.
    """
    ax_src, ax_out, ax_surf, ax_bar = axes
    selected = state.get("selected")
    p, q = state["control_target"], state["control_source"]
    plot_source_panel(ax_src, state["image"], state["grid_source"], state.get("keypoints_source"),
                      "source A: T(grid), P -> Q")
    for k in range(len(p)):
        ax_src.annotate("", xy=q[k].tolist(), xytext=p[k].tolist(),
                        arrowprops={"arrowstyle": "->", "color": "cyan", "lw": 1.2})
    ax_src.scatter(q[:, 0], q[:, 1], s=30, c="cyan", edgecolors="black", gid="control-source", zorder=4)
    if selected is not None:
        ax_src.scatter(q[selected, 0], q[selected, 1], s=160, facecolors="none", edgecolors="red", lw=1.5,
                       zorder=4)
    show_image(ax_out, state["warped"], f"warped A(T(p)), lam = {state['lam']:g}")
    plot_polylines(ax_out, state["grid_target"], gid="grid-target")
    ax_out.scatter(p[:, 0], p[:, 1], s=30, c="cyan", edgecolors="black", gid="control-target", zorder=4)
    plot_keypoints(ax_out, state.get("keypoints_target"), gid="keypoints-target")
    keep_frame(ax_out, state["warped"].shape[-2:])
    surf = state["surface_map"].numpy()
    if state["surface"] == "magnitude":
        shown = ax_surf.imshow(surf, cmap="magma", vmin=0.0)
    else:  # signed component: a diverging map centred on 0
        bound = max(float(abs(surf).max()), 1e-6)
        shown = ax_surf.imshow(surf, cmap="coolwarm", vmin=-bound, vmax=bound)
    ax_surf.scatter(p[:, 0], p[:, 1], s=14, c="white", edgecolors="black", zorder=4)
    ax_surf.set_xticks([])
    ax_surf.set_yticks([])
    ax_surf.set_title(f"{SURFACES[state['surface']]} (pixels) on the target", fontsize=9)
    ax_surf.figure.colorbar(shown, cax=ax_bar)


def draw_tps(image, theta=None, lam: float = 0.0, keypoints=None, grid: int = 9, surface: str = "magnitude"):
    """Static figure of the TPS warp of ``image`` (see :func:`tps_state`)."""
    fig = new_figure(*TPSDemo.figsize)
    plot_tps(tps_layout(fig), tps_state(image, theta, lam, keypoints, grid, surface))
    return fig


class TPSDemo(Demo):
    """Controls: ``point`` (which control point, 0..n^2-1 in X-major order), ``dx``/``dy`` (its offset
    ``Q - P``, normalised), ``lam``, ``surface``; and a reset button (:meth:`reset`).

    ``offsets`` ``(n^2, 2)`` holds every point's offset; choosing another point loads its offset into
    ``dx``/``dy`` (the demo starts on the most-moved point of a given ``theta``; whose range, +-0.75, clips larger offsets of a given ``theta``). ``state`` is
    :func:`tps_state` plus ``offsets`` and ``selected`` (the point).
    """

    figsize = (11.0, 3.9)
    live = True  # dx, dy follow the drag with a preview of the warped image
    layout = staticmethod(tps_layout)
    plot = staticmethod(plot_tps)

    def __init__(self, image, keypoints=None, theta=None, lam: float = 0.0, grid: int = 9):
        self.image, self.keypoints, self.grid = as_image(image), as_points(keypoints), grid
        theta = tps_theta() if theta is None else torch.as_tensor(theta).detach().double().cpu().reshape(-1)
        self.grid_size = G.tps_grid_size(theta.numel())
        lattice = G.tps_control_points(self.grid_size, torch.float64)
        self.offsets = theta.view(2, -1).t() - lattice
        moved = self.offsets.norm(dim=1)
        first = int(moved.argmax()) if bool((moved > 1e-9).any()) else 0  # start on the point that was moved
        names = [f"P{k} (x={x:+.1f}, y={y:+.1f})" for k, (x, y) in enumerate(lattice.tolist())]
        slider = {"min": -0.75, "max": 0.75, "step": 0.01, "continuous_update": True,
                  "readout_format": ".2f"}
        controls = {
            "point": widgets.Dropdown(options=[(name, k) for k, name in enumerate(names)], value=first,
                                      description="point"),
            "dx": widgets.FloatSlider(value=float(self.offsets[first, 0]), description="dx", **slider),
            "dy": widgets.FloatSlider(value=float(self.offsets[first, 1]), description="dy", **slider),
            "lam": widgets.FloatSlider(value=lam, min=0.0, max=5.0, step=0.05, description="lambda",
                                       continuous_update=False),
            "surface": widgets.ToggleButtons(options=list(SURFACES), value="magnitude",
                                             description="surface"),
        }
        reset = widgets.Button(description="reset")
        reset.on_click(lambda _: self.reset())
        rows = [widgets.HBox([controls["point"], controls["dx"], controls["dy"]]),
                widgets.HBox([controls["lam"], controls["surface"], reset])]
        super().__init__(controls, rows)

    @property
    def theta(self) -> torch.Tensor:
        """The drawn TPS theta ``(2 n^2,)`` float64."""
        return tps_theta(self.offsets, self.grid_size)

    def on_change(self, name: str) -> None:
        k = self.controls["point"].value
        if name == "point":
            self.controls["dx"].value, self.controls["dy"].value = self.offsets[k].tolist()
        elif name in ("dx", "dy"):
            self.offsets[k] = torch.tensor([self.controls["dx"].value, self.controls["dy"].value])

    def reset(self) -> None:
        """Put every control point back on the lattice (the identity map)."""
        self.offsets.zero_()
        with self.quietly():
            self.controls["dx"].value = self.controls["dy"].value = 0.0
        self.update()

    def compute(self) -> dict:
        v = self.values()
        state = tps_state(self.image, self.theta, v["lam"], self.keypoints, self.grid, v["surface"])
        return state | {"offsets": self.offsets.clone(), "selected": v["point"]}


def tps_widget(image, keypoints=None, theta=None, lam: float = 0.0, grid: int = 9) -> TPSDemo:
    """Interactive TPS warping of ``image`` (``(C, H, W)`` in [0, 1]) with optional source keypoints.

    Drive it from Python: ``demo.controls["point"].value = 4; demo.controls["dx"].value = 0.2``.
    """
    return TPSDemo(image, keypoints, theta, lam, grid)
