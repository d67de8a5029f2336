"""Reference points for keypoint matching on a pair set: what a learned model must beat, and what it could reach.

* **identity**: ``theta = identity`` -- each target keypoint is predicted at the same normalised position of
  the source image;
* **nearest neighbour**: zero-shot matching of the frozen ImageNet features -- the target keypoint's
  descriptor (bilinearly sampled from the L2-normalised feature map) is matched to the most similar source
  cell by cosine similarity, and predicted at that cell's centre. No training, no geometry;
* **best affine fit**: the least-squares affine map from the target's ground-truth keypoints to the
  source's (an oracle: the best any single affine map could score; its PCK is the ceiling of stage 1).

All three are evaluated with the same protocol as a model (:func:`macos_lite.evaluation.evaluate_matching`'s
metric: target (B) keypoints transferred into the source (A), PCK per pair, then the mean over pairs).

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import geometry as G
from . import metrics as M
from .backbones import build_encoder, l2_normalize


def nearest_neighbour_keypoints(feat_A: torch.Tensor, feat_B: torch.Tensor, kps_B: torch.Tensor, size_A, size_B,
                                image_size) -> torch.Tensor:
    """Transfer target keypoints into the source by nearest-neighbour feature matching.

    feat_A, feat_B: L2-normalised features ``(B, C, h, w)`` of the images resized to ``image_size`` (H, W);
    kps_B: ``(B, N, 2)`` target keypoints, 0-based pixels of the original target (size_B ``(B, 2)`` = H, W);
    returns ``(B, N, 2)`` pixels of the original source (size_A ``(B, 2)``): the centre of the source cell
    whose descriptor has the largest cosine similarity with the target keypoint's descriptor.
    """
    b, c, h, w = feat_A.shape
    pts = G.pixel_to_normalized(kps_B.double(), size_B).float()  # corner-aligned normalised target points
    # the descriptor at a point: bilinear between cell centres (cells tile the image: align_corners=False
    # after mapping corner-aligned image coordinates to the cell-centre convention of grid_sample)
    img_h, img_w = image_size
    px = G.normalized_to_pixel(pts, (img_h, img_w))
    gx = (px[..., 0] + 0.5) / img_w * 2 - 1
    gy = (px[..., 1] + 0.5) / img_h * 2 - 1
    desc = F.grid_sample(feat_B, torch.stack((gx, gy), -1).unsqueeze(1), mode="bilinear", align_corners=False)
    desc = l2_normalize(desc)[:, :, 0]  # (B, C, N)
    sim = torch.einsum("bcn,bck->bnk", desc, feat_A.reshape(b, c, h * w))  # (B, N, h*w), row-major cells of A
    best = sim.argmax(-1)
    centres = G.cell_centers((h, w), image_size).reshape(-1, 2).to(pts)
    return G.normalized_to_pixel(centres[best].double(), size_A)


def affine_fit(kps_A: torch.Tensor, kps_B: torch.Tensor, valid: torch.Tensor, size_A, size_B) -> torch.Tensor:
    """Least-squares affine ``theta_AB`` ``(B, 6)`` (normalised coordinates, maps B into A) from the valid
    keypoint correspondences; the identity for a pair with fewer than 3 valid keypoints."""
    a = G.pixel_to_normalized(kps_A.double(), size_A)
    p = G.pixel_to_normalized(kps_B.double(), size_B)
    out = []
    for i in range(a.shape[0]):
        v = valid[i].bool()
        if int(v.sum()) < 3:
            out.append(G.identity_theta("affine", 1, dtype=torch.float64)[0])
            continue
        X = torch.cat((p[i, v], torch.ones(int(v.sum()), 1, dtype=torch.float64)), 1)  # (n, 3)
        sol = torch.linalg.lstsq(X, a[i, v]).solution  # (3, 2): [x y 1] @ sol = target
        out.append(sol.T.reshape(6))
    return torch.stack(out)


@torch.no_grad()
def reference_pck(pairs, image_size: int = 128, backbone: str = "lite", feature_stride: int = 16,
                  alphas=(0.05, 0.1, 0.15), normalizers=("kp_bbox", "image"), batch_size: int = 8,
                  encoder=None) -> dict:
    """``{"identity" | "nearest_neighbour" | "affine_fit": {normalizer: {alpha: PCK}}}`` on a pair dataset
    (PF-style pair items; B's keypoints transferred into A). The nearest neighbour uses the ImageNet
    ``backbone`` features of stride ``feature_stride`` at ``image_size`` px (or the given ``encoder``)."""
    from .data.registry import collate

    encoder = encoder or build_encoder(backbone, pretrained=True, mode="frozen", output_stride=feature_stride)
    encoder.eval()
    size = (int(image_size), int(image_size))
    sums = {m: {(n, a): [0.0, 0] for n in normalizers for a in alphas}
            for m in ("identity", "nearest_neighbour", "affine_fit")}
    loader = torch.utils.data.DataLoader(pairs, batch_size=batch_size, collate_fn=collate)
    for batch in loader:
        size_A, size_B = batch["size_A"].double(), batch["size_B"].double()
        kps_A, kps_B, valid = batch["kps_A"].double(), batch["kps_B"].double(), batch["kps_valid"].bool()
        n = kps_A.shape[0]
        preds = {
            "identity": G.transfer_keypoints(kps_B, G.identity_theta("affine", n, dtype=torch.float64), "affine",
                                             size_A, size_B),
            "affine_fit": G.transfer_keypoints(kps_B, affine_fit(kps_A, kps_B, valid, size_A, size_B), "affine",
                                               size_A, size_B),
        }
        fa = l2_normalize(encoder(G.resize(batch["image_A"], size))[3])
        fb = l2_normalize(encoder(G.resize(batch["image_B"], size))[3])
        preds["nearest_neighbour"] = nearest_neighbour_keypoints(fa, fb, kps_B, size_A, size_B, size)
        for m, pred in preds.items():
            for nrm in normalizers:
                for a in alphas:
                    correct, counted = M.pck_per_pair(pred, kps_A, a, nrm, valid, size_A, batch["bbox_A"].double())
                    frac = correct / counted.clamp_min(1)
                    sums[m][(nrm, a)][0] += float(frac[counted > 0].sum())
                    sums[m][(nrm, a)][1] += int((counted > 0).sum())
    return {m: {nrm: {f"{a:g}": s[(nrm, a)][0] / max(1, s[(nrm, a)][1]) for a in alphas} for nrm in normalizers}
            for m, s in sums.items()}
