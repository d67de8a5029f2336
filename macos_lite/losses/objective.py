"""The full training objective (eq 12) and its configuration.

    L = lambda_matching L_matching + lambda_cycle L_cycle + lambda_trans L_trans
        + lambda_contrast L_contrast + lambda_task L_task  [+ lambda_prior L_prior]

(the paper fixes lambda_matching = 1). A term whose weight is 0 is not computed at all, so each of the
paper's ablations is one setting: "w/o co-seg" = the co-segmentation terms 0 and no mask weighting;
"w/o matching" = matching 0, cycle 0, trans 0 (and task 0: it needs a trained matcher).

Two recipes of weights (:data:`RECIPES`):

* ``"paper"`` -- eq 12 as published: the five terms, contrast and task at 1. Its co-segmentation terms have
  trivial minimisers (the empty or a constant mask) and, with a Lite0 perceptual network, the decoder does
  not learn object masks from them (notebooks 06-07 show why);
* ``"ours"`` (the default) -- eq 12 plus ``L_prior`` (:mod:`.prior`): the decoder learns from pseudo-masks of
  a training-free co-localisation of the training set, task consistency on top at a small weight (0.1: a larger one
  pulls short runs' masks towards a constant), the contrastive term at 0 (it prefers the empty mask here; still computed when its
  weight is set).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from .consistency import cycle_loss, transitivity_loss
from .contrastive import contrastive_loss
from .matching import matching_loss
from .prior import prior_loss
from .task import task_loss

TERMS = ("matching", "cycle", "trans", "contrast", "task", "prior")
COSEG_TERMS = ("contrast", "task", "prior")
# The paper does not publish its lambdas. The consistency terms are measured in normalised units and their
# gradients dwarf the matching score's: at lambda 1 (and 0.1) they hold the transforms where they are
# (consistent, not accurate); 0.01 keeps them a mild regulariser (see notebook 11 for the sweep).
PAPER_WEIGHTS = {"matching": 1.0, "cycle": 0.01, "trans": 0.01, "contrast": 1.0, "task": 1.0, "prior": 0.0}
DEFAULT_WEIGHTS = {"matching": 1.0, "cycle": 0.01, "trans": 0.01, "contrast": 0.0, "task": 0.1, "prior": 1.0}
RECIPES = {"ours": DEFAULT_WEIGHTS, "paper": PAPER_WEIGHTS}


@dataclass
class LossConfig:
    """Every weight, margin and tolerance of the objective in one place.

    weights: lambda per term (see TERMS). phi: matching tolerance in feature cells (soft tent of
    width phi; 1 = bilinear, WeakAlign's implicit tolerance). weighting: foreground guidance of the
    matching loss ("mask": the decoder's mask; "corr_max": the official code's proxy; "none").
    margin: m of the contrastive hinge, in F's dimension-normalised squared distance. tps_lambda:
    TPS regulariser inside the losses (0 = the same map as at evaluation). consistency_grid: n of
    the n x n points of eqs 4-5. consistency_kind: "affine" (the official code) or "cascade".
    mask_grad: let eq 3 train the decoder's mask too (see :mod:`.matching`). prior_confidence /
    prior_balanced: the confidence weights and the class balance of ``L_prior`` (see :mod:`.prior`).
    """

    weights: dict = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    phi: float = 1.0
    weighting: str = "mask"
    margin: float = 2.0  # m = 2 on dimension-normalised squared distances (docs/differences.md D15)
    tps_lambda: float = 0.0
    consistency_grid: int = 10
    consistency_kind: str = "affine"
    mask_grad: bool = False
    prior_confidence: bool = True
    prior_balanced: bool = True

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
        return (any(self.active(t) for t in COSEG_TERMS)
                or (self.active("matching") and self.weighting == "mask"))

    @property
    def needs_triplets(self) -> bool:
        return self.active("trans")

    def to_dict(self) -> dict:
        return asdict(self)


MATCHING_TERMS = ("matching", "cycle", "trans")


def ablation(name: str, recipe: str = "ours") -> dict:
    """The paper's ablations as :class:`LossConfig` keyword arguments for a recipe of weights.

    ``"joint"``: every term of the recipe; ``"matching_only"`` (the paper's "w/o co-seg"): the matching
    terms alone, without mask weighting; ``"coseg_only"`` ("w/o matching"): the recipe's co-segmentation
    terms without task consistency (it needs a trained matcher) -- for ``"ours"`` the prior loss, for
    ``"paper"`` the contrastive loss.

    Example:
        >>> ablation("w/o co-seg")["weights"]
        {'matching': 1.0, 'cycle': 0.01, 'trans': 0.01}
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; the recipes are {tuple(RECIPES)}")
    name = ABLATION_ALIASES.get(name, name)
    weights = RECIPES[recipe]
    if name == "joint":
        return {"weights": dict(weights)}
    if name == "matching_only":
        return {"weights": {t: weights[t] for t in MATCHING_TERMS}, "weighting": "none"}
    if name == "coseg_only":
        return {"weights": {t: weights[t] for t in COSEG_TERMS if t != "task" and weights[t] > 0}}
    raise ValueError(f"unknown ablation {name!r}; the ablations are {tuple(ABLATIONS)}")


ABLATION_ALIASES = {"w/o co-seg": "matching_only", "w/o matching": "coseg_only"}
ABLATIONS = {name: ablation(name) for name in ("joint", "matching_only", "coseg_only")}
"""The ablations of the default recipe (see :func:`ablation`); "w/o co-seg" and "w/o matching" are the
paper's names for "matching_only" and "coseg_only"."""
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

    def forward(self, out, images: torch.Tensor, pseudo_masks: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """pseudo_masks ``(B, T, 1, H, W)``: the targets of ``L_prior`` (needed when it is active)."""
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
        if cfg.active("prior"):
            if pseudo_masks is None:
                raise ValueError("the prior loss needs pseudo-masks (macos_lite.pseudo_masks); the trainer makes them")
            terms["prior"] = prior_loss(out, pseudo_masks, cfg.prior_confidence, cfg.prior_balanced)
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        return weighted_objective(terms, cfg.weights), terms


def weighted_objective(terms: dict, weights: dict) -> torch.Tensor:
    """Eq 12: ``L = sum_t lambda_t mean_batch(L_t)``, a scalar.

    terms: ``{name: (B,) per-sample values}`` of the computed terms; weights: ``{name: lambda}`` holding
    every name of ``terms`` (a KeyError names the missing one). Each term is averaged over the batch
    first, so the total does not grow with the batch size.

    Example:
        >>> weighted_objective({"matching": torch.tensor([-0.5, -0.3]), "cycle": torch.tensor([1.0, 3.0])},
        ...                    {"matching": 1.0, "cycle": 0.01})
        tensor(-0.3800)
    """
    if not terms:
        raise ValueError("no loss terms to add: every weight is 0")
    return sum(weights[name] * value.mean() for name, value in terms.items())
