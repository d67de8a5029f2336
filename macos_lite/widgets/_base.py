"""What every demo shares: input conversion, plotting helpers and the :class:`Demo` container.

Taught in notebook 10 (interactive demos).
"""

from __future__ import annotations

import base64
import io
from contextlib import contextmanager

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython import get_ipython
from IPython.display import Image, display

from .. import viz

GRID_STYLE = {"color": "yellow", "lw": 0.8, "alpha": 0.85}


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def as_image(image) -> torch.Tensor:
    """An image as a float tensor ``(C, H, W)`` in [0, 1] on the CPU (C = 1 or 3).

    Accepts tensors ``(C, H, W)``, ``(1, C, H, W)`` or ``(H, W)``, and numpy arrays ``(H, W, C)`` or
    ``(H, W)`` (uint8 arrays are divided by 255).
    """
    if isinstance(image, np.ndarray):
        scale = 255.0 if image.dtype == np.uint8 else 1.0
        x = torch.from_numpy(np.ascontiguousarray(image)).float() / scale
        x = x.permute(2, 0, 1) if x.dim() == 3 else x
    else:
        x = torch.as_tensor(image).detach().float().cpu()
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected an image (C, H, W) with C = 1 or 3, or (H, W), got {tuple(x.shape)}")
    return x


def as_points(points) -> torch.Tensor | None:
    """Pixel keypoints ``(N, 2)`` as float64 (NaN rows are drawn nowhere), or None."""
    if points is None:
        return None
    p = points if torch.is_tensor(points) else torch.as_tensor(np.asarray(points, dtype=np.float64))
    return p.detach().double().cpu().reshape(-1, 2)


def as_theta(theta, size: int) -> torch.Tensor:
    """Transform parameters as a float64 row ``(1, size)``."""
    t = torch.as_tensor(theta).detach().double().cpu().reshape(1, -1)
    if t.shape[1] != size:
        raise ValueError(f"expected {size} transform parameters, got {t.shape[1]}")
    return t


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------


def new_figure(width: float, height: float):
    """A figure that pyplot does not keep: it shows when displayed (or returned by a cell), never twice,
    and nothing accumulates in pyplot's list of open figures."""
    fig = plt.figure(figsize=(width, height), layout="constrained")
    plt.close(fig)
    return fig


def clear_panels(axes) -> None:
    """Empty the panels for a redraw but keep the axes: creating axes is most of a redraw's cost."""
    for ax in np.ravel(axes):
        for artist in [*ax.images, *ax.lines, *ax.collections, *ax.patches, *ax.texts]:
            artist.remove()
        ax.relim()  # forget the removed artists' data limits
        ax.set_autoscale_on(True)


def show_image(ax, image: torch.Tensor, title: str | None = None, **kw):
    """:func:`macos_lite.viz.show_image` as the demos draw: nearest-pixel, the frame kept, grey in [0, 1]."""
    gray = {"vmin": 0.0, "vmax": 1.0} if image.shape[0] == 1 else {}
    return viz.show_image(ax, image, title, frame=True, **{"interpolation": "nearest", **gray, **kw})


def keep_frame(ax, size) -> None:
    """Fix the view to the image ``(H, W)`` (points outside are clipped, not zoomed out to)."""
    h, w = size
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def plot_keypoints(ax, points: torch.Tensor | None, gid: str) -> None:
    """One scatter of ``(N, 2)`` pixel points, coloured by index; its offsets are the points in order."""
    if points is None or len(points) == 0:
        return
    viz.show_keypoints(ax, points, size=36, gid=gid, zorder=3)


def plot_polylines(ax, lines_px: torch.Tensor, gid: str) -> None:
    """Polylines ``(L, M, 2)`` in pixels, one ``Line2D`` each (all tagged ``gid``)."""
    for line in lines_px:
        ax.plot(line[:, 0].numpy(), line[:, 1].numpy(), gid=gid, **GRID_STYLE)


def artists(fig, gid: str) -> list:
    """Every artist of ``fig`` tagged ``gid`` (how the tests read back what was drawn)."""
    return [a for ax in fig.axes for a in ax.get_children() if a.get_gid() == gid]


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def image_png(image: torch.Tensor) -> bytes:
    """A small PNG of an image ``(C, H, W)`` in [0, 1] (rounded to 8 bits): the cheap live preview."""
    from PIL import Image as PILImage

    array = (image.clamp(0, 1) * 255).round().byte()
    array = array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    PILImage.fromarray(array).save(buf, format="png")
    return buf.getvalue()


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where outputs can be displayed), False in plain Python."""
    return getattr(get_ipython(), "kernel", None) is not None


# ----------------------------------------------------------------------------------------------
# The container
# ----------------------------------------------------------------------------------------------


class Demo(widgets.VBox):
    """An interactive demo: named controls above an ``Output`` that shows the current figure.

    Subclasses implement :meth:`compute` (control values -> ``state``, the data to draw), :meth:`layout`
    (create the figure's panels, once) and :meth:`plot` (draw ``state`` into the panels). Every change
    of a control's value recomputes the state; in a kernel the figure is redrawn and shown at once,
    elsewhere when ``figure`` is read.

    Attributes
    ----------
    controls : dict name -> ipywidget; set ``demo.controls[name].value`` from Python to drive the demo.
    state : dict, the data the figure shows (arrays and numbers; see each demo's docstring).
    figure : the one matplotlib Figure the demo owns, redrawn in place (pyplot does not keep it).
    output : the ``ipywidgets.Output`` the figure is shown in (inside a Jupyter kernel only).
    preview : with ``live = True`` (affine, TPS), an ``ipywidgets.Image`` holding a small PNG of
        :meth:`live_image`, rewritten at every step of a drag; the figure is redrawn ``settle_s`` seconds
        after the last change, i.e. once the slider is released.

    In a notebook the demo displays itself as a widget; where widgets cannot render (a notebook
    converted to HTML, a headless run) front ends fall back to a static picture of the figure.
    """

    figsize = (8.0, 3.6)
    live = False  # True: sliders update while dragged; a cheap preview follows, the figure follows at rest
    settle_s = 0.3  # the full redraw waits for this long without a change (the slider's release)

    def __init__(self, controls: dict, rows: list | None = None):
        super().__init__()
        self.controls = dict(controls)
        self.output = widgets.Output()
        self._figure = new_figure(*self.figsize)
        self._axes = self.layout(self._figure)
        self._drawn = False
        self.state: dict = {}
        self._quiet = False
        rows = rows if rows is not None else [widgets.HBox(list(self.controls.values()))]
        self.preview = widgets.Image(format="png", layout=widgets.Layout(width="160px")) if self.live else None
        self._pending = None
        self.children = (*rows, widgets.HBox([self.preview, self.output]) if self.live else self.output)
        for name, control in self.controls.items():
            if "value" in control.trait_names():
                control.observe(lambda _, name=name: self._on_change(name), names="value")
        self.update()

    # -- subclass hooks --------------------------------------------------------------------------
    def compute(self) -> dict:
        raise NotImplementedError

    def layout(self, fig) -> list:
        raise NotImplementedError

    def plot(self, axes: list, state: dict) -> None:
        raise NotImplementedError

    def live_image(self, state: dict) -> torch.Tensor:
        """The image ``(C, H, W)`` the live preview shows while a slider moves (default: ``state["warped"]``)."""
        return state["warped"]

    def on_change(self, name: str) -> None:
        """Called after control ``name`` changed, before the state is recomputed (to sync linked controls)."""

    # -- machinery -------------------------------------------------------------------------------
    def values(self) -> dict:
        """Current control values by name."""
        return {name: c.value for name, c in self.controls.items() if "value" in c.trait_names()}

    @contextmanager
    def quietly(self):
        """Set controls without triggering a recomputation (used to sync linked controls)."""
        previous, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = previous

    def _on_change(self, name: str) -> None:
        if self._quiet:
            return
        with self.quietly():
            self.on_change(name)
        self.update()

    @property
    def figure(self):
        """The one Figure the demo owns, showing the current state (redrawn in place when first looked at
        after a change, so that scripted changes cost no drawing)."""
        if not self._drawn:
            clear_panels(self._axes)
            self.plot(self._axes, self.state)
            self._drawn = True
        return self._figure

    def update(self) -> None:
        """Recompute the state from the controls; in a kernel, redraw and show the figure in the Output."""
        self.state = self.compute()
        self._drawn = False
        if self.live:
            self.preview.value = image_png(self.live_image(self.state))  # cheap: one small image
        if in_kernel():
            if self.live:  # the full figure once the slider rests (its release), not at every step of a drag
                import asyncio

                if self._pending is not None:
                    self._pending.cancel()
                try:
                    self._pending = asyncio.get_running_loop().call_later(self.settle_s, self.redraw)
                    return
                except RuntimeError:  # no running event loop (plain Python): draw now
                    pass
            self.redraw()

    def redraw(self) -> None:
        """Draw the figure of the current state into the Output (in a kernel)."""
        self._pending = None
        self.output.clear_output(wait=True)
        with self.output:
            display(Image(png_bytes(self.figure)))

    def close(self) -> None:
        """Close the demo and every widget inside it (ipywidgets keeps widgets alive until closed)."""
        def descendants(w):
            for child in getattr(w, "children", ()):
                yield from descendants(child)
                yield child

        for w in list(descendants(self)):
            w.close()
        super().close()

    def show(self, static: bool = False):
        """Display the demo in a notebook: the live widget, or (``static=True``) a picture of its figure.

        Outside a Jupyter kernel there is nothing to display on: the call returns the Figure
        (``demo.show().savefig(...)``).
        """
        if not in_kernel():
            return self.figure
        display(Image(png_bytes(self.figure)) if static else self)
        return None

    def _repr_mimebundle_(self, **kwargs):
        # the widget view plus a PNG that front ends without a widget manager show instead
        data = super()._repr_mimebundle_(**kwargs)
        data["image/png"] = base64.b64encode(png_bytes(self.figure)).decode("ascii")
        return data
