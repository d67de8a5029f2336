"""Demo 5: a model on one pair of a pair dataset -- transform, keypoint transfer, masks, PCK and J.

The protocol is the evaluation's (:mod:`macos_lite.evaluation`): the target's keypoints are carried into
the source with the predicted map (``B_to_A``) at the original image resolution and judged there with
PCK@alpha; masks are resized to the ground truth, thresholded at 0.5 and scored with the Jaccard index.
Panels show the pair at the dataset's image size (keypoints moved there through normalised coordinates).

Taught in notebook 10 (interactive demos).
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import torch

from .. import geometry as G
from .. import metrics as M
from ._base import Demo, as_image, keep_frame, new_figure, plot_keypoints, show_image

CORRECT, WRONG = (0.1, 0.85, 0.2), (0.95, 0.15, 0.1)


@torch.no_grad()
def predict_pair(model, item: dict, kind: str = "cascade") -> dict:
    """``model.predict`` on a pair item: ``{"theta" (D,), "kind", "mask_A" (1, S, S), "mask_B"}`` (CPU)."""
    device = next(model.parameters()).device
    out = model.predict(item["image_A"].to(device), item["image_B"].to(device), tps=kind == "cascade")
    return {"theta": out["theta"].double().cpu(), "kind": out["kind"],
            "mask_A": out["mask_A"].float().cpu(), "mask_B": out["mask_B"].float().cpu()}


def _shown(points: torch.Tensor, original_size, shown_size) -> torch.Tensor:
    """Original-image pixels -> pixels of the resized image shown (corner-aligned resizing keeps normalised
    coordinates)."""
    return G.normalized_to_pixel(G.pixel_to_normalized(points, tuple(original_size)), tuple(shown_size))


def keypoint_correctness(pred, gt, valid, alpha: float, normalizer: str, size, bbox=None) -> torch.Tensor:
    """Per keypoint: within ``alpha * L`` of the ground truth (the rule of :func:`macos_lite.metrics.pck`)."""
    diff = pred - gt
    if normalizer == "scnet":  # distances are measured after resizing to 224 x 224
        diff = diff * (M.SCNET_FRAME / torch.as_tensor(size, dtype=torch.float64).flip(0))
    limit = alpha * M.pck_normalizer(normalizer, gt[None], valid[None], size, bbox)[0]
    return (diff.norm(dim=-1) <= limit) & valid


def model_state(item: dict, prediction: dict, alpha: float = 0.1, normalizer: str = "image") -> dict:
    """The data of the explorer's figure for a pair item and a prediction (:func:`predict_pair`).

    Returns ``pck`` (``metrics.pck`` of the pair), ``correct`` ``(K,)`` bool and ``valid``, ``pred_A``
    ``(K, 2)`` (B's keypoints carried into A, original pixels), the ``*_shown`` keypoints at the shown size,
    ``warped`` ``(3, S, S)`` (A warped onto B), ``mask_A``/``mask_B`` (predicted probabilities),
    ``jaccard`` ``{"A", "B"}`` (when the item has ``mask_A``/``mask_B``, else empty), and the inputs.
    """
    a, b = as_image(item["image_A"]), as_image(item["image_B"])
    shown_size = tuple(a.shape[-2:])
    size_A, size_B = item["size_A"].tolist(), item["size_B"].tolist()
    theta, kind = prediction["theta"].double().reshape(1, -1), prediction["kind"]
    kps_A, kps_B = item["kps_A"].double(), item["kps_B"].double()
    valid = item["kps_valid"].bool() & torch.isfinite(kps_A).all(-1) & torch.isfinite(kps_B).all(-1)
    pred = G.transfer_keypoints(kps_B.nan_to_num(0.0)[None], theta, kind, size_A, size_B, "B_to_A")[0]
    bbox = item.get("bbox_A")
    bbox = None if bbox is None else bbox.double()
    jaccard = {}
    for name in ("A", "B"):
        gt = item.get(f"mask_{name}")
        if gt is not None:
            binary = M.binarize_prediction(prediction[f"mask_{name}"], tuple(gt.shape[-2:]))
            jaccard[name] = M.jaccard(binary, gt.reshape(gt.shape[-2:]) > 0.5)
    return {
        "index": item.get("index"), "image_A": a, "image_B": b, "theta": theta[0], "kind": kind,
        "alpha": float(alpha), "normalizer": normalizer, "valid": valid, "pred_A": pred,
        "correct": keypoint_correctness(pred, kps_A, valid, alpha, normalizer, size_A, bbox),
        "pck": M.pck(pred, kps_A, alpha, normalizer, valid, size=size_A, bbox=bbox),
        "kps_A_shown": _shown(kps_A, size_A, shown_size), "kps_B_shown": _shown(kps_B, size_B, shown_size),
        "pred_A_shown": _shown(pred, size_A, shown_size),
        "warped": G.warp_image(a[None], theta.float(), kind)[0],
        "mask_A": prediction["mask_A"], "mask_B": prediction["mask_B"], "jaccard": jaccard,
        "gt_mask_A": item.get("mask_A"), "gt_mask_B": item.get("mask_B"),
    }


def _mask_panel(ax, image, prob, gt, title: str) -> None:
    """An image with predicted probabilities on top and the ground-truth outline (when known)."""
    show_image(ax, image, title)
    ax.imshow(prob[0].numpy(), cmap="magma", alpha=0.55, vmin=0.0, vmax=1.0, interpolation="nearest")
    if gt is not None:
        outline = G.resize(gt.reshape(1, *gt.shape[-2:]).float(), tuple(image.shape[-2:]), mode="nearest")[0]
        if 0 < float(outline.mean()) < 1:
            ax.contour(outline.numpy(), levels=[0.5], colors="cyan", linewidths=1)


def model_layout(fig):
    return fig.subplots(2, 3)


def plot_model(axes, state: dict) -> None:
    """Draw :func:`model_state` in 2 x 3 panels."""
    v = state["valid"]
    pck = "n/a" if np.isnan(state["pck"]) else f"{state['pck']:.2f}"
    ax = axes[0, 0]
    show_image(ax, state["image_A"], f"A: B's keypoints sent by T, PCK@{state['alpha']:g} = {pck}")
    gt, pred = state["kps_A_shown"][v], state["pred_A_shown"][v]
    for g, p in zip(gt.tolist(), pred.tolist()):
        ax.plot([g[0], p[0]], [g[1], p[1]], color="white", lw=0.7)
    ax.scatter(gt[:, 0], gt[:, 1], s=44, facecolors="none", edgecolors="white", gid="keypoints-gt", zorder=3)
    colours = [CORRECT if c else WRONG for c in state["correct"][v].tolist()]
    ax.scatter(pred[:, 0], pred[:, 1], s=26, c=colours, edgecolors="black", linewidths=0.5,
               gid="keypoints-pred", zorder=4)
    keep_frame(ax, state["image_A"].shape[-2:])
    kps_B = torch.where(v[:, None], state["kps_B_shown"], torch.full_like(state["kps_B_shown"], float("nan")))
    show_image(axes[0, 1], state["image_B"], "B (target) and its keypoints")
    plot_keypoints(axes[0, 1], kps_B, gid="keypoints-B")
    show_image(axes[0, 2], state["warped"], f"A warped onto B ({state['kind']})")
    plot_keypoints(axes[0, 2], kps_B, gid="keypoints-B-on-warped")
    keep_frame(axes[0, 1], state["image_B"].shape[-2:])
    keep_frame(axes[0, 2], state["image_B"].shape[-2:])
    for ax, name in zip(axes[1, :2], ("A", "B")):
        score = state["jaccard"].get(name)
        title = f"mask of {name}" + ("" if score is None or np.isnan(score) else f", J = {score:.2f}")
        _mask_panel(ax, state[f"image_{name}"], state[f"mask_{name}"], state[f"gt_mask_{name}"], title)
    show_image(axes[1, 2], 0.5 * (state["warped"] + state["image_B"]), "warped A and B, half and half")


def draw_model(item: dict, model=None, prediction: dict | None = None, alpha: float = 0.1,
               normalizer: str = "image", kind: str = "cascade"):
    """Static figure of a model on a pair item: pass a ``model`` (run here) or its ``prediction``."""
    if prediction is None:
        if model is None:
            raise ValueError("draw_model needs a model or a prediction (see predict_pair)")
        prediction = predict_pair(model, item, kind)
    fig = new_figure(*ModelDemo.figsize)
    plot_model(model_layout(fig), model_state(item, prediction, alpha, normalizer))
    return fig


class ModelDemo(Demo):
    """Controls ``pair`` (index into the dataset), ``alpha``, ``kind`` ("cascade" or "affine") and, when
    several models are given, ``model`` (their names); ``state`` is :func:`model_state`. Predictions are
    cached per (model, pair, kind): moving ``alpha`` does not run the model again."""

    figsize = (9.6, 6.4)
    layout = staticmethod(model_layout)
    plot = staticmethod(plot_model)
    cache_size = 64

    def __init__(self, dataset, model, index: int = 0, alpha: float = 0.1, normalizer: str = "image",
                 kind: str = "cascade"):
        if len(dataset) == 0:
            raise ValueError("the pair dataset is empty")
        self.models = dict(model) if isinstance(model, dict) else {"model": model}
        self.dataset, self.normalizer = dataset, normalizer
        self.predictions: dict = {}
        self._item = (None, None)  # (index, item) of the last pair loaded
        controls = {
            "pair": widgets.IntSlider(value=index, min=0, max=len(dataset) - 1, description="pair",
                                      continuous_update=False),
            "alpha": widgets.FloatSlider(value=alpha, min=0.01, max=0.3, step=0.01, description="alpha",
                                         continuous_update=False),
            "kind": widgets.ToggleButtons(options=("cascade", "affine"), value=kind, description="transform"),
        }
        if len(self.models) > 1:
            controls["model"] = widgets.Dropdown(options=list(self.models), description="model")
        super().__init__(controls)

    def item(self, index: int) -> dict:
        if self._item[0] != index:
            self._item = (index, self.dataset[index])
        return self._item[1]

    def compute(self) -> dict:
        v = self.values()
        item = self.item(v["pair"])
        name = v.get("model", next(iter(self.models)))
        key = (name, v["pair"], v["kind"])
        if key not in self.predictions:
            if len(self.predictions) >= self.cache_size:
                self.predictions.pop(next(iter(self.predictions)))  # forget the oldest
            self.predictions[key] = predict_pair(self.models[name], item, v["kind"])
        return model_state(item, self.predictions[key], v["alpha"], self.normalizer)


def model_widget(dataset, model, index: int = 0, alpha: float = 0.1, normalizer: str = "image",
                 kind: str = "cascade") -> ModelDemo:
    """Explore ``model`` (a MaCoSNet, or a dict name -> MaCoSNet to compare) on a pair ``dataset``, e.g.
    ``model_widget(get_pairs("synthetic", image_size=128), {"untrained": m0, "trained": m1})``.

    normalizer: the PCK normaliser (:mod:`macos_lite.metrics`).
    Drive it from Python: ``demo.controls["pair"].value = 3``.
    """
    return ModelDemo(dataset, model, index, alpha, normalizer, kind)
