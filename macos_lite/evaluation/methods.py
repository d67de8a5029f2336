"""What gets evaluated: a *method*, the inference adapter between a model and the protocols.

A method is an object with a ``name``, a transform ``kind`` (``"affine"`` or ``"cascade"``, see
:mod:`macos_lite.geometry`) and two functions of a batch of image pairs, images ``(b, 3, S, S)`` in [0, 1]:

* ``transforms(images_A, images_B)`` -> ``theta (b, D)`` mapping B's normalised points into A;
* ``masks(images_A, images_B)`` -> ``(prob_A, prob_B)``, foreground probabilities ``(b, 1, h, w)``.

:class:`IdentityMethod` is the trivial reference point (no motion, every pixel foreground);
:class:`RansacMethod` (:mod:`macos_lite.robust_fit`) the training-free matching reference (mutual nearest
neighbours of frozen features and a RANSAC affine fit);
:class:`ModelMethod` wraps a MaCoSNet; :func:`method_from_checkpoint` loads one from a checkpoint.

Taught in notebook 09 (evaluation).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import geometry as G
from ..checkpoints import model_from_checkpoint
from ..device import resolve_device

KINDS = ("cascade", "affine")
DEFAULT_IMAGE_SIZE = 240


class IdentityMethod:
    """The reference point: ``theta = identity`` (no motion) and an all-foreground mask.

    The mask is a trivial baseline, "everything is the object": P and J both equal the foreground's
    share of each image (J over the images that have foreground).
    """

    name = "identity"
    kind = "affine"

    def transforms(self, images_A: torch.Tensor, images_B: torch.Tensor) -> torch.Tensor:
        images_A, images_B = _checked_pair(images_A, images_B, "IdentityMethod.transforms")
        return G.identity_theta("affine", images_A.shape[0], dtype=torch.float32, device=images_A.device)

    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images_A, images_B = _checked_pair(images_A, images_B, "IdentityMethod.masks")
        return torch.ones_like(images_A[:, :1]), torch.ones_like(images_B[:, :1])


def _checked_pair(images_A, images_B, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Both image batches as float ``(b, 3, H, W)`` in [0, 1] (see :func:`macos_lite.geometry.as_image_batch`:
    uint8 and channels-last are converted; NaN and values outside [0, 1] raise ``ValueError`` naming the
    argument)."""
    a, _ = G.as_image_batch(images_A, "images_A", where=where)
    b, _ = G.as_image_batch(images_B, "images_B", where=where)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{where}: images_A holds {a.shape[0]} images but images_B {b.shape[0]}")
    return a, b


class ModelMethod:
    """A MaCoSNet in eval mode. ``kind``: ``"cascade"`` (affine -> TPS, the default) or ``"affine"``
    (stage 1 only). Images of any size are resized to the model's input size."""

    def __init__(self, model, kind: str = "cascade", name: str = "macosnet", checkpoint: str | None = None,
                 refine: str = "none"):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if refine not in ("none", "edges"):
            raise ValueError(f"refine must be 'none' or 'edges', got {refine!r}")
        self.model, self.kind, self.name, self.checkpoint = model, kind, name, checkpoint
        self.refine = refine

    def _probs(self, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """Mask probabilities at the input images' size; ``refine="edges"``: along their edges (guided filter)."""
        return self._refined(torch.sigmoid(logits.float()), images)

    def _refined(self, probs: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        probs = G.resize(probs.float(), images.shape[-2:])
        if self.refine == "edges":
            from ..colocalization import edge_refine

            probs = edge_refine(images.float(), probs)
        return probs

    @property
    def image_size(self) -> tuple[int, int]:
        return self.model.image_size

    def _forward(self, images_A, images_B, pairs, tps: bool, masks: bool):
        images_A, images_B = _checked_pair(images_A, images_B, f"{type(self).__name__} ({self.name})")
        was_training = self.model.training  # evaluating mid-training must not leave the model in eval mode
        self.model.eval()
        try:
            x = torch.stack((G.resize(images_A, self.image_size), G.resize(images_B, self.image_size)), 1)
            return self.model(x, tps=tps, masks=masks, pairs=pairs)
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def transforms(self, images_A: torch.Tensor, images_B: torch.Tensor) -> torch.Tensor:
        out = self._forward(images_A, images_B, [(0, 1)], tps=self.kind == "cascade", masks=False)
        return out.theta(0, 1, self.kind).float()

    @torch.no_grad()
    def masks(self, images_A: torch.Tensor, images_B: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self._forward(images_A, images_B, [(0, 1), (1, 0)], tps=False, masks=True)
        return self._probs(out.mask_logits_of(0), images_A), self._probs(out.mask_logits_of(1), images_B)

    @torch.no_grad()
    def transforms_and_masks(self, images_A, images_B):
        """Both at once (one encoder pass fewer than calling the two): ``(theta, prob_A, prob_B)``."""
        out = self._forward(images_A, images_B, [(0, 1), (1, 0)], tps=self.kind == "cascade", masks=True)
        return (out.theta(0, 1, self.kind).float(), self._probs(out.mask_logits_of(0), images_A),
                self._probs(out.mask_logits_of(1), images_B))


class SetModelMethod(ModelMethod):
    """A MaCoSNet whose decoder takes the co-occurrence input (``decoder_input="cooccurrence"``), co-segmenting a
    whole set as the DDT reference does: every image of a category is co-localised with all the category's images
    (:func:`macos_lite.pseudo_masks.group_colocalization`) and its mask is the mean over ``partners`` partners of
    the category (:func:`macos_lite.pseudo_masks.model_masks`, as the training refreshes its targets). Matching
    and pair masks are :class:`ModelMethod`'s."""

    def __init__(self, model, *args, partners: int = 3, **kw):
        super().__init__(model, *args, **kw)
        if getattr(model, "decoder_input", "paper") != "cooccurrence":
            raise ValueError("SetModelMethod needs a model with decoder_input='cooccurrence'")
        self.partners = int(partners)

    @torch.no_grad()
    def cosegment_set(self, images: torch.Tensor, labels) -> torch.Tensor:
        """``images (N, 3, S, S)`` and their category labels -> foreground probabilities ``(N, 1, S, S)``."""
        from ..pseudo_masks import model_masks

        device = next(self.model.parameters()).device
        probs = model_masks(self.model, G.resize(images, self.image_size), labels, partners=self.partners,
                            device=device)
        return self._refined(probs, images)


def method_from_checkpoint(path, device="cpu", kind: str = "cascade", refine: str = "none",
                           partners: int = 3) -> ModelMethod:
    """The method of the MaCoSNet saved in ``path`` (a ``macos-lite train`` checkpoint): a :class:`ModelMethod`,
    or a :class:`SetModelMethod` (``partners`` per image) when its decoder takes the co-occurrence input."""
    model = model_from_checkpoint(path, device=resolve_device(device))
    if getattr(model, "decoder_input", "paper") == "cooccurrence":
        return SetModelMethod(model, kind=kind, name=Path(path).stem, checkpoint=str(path), refine=refine,
                              partners=partners)
    return ModelMethod(model, kind=kind, name=Path(path).stem, checkpoint=str(path), refine=refine)


def _transforms_and_masks(method, images_A, images_B):
    if hasattr(method, "transforms_and_masks"):
        return method.transforms_and_masks(images_A, images_B)
    return (method.transforms(images_A, images_B), *method.masks(images_A, images_B))


def describe_method(method, image_size) -> dict:
    """``{"name", "kind", "image_size", "network_size", "checkpoint", "refine"}`` of a method (for the JSON
    summary): ``image_size`` is the size the images were loaded at (``image_size``, e.g. ``--image-size``),
    ``network_size`` the size a model resizes them to (None for a baseline)."""
    network = getattr(method, "image_size", None)
    return {"name": method.name, "kind": method.kind, "image_size": [int(s) for s in _square(image_size)],
            "network_size": [int(s) for s in network] if network else None,
            "checkpoint": getattr(method, "checkpoint", None), "refine": getattr(method, "refine", "none"),
            **({"feature_stages": list(method.feature_stages), "backbone": method.backbone}
               if getattr(method, "feature_stages", None) else {})}



def _square(image_size) -> tuple[int, int]:
    return (int(image_size), int(image_size)) if isinstance(image_size, int) else tuple(image_size)
