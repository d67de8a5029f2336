"""The full training objective (eq 12) and its configuration.

    L = lambda_matching L_matching + lambda_cycle L_cycle + lambda_trans L_trans
        + lambda_contrast L_contrast + lambda_task L_task

(the paper fixes lambda_matching = 1). A term whose weight is 0 is not computed at all, so each of the
paper's ablations is one setting: "w/o co-seg" = contrast 0, task 0 and no mask weighting;
"w/o matching" = matching 0, cycle 0, trans 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from .consistency import cycle_loss, transitivity_loss
from .contrastive import contrastive_loss
from .matching import matching_loss
from .task import task_loss

TERMS = ("matching", "cycle", "trans", "contrast", "task")
# The paper does not publish its lambdas. The consistency terms are measured in normalised units and their
# gradients dwarf the matching score's: at lambda 1 (and 0.1) they hold the transforms where they are
# (consistent, not accurate); 0.01 keeps them a mild regulariser (see notebook 11 for the sweep).
DEFAULT_WEIGHTS = {"matching": 1.0, "cycle": 0.01, "trans": 0.01, "contrast": 1.0, "task": 1.0}


@dataclass
class LossConfig:
    """Every weight, margin and tolerance of the objective in one place.

    weights: lambda per term (see TERMS). phi: matching tolerance in feature cells (soft tent of
    width phi; 1 = bilinear, WeakAlign's implicit tolerance). weighting: foreground guidance of the
    matching loss ("mask": the decoder's mask; "corr_max": the official code's proxy; "none").
    margin: m of the contrastive hinge, in F's dimension-normalised squared distance. tps_lambda:
    TPS regulariser inside the losses (0 = the same map as at evaluation). consistency_grid: n of
    the n x n points of eqs 4-5. consistency_kind: "affine" (the official code) or "cascade".
    mask_grad: let eq 3 train the decoder's mask too (see :mod:`.matching`).
    """

    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    phi: float = 1.0
    weighting: str = "mask"
    margin: float = 2.0  # m = 2 on dimension-normalised squared distances (docs/differences.md D15)
    tps_lambda: float = 0.0
    consistency_grid: int = 10
    consistency_kind: str = "affine"
    mask_grad: bool = False

    def __post_init__(self):
        unknown = set(self.weights) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown loss terms {sorted(unknown)}; the terms are {TERMS}")
        self.weights = {t: float(self.weights.get(t, 0.0)) for t in TERMS}
        if any(w < 0 for w in self.weights.values()):
            raise ValueError(f"loss weights must be >= 0, got {self.weights}")

    def active(self, term: str) -> bool:
        return self.weights[term] > 0

    @property
    def needs_masks(self) -> bool:
        return self.active("contrast") or self.active("task") or (self.active("matching") and self.weighting == "mask")

    @property
    def needs_triplets(self) -> bool:
        return self.active("trans")

    def to_dict(self) -> dict:
        return asdict(self)


# The paper's ablations as LossConfig overrides. "matching_only" is the paper's "w/o co-seg" (the matching
# network trained alone); "coseg_only" its "w/o matching" (the decoder trained by the contrastive loss
# alone: the task loss needs a trained matcher).
ABLATIONS = {
    "joint": {},
    "matching_only": {"weights": {t: DEFAULT_WEIGHTS[t] for t in ("matching", "cycle", "trans")}, "weighting": "none"},
    "coseg_only": {"weights": {"contrast": 1.0}},
}
ABLATIONS["w/o co-seg"] = ABLATIONS["matching_only"]
ABLATIONS["w/o matching"] = ABLATIONS["coseg_only"]


class MaCoSLoss(torch.nn.Module):
    """Computes eq 12 from a model output. ``forward(out, images) -> (total (scalar), terms {name: (B,)})``.

    perceptual: the frozen network F (needed when the contrastive term is active).
    """

    def __init__(self, config: LossConfig | None = None, perceptual: torch.nn.Module | None = None):
        super().__init__()
        self.config = config or LossConfig()
        if self.config.active("contrast") and perceptual is None:
            raise ValueError("the contrastive term needs the perceptual network F (macos_lite.backbones.build_perceptual)")
        self.perceptual = perceptual

    def forward(self, out, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg = self.config
        terms: dict[str, torch.Tensor] = {}
        if cfg.active("matching"):
            terms["matching"] = matching_loss(out, cfg.weighting, cfg.phi, lam=cfg.tps_lambda, mask_grad=cfg.mask_grad)
        if cfg.active("cycle"):
            terms["cycle"] = cycle_loss(out, cfg.consistency_kind, cfg.consistency_grid)
        if cfg.active("trans"):
            terms["trans"] = transitivity_loss(out, cfg.consistency_kind, cfg.consistency_grid)
        if cfg.active("contrast"):
            terms["contrast"] = contrastive_loss(self.perceptual, images, out, cfg.margin)
        if cfg.active("task"):
            terms["task"] = task_loss(out, "cascade" if out.theta_tps is not None else "affine", cfg.tps_lambda)
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        total = sum(cfg.weights[name] * value.mean() for name, value in terms.items())
        return total, terms
