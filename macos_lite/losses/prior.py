"""Co-localisation prior loss: the decoder learns from pseudo-masks that co-occurrence alone provides.

Why a prior at all: every co-segmentation term of eq 12 has a trivial minimiser (the contrastive loss,
eqs 7-9: the empty mask; task consistency, eqs 10-11: any constant mask), and a decoder that starts at
p = 1/2 everywhere gets no gradient that points at the object. A training-free co-localisation of the
training set (:mod:`macos_lite.colocalization`, DDT + prototype refinement + a guided filter) gives a
pseudo-mask ``Q`` in [0, 1] for every training image; the decoder D is trained towards it with a
class-balanced, confidence-weighted binary cross-entropy on its logits ``z``:

    rho   = mean(Q) over the batch (the foreground fraction, clamped to [0.05, 0.95])
    c     = log(rho / (1 - rho))
    w     = |2 Q - 1|   (confidence: a pseudo-label of 1/2 says nothing)
    l(p)  = -2 [ (1 - rho) Q log sigma(z - c) + rho (1 - Q) log(1 - sigma(z - c)) ]
    L_prior = sum_p w l(p) / sum_p w          per image, then the mean over the images of the pairs

The weights ``1 - rho`` / ``rho`` balance the (usually smaller) foreground against the background (as
DeepCO3's weighted loss, Hsu et al., CVPR 2019); the logit shift ``c`` (a logit adjustment, Menon et al.,
ICLR 2021) undoes the bias that the balancing puts into the optimum: the minimiser of ``l`` over ``z`` is
``z = logit(Q)``, so ``sigmoid(z)`` stays a calibrated probability and 1/2 the right threshold. The trivial
masks are not minimisers: empty, full and inverted masks all score worse than the pseudo-mask itself.

Where the pseudo-masks come from and how they are refreshed from the model as training goes:
:mod:`macos_lite.pseudo_masks`. This term is not in the paper (its eq 12 has five terms); ``LossConfig``
switches it off for the paper's recipe (``--recipe paper``).

Taught in notebook 06 (decoder and contrastive loss) and notebook 08 (training).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

RHO_RANGE = (0.05, 0.95)


def prior_bce(logits: torch.Tensor, target: torch.Tensor, confidence: bool = True,
              balanced: bool = True) -> torch.Tensor:
    """``L_prior`` per image ``(B,)`` of mask logits ``(B, 1, H, W)`` against pseudo-masks ``(B, 1, H, W)``.

    target: soft pseudo-masks in [0, 1] (resized bilinearly to the logits' size if they differ);
    confidence: weight every pixel by ``|2 Q - 1|`` (else 1); balanced: class-balanced weights with the
    logit shift (else the plain BCE). Both forms have the calibrated minimiser ``sigmoid(z) = Q``.

    Example:
        >>> q = torch.zeros(1, 1, 4, 4); q[..., 1:3, 1:3] = 1.0
        >>> good, empty = 20 * (2 * q - 1), torch.full_like(q, -20.0)
        >>> bool(prior_bce(good, q) < prior_bce(empty, q))
        True
    """
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"logits must be (B, 1, H, W), got {tuple(logits.shape)}")
    target = target.to(logits.device, torch.float32)
    if target.shape[-2:] != logits.shape[-2:]:
        target = F.interpolate(target, size=logits.shape[-2:], mode="bilinear", align_corners=True)
    target = target.clamp(0.0, 1.0)
    z = logits.float()
    if balanced:
        rho = float(target.mean().clamp(*RHO_RANGE))
        z = z - math.log(rho / (1.0 - rho))
        pos, neg = 2.0 * (1.0 - rho), 2.0 * rho
    else:
        pos = neg = 1.0
    loss = -(pos * target * F.logsigmoid(z) + neg * (1.0 - target) * F.logsigmoid(-z))
    weight = (2.0 * target - 1.0).abs() if confidence else torch.ones_like(target)
    return (weight * loss).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1e-6)


def prior_loss(out, pseudo_masks: torch.Tensor, confidence: bool = True, balanced: bool = True) -> torch.Tensor:
    """``L_prior`` of a model output over every ordered pair ``(s, t)``: the decoder's mask of t (given s)
    against t's pseudo-mask; mean over pairs ``(B,)``.

    pseudo_masks: ``(B, T, 1, H, W)``, the pseudo-mask of each image of the input tuples.
    """
    if out.mask_logits is None:
        raise ValueError("the prior loss needs the decoder's masks: run the model with masks=True")
    if pseudo_masks.dim() != 5:
        raise ValueError(f"pseudo_masks must be (B, T, 1, H, W), got {tuple(pseudo_masks.shape)}")
    losses = [prior_bce(out.mask_logits[p], pseudo_masks[:, t], confidence, balanced)
              for p, (_, t) in enumerate(out.pairs)]
    return torch.stack(losses).mean(0)


def warm_start_bias(decoder, foreground_fraction: float) -> None:
    """Start D's last bias at the logit of the expected foreground fraction, so that the first masks say
    "an object of about this size" (p = rho) instead of the uninformative p = 1/2."""
    rho = min(max(float(foreground_fraction), RHO_RANGE[0]), RHO_RANGE[1])
    with torch.no_grad():
        decoder.up1.bias.fill_(math.log(rho / (1.0 - rho)))
