"""The five losses of MaCoSNet (eqs 1-12), one module each, the co-localisation prior loss, and the objective.

Taught in notebooks 04-07.
"""

from .consistency import consistency_points, cycle_error, cycle_loss, transitivity_error, transitivity_loss
from .contrastive import contrastive_loss, contrastive_terms, object_background
from .matching import correspondence_mask, foreground_weights, matching_loss, matching_score
from .objective import (ABLATIONS, COSEG_TERMS, DEFAULT_WEIGHTS, PAPER_WEIGHTS, RECIPES, TERMS, LossConfig, MaCoSLoss,
                        ablation, weighted_objective)
from .prior import prior_bce, prior_loss, warm_start_bias
from .task import task_loss, warped_mask_bce

__all__ = [
    "ABLATIONS", "COSEG_TERMS", "DEFAULT_WEIGHTS", "PAPER_WEIGHTS", "RECIPES", "TERMS", "ablation",
    "prior_bce", "prior_loss", "warm_start_bias", "LossConfig", "MaCoSLoss", "consistency_points", "contrastive_loss", "contrastive_terms",
    "correspondence_mask", "cycle_error", "cycle_loss", "foreground_weights", "matching_loss", "matching_score",
    "object_background", "task_loss", "transitivity_error", "transitivity_loss", "warped_mask_bce",
    "weighted_objective",
]
