"""Plotting helpers shared by the notebooks, the demo and the course summary (matplotlib only)."""

from __future__ import annotations

import matplotlib

import numpy as np
import torch

from . import geometry as G

KEYPOINT_COLOURS = matplotlib.colormaps["tab10"].colors + matplotlib.colormaps["Set3"].colors


def to_numpy_image(image: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` / ``(1, H, W)`` / ``(H, W)`` tensor in [0, 1] -> an array matplotlib shows."""
    x = image.detach().float().cpu()
    if x.dim() == 4:
        x = x[0]
    if x.dim() == 3 and x.shape[0] in (1, 3):
        x = x.permute(1, 2, 0)
    x = x.numpy()
    return x[..., 0] if x.ndim == 3 and x.shape[-1] == 1 else x.clip(0, 1)


def show_image(ax, image: torch.Tensor, title: str | None = None, **kw):
    ax.imshow(to_numpy_image(image), **({"cmap": "gray"} if image.dim() == 2 or image.shape[-3] == 1 else {}), **kw)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_keypoints(ax, kps: torch.Tensor, valid=None, marker: str = "o", size: float = 30, edge: str = "white"):
    """Scatter ``(N, 2)`` pixel keypoints, one colour per keypoint index (so correspondences match)."""
    kps = torch.as_tensor(kps).detach().cpu()
    valid = torch.ones(len(kps), dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool().cpu()
    for k in range(len(kps)):
        if valid[k]:
            ax.scatter(float(kps[k, 0]), float(kps[k, 1]), s=size, marker=marker,
                       color=KEYPOINT_COLOURS[k % len(KEYPOINT_COLOURS)], edgecolors=edge, linewidths=0.8)


def overlay_mask(ax, image: torch.Tensor, mask: torch.Tensor, title: str | None = None, colour=(1.0, 0.2, 0.2),
                 alpha: float = 0.5):
    """Show an image with a probability/binary mask ``(1, H, W)`` tinted on top."""
    img = to_numpy_image(image)
    m = to_numpy_image(mask.float())[..., None]
    tint = np.asarray(colour)[None, None, :]
    show_image(ax, torch.from_numpy((img * (1 - alpha * m) + tint * alpha * m)).permute(2, 0, 1), title)


def draw_grid(ax, theta: torch.Tensor, kind: str, size, lines: int = 9, **kw):
    """Draw where a regular grid of the *target* frame lands in the *source* image (theta maps target -> source)."""
    h, w = size
    t = torch.linspace(-1, 1, 50)
    style = {"color": "yellow", "lw": 0.7, "alpha": 0.8, **kw}
    for v in torch.linspace(-1, 1, lines):
        for pts in (torch.stack((t, v.expand_as(t)), -1), torch.stack((v.expand_as(t), t), -1)):
            mapped = G.normalized_to_pixel(G.transform_points(pts[None].to(theta), theta[None] if theta.dim() == 1
                                                              else theta[:1], kind)[0], (h, w)).cpu()
            ax.plot(mapped[:, 0], mapped[:, 1], **style)


def pair_figure(item: dict, prediction: dict | None = None, alpha: float = 0.1):
    """A 2 x 3 (or 1 x 2) figure of a pair item: A, B with keypoints; with a prediction also the warped A,
    the transferred keypoints (green = correct at PCK@alpha of B's size, red = wrong) and the masks.

    prediction: ``{"theta": (D,), "kind": str, "mask_A": (1, S, S), "mask_B": (1, S, S)}`` as returned by
    :meth:`macos_lite.model.MaCoSNet.predict` on the item's images.
    """
    import matplotlib.pyplot as plt

    a, b = item["image_A"], item["image_B"]
    size = tuple(a.shape[-2:])
    scale_A = torch.tensor(size, dtype=torch.float64).flip(0) / item["size_A"].double().flip(0).clamp_min(1)
    scale_B = torch.tensor(size, dtype=torch.float64).flip(0) / item["size_B"].double().flip(0).clamp_min(1)
    kps_A, kps_B = item["kps_A"].double() * scale_A, item["kps_B"].double() * scale_B  # into the S x S frame
    valid = item["kps_valid"]
    rows = 1 if prediction is None else 2
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3.2 * rows), squeeze=False)
    show_image(axes[0, 0], a, f"source A ({item.get('category_name', '')})")
    show_keypoints(axes[0, 0], kps_A, valid)
    show_image(axes[0, 1], b, "target B")
    show_keypoints(axes[0, 1], kps_B, valid)
    axes[0, 2].set_axis_off()
    if prediction is not None:
        theta, kind = prediction["theta"].double().cpu(), prediction["kind"]
        warped = G.warp_image(a[None].double(), theta[None], kind)[0]
        show_image(axes[0, 2], warped.float(), "A warped onto B")
        show_image(axes[1, 0], a, "B's keypoints sent into A")
        pred = G.transfer_keypoints(kps_B[None], theta[None], kind, size, size)[0]
        ok = (pred - kps_A).norm(dim=-1) <= alpha * max(size)
        for k in range(len(pred)):
            if valid[k]:
                axes[1, 0].plot([kps_A[k, 0], pred[k, 0]], [kps_A[k, 1], pred[k, 1]], color="white", lw=0.6)
                axes[1, 0].scatter(float(pred[k, 0]), float(pred[k, 1]), s=28, color="lime" if ok[k] else "red",
                                   edgecolors="black", linewidths=0.5)
        draw_grid(axes[1, 0], theta, kind, size)
        axes[1, 0].set_xlim(-0.5, size[1] - 0.5)
        axes[1, 0].set_ylim(size[0] - 0.5, -0.5)
        if "mask_A" in prediction:
            overlay_mask(axes[1, 1], a, prediction["mask_A"], "mask of A")
            overlay_mask(axes[1, 2], b, prediction["mask_B"], "mask of B")
        else:
            axes[1, 1].set_visible(False)
            axes[1, 2].set_visible(False)
    fig.tight_layout()
    return fig


def plot_history(history: list[dict], keys=("loss",), ax=None, phase: str = "weak", title: str | None = None):
    """Plot logged values of a training history against the step."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    rows = [r for r in history if r.get("phase") == phase]
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts), label=key)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax
