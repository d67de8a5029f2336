"""Perceptual contrastive loss (eqs 6-9): the co-segmentation decoder's training signal.

Object and background images (eq 6): ``I^o = M * I`` and ``I^b = (1 - M) * I`` with images in
[0, 1] (masked-out pixels are black). A frozen ImageNet network F (eval mode, no weight gradients)
embeds the four images of a pair; with c the feature dimension:

* ``d+ = |F(I_A^o) - F(I_B^o)|^2 / c``                                 (objects alike across images)
* ``d- = max(0, m - (|F(I_A^o) - F(I_A^b)|^2 + |F(I_B^o) - F(I_B^b)|^2) / (2c))``  (object unlike background)
* ``L_contrast = d+ + d-``, per pair, hinge per pair (the official code hinged once on batch sums and
  crashed on ``torch.max(0, x)``, docs/differences.md D5).

Gradients reach the masks (hence the decoder) through the images; F itself never changes.

Taught in notebook 06 (decoder and contrastive loss).
"""

from __future__ import annotations

import torch


def object_background(images: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq 6: ``(I^o, I^b)`` for images ``(B, 3, H, W)`` in [0, 1] and mask probabilities ``(B, 1, H, W)``."""
    if probs.shape[0] != images.shape[0] or probs.shape[-2:] != images.shape[-2:] or probs.shape[1] != 1:
        raise ValueError(f"masks {tuple(probs.shape)} must be (B, 1, H, W) matching images {tuple(images.shape)}")
    return probs * images, (1 - probs) * images


def contrastive_terms(perceptual, images_A, images_B, probs_A, probs_B, margin: float):
    """``(d_plus (B,), d_minus (B,))`` of eqs 8-9 with one batched call of F on the four images."""
    obj_A, bg_A = object_background(images_A, probs_A)
    obj_B, bg_B = object_background(images_B, probs_B)
    feats = perceptual(torch.cat((obj_A, obj_B, bg_A, bg_B))).float()
    f_oA, f_oB, f_bA, f_bB = feats.chunk(4)
    c = feats.shape[1]
    d_plus = ((f_oA - f_oB) ** 2).sum(1) / c
    separation = (((f_oA - f_bA) ** 2).sum(1) + ((f_oB - f_bB) ** 2).sum(1)) / (2 * c)
    return d_plus, torch.relu(margin - separation)


def contrastive_loss(perceptual, images: torch.Tensor, out, margin: float) -> torch.Tensor:
    """Eq 7 for every unordered pair of a model output: ``(B,)``.

    images: ``(B, T, 3, H, W)`` the model's input; each image's mask is the one predicted with the
    pair's other image as partner.
    """
    terms = []
    for s, t in out.pairs:
        if s < t:
            probs_s = torch.sigmoid(out.mask_logits_of(s, partner=t).float())
            probs_t = torch.sigmoid(out.mask_logits_of(t, partner=s).float())
            d_plus, d_minus = contrastive_terms(perceptual, images[:, s], images[:, t], probs_s, probs_t, margin)
            terms.append(d_plus + d_minus)
    return torch.stack(terms).mean(0)
