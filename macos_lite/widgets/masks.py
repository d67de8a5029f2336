"""Demo 4: masks -- thresholding, the object/background images of eq 6, and a mask warped as in eq 10.

* Threshold: the benchmarks binarise a probability map as ``prob > t``.
* Eq 6: ``I^o = M * I`` and ``I^b = (1 - M) * I`` (:func:`macos_lite.losses.contrastive.object_background`),
  so ``I^o + I^b = I`` for any M. Training uses the soft M (probabilities); the demo can also use the
  binary mask.
* Eq 10: the source mask warped into the target frame, ``M~ = warp(M, theta)`` -- the target that the
  other image's mask must agree with in the task-consistency loss.

Taught in notebook 10 (interactive demos).
"""

from __future__ import annotations

import ipywidgets as widgets
import torch

from .. import geometry as G
from ..losses.contrastive import object_background
from ._base import Demo, as_image, new_figure, show_image


def masks_state(image, prob, threshold: float = 0.5, binary: bool = True, theta=None, kind: str = "affine",
                lam: float = 0.0) -> dict:
    """The data of the mask figure.

    image ``(3, H, W)``; prob ``(1, H, W)`` or ``(H, W)`` probabilities; theta (default identity) maps the
    target frame into the image, of ``kind`` "affine", "tps" or "cascade". Returns ``image``, ``prob``,
    ``hard`` ``(H, W)`` bool = ``prob > threshold``, ``mask`` ``(1, H, W)`` the M used (hard or soft),
    ``object`` / ``background`` ``(3, H, W)`` (eq 6), ``warped_mask`` ``(1, H, W)`` (eq 10),
    ``foreground`` (fraction of pixels in ``hard``), ``threshold``, ``binary``, ``theta``, ``kind``.
    """
    img, p = as_image(image), as_image(prob)
    if p.shape[0] != 1 or p.shape[-2:] != img.shape[-2:]:
        raise ValueError(f"prob must be (1, H, W) or (H, W) matching the image {tuple(img.shape[-2:])}, "
                         f"got {tuple(p.shape)}")
    hard = p[0] > threshold
    mask = hard[None].float() if binary else p
    obj, bg = object_background(img[None], mask[None])
    if theta is None:
        th = G.identity_theta(kind, 1, dtype=torch.float64)
    else:
        th = torch.as_tensor(theta).detach().double().cpu().reshape(1, -1)
    warped = G.warp_image(mask[None].double(), th, kind, lam=lam)[0].float()
    return {"image": img, "prob": p, "hard": hard, "mask": mask, "object": obj[0], "background": bg[0],
            "warped_mask": warped, "foreground": float(hard.float().mean()), "threshold": float(threshold),
            "binary": bool(binary), "theta": th[0], "kind": kind}


def masks_layout(fig):
    return fig.subplots(2, 3)


def plot_masks(axes, state: dict) -> None:
    """Draw :func:`masks_state` in 2 x 3 panels."""
    t = state["threshold"]
    show_image(axes[0, 0], state["image"], "image I")
    show_image(axes[0, 1], state["prob"], f"probabilities, contour at t = {t:.2f}", cmap="viridis")
    if state["hard"].any() and not state["hard"].all():
        axes[0, 1].contour(state["prob"][0].numpy(), levels=[t], colors="red", linewidths=1)
    kind = "binary M = prob > t" if state["binary"] else "soft M = prob"
    show_image(axes[0, 2], state["mask"], f"{kind} ({100 * state['foreground']:.1f}% > t)")
    show_image(axes[1, 0], state["object"], "object I^o = M I (eq 6)")
    show_image(axes[1, 1], state["background"], "background I^b = (1 - M) I")
    show_image(axes[1, 2], state["warped_mask"], f"warp(M, theta) ({state['kind']}, eq 10)")


def draw_masks(image, prob, threshold: float = 0.5, binary: bool = True, theta=None, kind: str = "affine",
               lam: float = 0.0):
    """Static figure of :func:`masks_state`."""
    fig = new_figure(*MasksDemo.figsize)
    plot_masks(masks_layout(fig), masks_state(image, prob, threshold, binary, theta, kind, lam))
    return fig


class MasksDemo(Demo):
    """Controls ``threshold`` and ``binary`` (use ``prob > t`` or the soft probabilities as M);
    ``state`` is :func:`masks_state`."""

    figsize = (8.4, 5.8)
    layout = staticmethod(masks_layout)
    plot = staticmethod(plot_masks)

    def __init__(self, image, prob, theta=None, kind: str = "affine", lam: float = 0.0,
                 threshold: float = 0.5, binary: bool = True):
        self.image, self.prob = as_image(image), as_image(prob)
        self.theta, self.kind, self.lam = theta, kind, lam
        controls = {
            "threshold": widgets.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01,
                                             description="threshold", continuous_update=False),
            "binary": widgets.Checkbox(value=binary, description="binary mask (prob > t)"),
        }
        super().__init__(controls)

    def compute(self) -> dict:
        v = self.values()
        return masks_state(self.image, self.prob, v["threshold"], v["binary"], self.theta, self.kind,
                           self.lam)


def masks_widget(image, prob, theta=None, kind: str = "affine", lam: float = 0.0, **start) -> MasksDemo:
    """Interactive masks of ``image`` ``(3, H, W)`` from probabilities ``prob`` ``(1, H, W)``; ``theta``/
    ``kind`` the warp of eq 10 (default identity). Drive it: ``demo.controls["threshold"].value = 0.3``."""
    return MasksDemo(image, prob, theta, kind, lam, **start)
