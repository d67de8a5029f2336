"""Demo 3: the correlation S_AB of one cell of A with every cell of B, as a heat map over B.

Two measures: ``"cosine"`` -- the plain dot products ``<f_A(r, c), f_B(i, j)>`` of L2-normalised
features (in [-1, 1]) -- and ``"S_AB"`` -- the layer's output, ReLU then L2-normalised over *all of A's
cells* at every cell of B, i.e. what the transformation predictor G sees. S_AB stores A's cell
``(r, c)`` in channel ``r + h_A * c`` (column-major, :func:`macos_lite.correlation.cell_to_channel`).
Features are computed once per pair; choosing a cell only indexes the stored maps.

Taught in notebook 10 (interactive demos).
"""

from __future__ import annotations

import functools

import ipywidgets as widgets
import torch
from matplotlib import patches

from ..backbones import build_encoder, l2_normalize
from ..correlation import cell_to_channel, correlation, raw_correlation
from ._base import Demo, as_image, new_figure, show_image

MEASURES = ("cosine", "S_AB")


@functools.lru_cache(maxsize=1)
def default_encoder():
    """The offline ``lite`` ImageNet encoder, frozen and in eval mode (built once)."""
    return build_encoder("lite", pretrained=True, mode="frozen").eval()


@torch.no_grad()
def encode_pair(image_A, image_B, encoder=None) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised stride-16 features ``(C, h_A, w_A)`` and ``(C, h_B, w_B)`` of two RGB images in [0, 1].

    encoder: an encoder E (``build_encoder``), default :func:`default_encoder`; run in eval mode
    (its mode is restored afterwards) on the device of its weights.
    """
    encoder = default_encoder() if encoder is None else encoder
    a, b = as_image(image_A), as_image(image_B)
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        if a.shape == b.shape:  # one batched call
            f = l2_normalize(encoder(torch.stack((a, b)).to(device))[3]).cpu()
            return f[0], f[1]
        f_a, f_b = (l2_normalize(encoder(x[None].to(device))[3]).cpu()[0] for x in (a, b))
        return f_a, f_b
    finally:
        encoder.train(was_training)


def correlation_maps(f_A: torch.Tensor, f_B: torch.Tensor) -> dict:
    """Both measures for every cell of A: ``{"cosine", "S_AB"}`` each ``(h_A * w_A, h_B, w_B)``, plus
    ``grid_A`` = ``(h_A, w_A)``. Inputs: L2-normalised features ``(C, h, w)``."""
    a, b = f_A[None], f_B[None]
    return {"cosine": raw_correlation(a, b)[0], "S_AB": correlation(a, b)[0], "grid_A": tuple(f_A.shape[-2:])}


def correlation_state(image_A, image_B, row: int, col: int, maps: dict, measure: str = "cosine") -> dict:
    """The data of the figure for A's cell ``(row, col)``: ``heatmap`` ``(h_B, w_B)``, its ``channel`` in
    S_AB, ``best`` = (row, col) of B's highest value, ``grid_A`` / ``grid_B``, the images, the measure."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    h_a, w_a = maps["grid_A"]
    if not (0 <= row < h_a and 0 <= col < w_a):
        raise ValueError(f"cell ({row}, {col}) is outside A's {h_a} x {w_a} feature grid")
    channel = cell_to_channel(row, col, h_a)
    heat = maps[measure][channel]
    return {"image_A": as_image(image_A), "image_B": as_image(image_B), "row": row, "col": col,
            "channel": channel, "measure": measure, "heatmap": heat, "grid_A": (h_a, w_a),
            "grid_B": tuple(heat.shape), "best": divmod(int(heat.argmax()), heat.shape[1])}


def _cell_box(ax, row: int, col: int, grid, size, colour: str, gid: str) -> None:
    """Outline the pixels a feature cell covers (cell i spans pixels [i s, (i + 1) s), s = size / grid)."""
    sy, sx = size[0] / grid[0], size[1] / grid[1]
    ax.add_patch(patches.Rectangle((col * sx - 0.5, row * sy - 0.5), sx, sy, fill=False, edgecolor=colour,
                                   lw=2, gid=gid))


def correlation_layout(fig) -> list:
    """Three panels and a colorbar."""
    return list(fig.subplots(1, 4, width_ratios=(1, 1, 1, 0.05)))


def plot_correlation(axes: list, state: dict) -> None:
    """Draw :func:`correlation_state`: A with the cell, B under the heat map, the map on B's grid."""
    ax_a, ax_b, ax_map, ax_bar = axes
    a, b, heat = state["image_A"], state["image_B"], state["heatmap"].numpy()
    signed = state["measure"] == "cosine"
    style = {"cmap": "coolwarm", "vmin": -1.0, "vmax": 1.0} if signed else {"cmap": "viridis", "vmin": 0.0}
    show_image(ax_a, a, f"A, cell ({state['row']}, {state['col']}) = channel {state['channel']}")
    _cell_box(ax_a, state["row"], state["col"], state["grid_A"], a.shape[-2:], "red", "cell-A")
    h, w = b.shape[-2:]
    show_image(ax_b, b, "B with the map (box: best cell)")
    ax_b.imshow(heat, extent=(-0.5, w - 0.5, h - 0.5, -0.5), alpha=0.55, interpolation="nearest", **style)
    _cell_box(ax_b, *state["best"], state["grid_B"], (h, w), "red", "best-B")
    shown = ax_map.imshow(heat, interpolation="nearest", gid="heatmap", **style)
    ax_map.set_title(f"{state['measure']} on B's {heat.shape[0]} x {heat.shape[1]} grid", fontsize=9)
    ax_map.set_xticks(range(heat.shape[1]))
    ax_map.set_yticks(range(heat.shape[0]))
    ax_map.tick_params(labelsize=6)
    ax_map.figure.colorbar(shown, cax=ax_bar)


def draw_correlation(image_A, image_B, row: int, col: int, encoder=None, features=None,
                     measure: str = "cosine"):
    """Static figure of the correlation of A's cell ``(row, col)`` with B.

    features: ``(f_A, f_B)`` from :func:`encode_pair` to skip the encoder; otherwise ``encoder`` (default
    the frozen ``lite`` ImageNet encoder) computes them.
    """
    f_a, f_b = encode_pair(image_A, image_B, encoder) if features is None else features
    fig = new_figure(*CorrelationDemo.figsize)
    state = correlation_state(image_A, image_B, row, col, correlation_maps(f_a, f_b), measure)
    plot_correlation(correlation_layout(fig), state)
    return fig


class CorrelationDemo(Demo):
    """Controls ``row``, ``col`` (A's cell) and ``measure``; ``state`` is :func:`correlation_state`.

    ``features`` = ``(f_A, f_B)`` and ``maps`` (:func:`correlation_maps`) are computed once, here.
    """

    figsize = (11.0, 3.8)
    layout = staticmethod(correlation_layout)
    plot = staticmethod(plot_correlation)

    def __init__(self, image_A, image_B, encoder=None, features=None, row: int | None = None,
                 col: int | None = None, measure: str = "cosine"):
        self.image_A, self.image_B = as_image(image_A), as_image(image_B)
        self.features = encode_pair(self.image_A, self.image_B, encoder) if features is None else features
        self.maps = correlation_maps(*self.features)
        h, w = self.maps["grid_A"]
        controls = {  # the centre cell by default
            "row": widgets.IntSlider(value=h // 2 if row is None else row, min=0, max=h - 1,
                                     description="row", continuous_update=False),
            "col": widgets.IntSlider(value=w // 2 if col is None else col, min=0, max=w - 1,
                                     description="col", continuous_update=False),
            "measure": widgets.ToggleButtons(options=MEASURES, value=measure, description="measure"),
        }
        super().__init__(controls)

    def compute(self) -> dict:
        v = self.values()
        return correlation_state(self.image_A, self.image_B, v["row"], v["col"], self.maps, v["measure"])


def correlation_widget(image_A, image_B, encoder=None, features=None, **start) -> CorrelationDemo:
    """Interactive correlation explorer for two RGB images ``(3, H, W)`` in [0, 1].

    encoder: default the frozen ``lite`` ImageNet encoder; or pass ``features`` = ``(f_A, f_B)``
    (:func:`encode_pair`). ``start`` may set ``row``, ``col`` and ``measure``.
    Drive it from Python: ``demo.controls["row"].value = 2``.
    """
    return CorrelationDemo(image_A, image_B, encoder, features, **start)
