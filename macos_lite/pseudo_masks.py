"""Pseudo-masks: the co-segmentation targets of ``L_prior``, from co-occurrence alone, refreshed by the model.

At the start of the weak phase every training image gets the mask of a training-free co-localisation of
its category's images (:func:`macos_lite.colocalization.colocalize`: DDT, largest component, prototype
refinement, a guided filter along the colour edges). No mask or keypoint annotation is used: only the
images and which of them share a category. The decoder D is trained towards these targets
(:mod:`macos_lite.losses.prior`) and, after each refresh period, the targets become a mix of the prior and
the model's own masks (each image's mask averaged over several partners of its category), filtered along
the edges again -- one round of self-training per refresh (self-paced refinement, as DeepCO3 does).

Targets are kept as ``uint8`` (probability x 255), so that they are small enough to travel in the
checkpoint and a resumed run continues with exactly the same targets.

Taught in notebook 06 (decoder and contrastive loss) and notebook 08 (training).
"""

from __future__ import annotations

import numpy as np
import torch

from . import geometry as G
from .colocalization import (DEFAULT_EDGE_EPS, DEFAULT_EDGE_RADIUS, DEFAULT_ROUNDS, colocalize, edge_refine)


def _to_uint8(probs: torch.Tensor) -> torch.Tensor:
    return (probs.float().clamp(0, 1) * 255).round().to(torch.uint8)


def partner_lists(labels, partners: int, seed: int = 0) -> list[list[int]]:
    """For every image, up to ``partners`` other images of its category (drawn without replacement with
    ``numpy.random.default_rng(seed)``); an image alone in its category is its own partner."""
    labels = np.asarray(list(labels))
    rng = np.random.default_rng(seed)
    out = []
    for i, c in enumerate(labels):
        others = np.flatnonzero((labels == c) & (np.arange(len(labels)) != i))
        if len(others) == 0:
            out.append([i])
        else:
            out.append(rng.choice(others, size=min(partners, len(others)), replace=False).tolist())
    return out


@torch.no_grad()
def group_colocalization(model, f16: torch.Tensor, labels) -> torch.Tensor | None:
    """The co-localisation channels ``(N, 2, h, w)`` of every image within its whole category (the group), for a
    model whose decoder takes the co-occurrence input (None for the paper's input). f16: the model's encodings."""
    if getattr(model, "decoder_input", "paper") != "cooccurrence":
        return None
    from .cooccurrence import colocalization_channels

    g16 = model.coarse_features(f16)
    labels = np.asarray(list(labels))
    out = g16.new_zeros(len(g16), 2, *g16.shape[-2:])
    for c in np.unique(labels):
        idx = torch.from_numpy(np.flatnonzero(labels == c)).to(g16.device)
        out[idx] = colocalization_channels(g16[idx])
    return out


@torch.no_grad()
def model_masks(model, images: torch.Tensor, labels, partners: int = 3, batch_size: int = 8, device="cpu",
                seed: int = 0) -> torch.Tensor:
    """D's mask probabilities of every image ``(N, 1, S, S)``, each the mean over ``partners`` partners of its
    category (the paper co-segments an image with others of its set). images ``(N, 3, S, S)`` at the model's
    size. Each image is encoded once; the model is put in eval mode for the call and restored after. A decoder with
    the co-occurrence input sees each image's co-localisation within its whole category
    (:func:`group_colocalization`)."""
    plist = partner_lists(labels, partners, seed)
    was_training = model.training
    model.eval()
    try:
        feats, skips = [], []
        for k in range(0, len(images), batch_size):
            f, s = model.encode(images[k:k + batch_size].to(device))
            feats.append(f)
            skips.append(s)
        f16 = torch.cat(feats)
        skips = [torch.cat([s[j] for s in skips]) for j in range(3)]
        coloc = group_colocalization(model, f16, labels)
        pairs = [(p, t) for t, ps in enumerate(plist) for p in ps]
        total = torch.zeros(len(images), 1, *images.shape[-2:])
        count = torch.zeros(len(images))
        for k in range(0, len(pairs), batch_size):
            src = torch.tensor([p for p, _ in pairs[k:k + batch_size]], device=f16.device)
            tgt = torch.tensor([t for _, t in pairs[k:k + batch_size]], device=f16.device)
            logits = model.decode_masks(f16[src], f16[tgt], [s[tgt] for s in skips],
                                        coloc=None if coloc is None else coloc[tgt])
            total.index_add_(0, tgt.cpu(), torch.sigmoid(logits.float()).cpu())
            count.index_add_(0, tgt.cpu(), torch.ones(len(tgt)))
    finally:
        model.train(was_training)
    return total / count.clamp_min(1).view(-1, 1, 1, 1)


def check_prior_inputs(inputs, num_images: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(guide, prior)`` of an earlier trainer (``Trainer.prior_inputs``), checked to fit a training set of
    ``num_images`` images whose prior is made at ``size`` pixels: guide ``(N, 3, P, P)`` and prior ``(N, 1, P, P)``,
    both ``uint8``. Raises ``ValueError`` saying which does not fit."""
    guide, prior = inputs
    want = {"guide": (num_images, 3, size, size), "prior": (num_images, 1, size, size)}
    for name, t in (("guide", guide), ("prior", prior)):
        if not torch.is_tensor(t) or t.dtype != torch.uint8 or tuple(t.shape) != want[name]:
            got = f"{tuple(t.shape)} {t.dtype}" if torch.is_tensor(t) else type(t).__name__
            raise ValueError(f"a reused prior's {name} must be a uint8 tensor {want[name]} (this training set, "
                             f"prior_size {size}), got {got}; build it with the same training images and settings")
    return guide, prior


def initial_pseudo_masks(images, encoder, cfg, device="cpu", reuse=None):
    """The first targets of a training set: ``(guide, PseudoMasks)``.

    images: the :class:`macos_lite.training_data.TrainingImages`; guide: all of them as ``uint8``
    ``(N, 3, P, P)`` at ``cfg.prior_size`` (the guided filter's guide); the targets are their co-localisation
    prior (:meth:`PseudoMasks.from_images` with ``encoder``). reuse: the ``(guide, prior)`` of an earlier trainer
    on the same images and start weights (``Trainer.prior_inputs``), checked to fit and used instead of
    co-localising again.
    """
    if reuse is not None:
        guide, prior = check_prior_inputs(reuse, len(images), cfg.prior_size)
        return guide, PseudoMasks(prior.float() / 255, cfg.image_size, momentum=cfg.prior_momentum)
    guide = images.stack(cfg.prior_size)
    return guide, PseudoMasks.from_images(guide.float() / 255, images.labels, encoder, cfg.image_size,
                                          rounds=cfg.prior_rounds, momentum=cfg.prior_momentum, device=device)


class PseudoMasks:
    """The targets of ``L_prior`` for every image of a training set.

    prior: ``(N, 1, P, P)`` probabilities of the co-localisation prior at the prior's size P; size: the
    model's input size S (targets are served at S x S); momentum: the prior's share in a refresh
    (``target = refine(momentum * prior + (1 - momentum) * model)``); radius, eps: the guided filter's.
    """

    def __init__(self, prior: torch.Tensor, size, momentum: float = 0.5, radius: float = DEFAULT_EDGE_RADIUS,
                 eps: float = DEFAULT_EDGE_EPS):
        if prior.dim() != 4 or prior.shape[1] != 1:
            raise ValueError(f"prior must be (N, 1, P, P), got {tuple(prior.shape)}")
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        self.size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        self.momentum, self.radius, self.eps = float(momentum), float(radius), float(eps)
        self.prior = _to_uint8(prior)
        self.current = self.prior.clone()
        self.refreshes = 0

    @classmethod
    def from_images(cls, images: torch.Tensor, labels, encoder, size, rounds: int = DEFAULT_ROUNDS,
                    device="cpu", **kw) -> "PseudoMasks":
        """Co-localise ``images`` ``(N, 3, P, P)`` (at the prior's size) per category with ``encoder``."""
        prior = colocalize(images, labels, encoder, rounds=rounds, edges=True, radius=kw.get("radius", DEFAULT_EDGE_RADIUS),
                           eps=kw.get("eps", DEFAULT_EDGE_EPS), device=device)
        return cls(prior, size, **kw)

    def __len__(self) -> int:
        return len(self.current)

    @property
    def foreground_fraction(self) -> float:
        """Mean target probability over the whole set (the expected object area)."""
        return float(self.current.float().mean() / 255)

    def targets(self, indices: torch.Tensor) -> torch.Tensor:
        """Targets ``(B, T, 1, S, S)`` in [0, 1] of the images ``indices`` ``(B, T)`` of a batch of tuples."""
        idx = torch.as_tensor(indices).long()
        flat = self.current[idx.flatten()].float() / 255
        return G.resize(flat, tuple(self.size)).view(*idx.shape, 1, *self.size)

    def refresh(self, model_probs: torch.Tensor, guide: torch.Tensor) -> None:
        """Mix the model's masks ``(N, 1, s, s)`` with the prior and follow the edges of ``guide``
        ``(N, 3, P, P)`` (the training images at the prior's size)."""
        if len(model_probs) != len(self) or len(guide) != len(self):
            raise ValueError(f"refresh needs {len(self)} masks and images, got {len(model_probs)} and {len(guide)}")
        prior = self.prior.float() / 255
        mixed = self.momentum * prior + (1 - self.momentum) * G.resize(model_probs.float(), prior.shape[-2:])
        self.current = _to_uint8(edge_refine(guide.float(), mixed, self.radius, self.eps))
        self.refreshes += 1

    def state_dict(self) -> dict:
        return {"prior": self.prior, "current": self.current, "refreshes": self.refreshes,
                "momentum": self.momentum}

    def load_state_dict(self, state: dict) -> None:
        if state["prior"].shape != self.prior.shape:
            raise ValueError(f"the checkpoint's pseudo-masks {tuple(state['prior'].shape)} do not fit this training "
                             f"set {tuple(self.prior.shape)}")
        self.prior, self.current = state["prior"].clone(), state["current"].clone()
        self.refreshes = int(state["refreshes"])
