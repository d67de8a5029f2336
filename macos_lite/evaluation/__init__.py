"""Evaluation protocols of the paper's benchmarks, one module per concept.

* :mod:`.methods` -- what gets evaluated: :class:`IdentityMethod`, :class:`ModelMethod`,
  :func:`method_from_checkpoint` (the inference adapters between a model and the protocols);
* :mod:`.verified` -- :class:`VerifiedMethod`, a learned matcher checked pair by pair against the robust fit of
  its own features;
* :mod:`.teacher_checked` -- :class:`TeacherCheckedMethod`, a learned co-segmentation checked image by image
  against its training-free teacher (DDT);
* :mod:`.reference_masks` -- the training-free co-segmentation references: :class:`EllipseMethod`,
  :class:`DDTMethod` (co-localisation of the evaluated set);
* :mod:`.keypoints` -- keypoint PCK (PF-PASCAL, PF-WILLOW, SPair-71k, synthetic): :func:`evaluate_matching`;
* :mod:`.tss` -- dense flow PCK and co-segmentation on TSS: :func:`evaluate_tss`;
* :mod:`.cosegmentation` -- precision P and Jaccard J of masks: :func:`evaluate_cosegmentation`, and J of the
  masks of a pair dataset: :func:`pair_mask_jaccards`;
* :mod:`.protocols` -- each benchmark's default protocol (:data:`PROTOCOLS`) and the sentences saying how a
  number was computed;
* :mod:`.summary` -- :func:`evaluate_dataset`, a benchmark's whole protocol for one or several methods, on
  data it loads or data already loaded, as a JSON summary (:func:`to_json`, :func:`write_json`).

The ``macos-lite evaluate`` command is :mod:`macos_lite.evaluate_cli`.

Taught in notebook 09 (evaluation).
"""

from .common import EvaluationError
from .cosegmentation import CosegScores, evaluate_cosegmentation, pair_mask_jaccards, partner_indices
from .keypoints import DIRECTIONS, MatchingResult, evaluate_matching
from ..robust_fit import RansacMethod  # the training-free matching reference, evaluated like any method
from .methods import (DEFAULT_IMAGE_SIZE, KINDS, IdentityMethod, ModelMethod, SetModelMethod, describe_method,
                      method_from_checkpoint)
from .reference_masks import DDTMethod, EllipseMethod, ellipse_mask
from .protocols import PROTOCOLS, Protocol, describe_coseg, describe_matching, describe_tss
from .summary import CachedItems, evaluate_dataset, evenly_spread, to_json, write_json
from .verified import VerifiedMethod
from .teacher_checked import TeacherCheckedMethod
from .tss import FlowScores, TSSResult, evaluate_tss, tss_flow

__all__ = [
    "DDTMethod", "DEFAULT_IMAGE_SIZE", "DIRECTIONS", "EllipseMethod", "ellipse_mask", "KINDS", "PROTOCOLS", "CachedItems", "CosegScores", "EvaluationError",
    "FlowScores", "IdentityMethod", "MatchingResult", "ModelMethod", "SetModelMethod", "Protocol", "RansacMethod", "TSSResult", "TeacherCheckedMethod", "describe_coseg",
    "describe_matching", "describe_method", "describe_tss", "evaluate_cosegmentation", "evaluate_dataset",
    "evaluate_matching", "evaluate_tss", "evenly_spread", "method_from_checkpoint", "pair_mask_jaccards",
    "partner_indices", "to_json",
    "tss_flow", "VerifiedMethod", "write_json",
]
