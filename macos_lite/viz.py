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


def show_image(ax, image: torch.Tensor, title: str | None = None, frame: bool = False, **kw):
    """``imshow`` of a ``(3, H, W)``, ``(1, H, W)`` or ``(H, W)`` image in pixel coordinates (pixel (x, y) at
    its centre, as the keypoints). One-channel images are grey unless ``cmap`` is given; ``frame=True`` keeps the
    axes' frame (ticks hidden) instead of turning the axes off; ``kw`` go to ``imshow``."""
    gray = {"cmap": "gray"} if image.dim() == 2 or image.shape[-3] == 1 else {}
    ax.imshow(to_numpy_image(image), **{**gray, **kw})
    if frame:
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def show_keypoints(ax, kps: torch.Tensor, valid=None, marker: str = "o", size: float = 30,
                   edge: str = "white", gid: str | None = None, **kw):
    """Scatter ``(N, 2)`` pixel keypoints, one colour per keypoint index (so correspondences match), as one
    collection whose offsets are the shown points in order (rows with NaN are drawn nowhere); ``valid``:
    which keypoints to show (default all); ``gid`` tags the collection; ``kw`` go to ``scatter``."""
    kps = torch.as_tensor(kps).detach().double().cpu().reshape(-1, 2)
    valid = torch.ones(len(kps), dtype=torch.bool) if valid is None else torch.as_tensor(valid).bool().cpu()
    keep = [k for k in range(len(kps)) if valid[k]]
    if not keep:
        return None
    colours = [KEYPOINT_COLOURS[k % len(KEYPOINT_COLOURS)] for k in keep]
    return ax.scatter(kps[keep, 0].numpy(), kps[keep, 1].numpy(), s=size, marker=marker, c=colours,
                      edgecolors=edge, linewidths=0.8, gid=gid, **kw)


def grid_lines(lines: int = 9, samples: int = 33) -> torch.Tensor:
    """A regular grid of the normalised frame as polylines ``(2 * lines, samples, 2)`` (float64).

    The first ``lines`` rows are horizontal (y fixed, top to bottom), the next ``lines`` vertical
    (x fixed, left to right). With an odd ``lines`` and ``samples`` the nodes include -1, 0 and 1,
    i.e. the 3 x 3 TPS control lattice.
    """
    v = torch.linspace(-1.0, 1.0, lines, dtype=torch.float64)
    t = torch.linspace(-1.0, 1.0, samples, dtype=torch.float64)
    horizontal = torch.stack((t.expand(lines, -1), v[:, None].expand(-1, samples)), dim=-1)
    vertical = torch.stack((v[:, None].expand(-1, samples), t.expand(lines, -1)), dim=-1)
    return torch.cat((horizontal, vertical))


def overlay_mask(ax, image: torch.Tensor, mask: torch.Tensor, title: str | None = None, colour=(1.0, 0.2, 0.2),
                 alpha: float = 0.5):
    """Show an image with a probability/binary mask ``(1, H, W)`` tinted on top."""
    img = to_numpy_image(image)
    m = to_numpy_image(mask.float())[..., None]
    tint = np.asarray(colour)[None, None, :]
    show_image(ax, torch.from_numpy((img * (1 - alpha * m) + tint * alpha * m)).permute(2, 0, 1), title)


def draw_grid(ax, theta: torch.Tensor, kind: str, size, lines: int = 9, **kw):
    """Draw where a regular grid of the *target* frame lands in the *source* image (theta maps target -> source)."""
    style = {"color": "yellow", "lw": 0.7, "alpha": 0.8, **kw}
    grid = grid_lines(lines, 50).to(theta)
    theta = theta[None] if theta.dim() == 1 else theta[:1]
    for line in grid:
        mapped = G.normalized_to_pixel(G.transform_points(line[None], theta, kind)[0], tuple(size)).cpu()
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
