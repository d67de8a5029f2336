"""Validation of a training run: how the validation pairs score the model after each phase and epoch.

Taught in notebook 08 (training). :class:`Validation` holds a run's validation pairs
(:func:`macos_lite.training_data.validation_data`) and scores a model on them: PCK@0.05/0.1 of the cascade
(:func:`macos_lite.evaluation.evaluate_matching`), the training-free RANSAC reference of the model's own
features beside it (:mod:`macos_lite.robust_fit`), and the co-segmentation J when the pairs carry masks; or,
for a co-segmentation set validated on whole held-out groups, the J of those groups' images under the
co-segmentation protocol (:func:`macos_lite.evaluation.evaluate_cosegmentation`: per group, then the mean).
"""

from __future__ import annotations

from .evaluation import ModelMethod, RansacMethod, SetModelMethod, evaluate_cosegmentation, evaluate_matching, \
    pair_mask_jaccards
from .metrics import nanmean


class Validation:
    """Scores of a model on ``pairs`` (a pair dataset, or None: no validation) with PCK normaliser
    ``normalizer``, in batches of ``batch_size`` on ``device``; ``masks``: also the co-segmentation J when
    the pairs carry masks (``mask_A``). ``images``: an image dataset with masks (held-out groups) scored by the
    co-segmentation protocol instead of pairs; ``key`` is the score that chooses ``best.pt``."""

    PARTNERS = 3  # a model's mask of a validation image: the mean over this many partners of its group

    def __init__(self, pairs, normalizer: str, batch_size: int, device, masks: bool, images=None):
        self.pairs, self.normalizer, self.batch_size, self.device, self.masks = \
            pairs, normalizer, batch_size, device, masks
        self.images = images
        self.key = "val_jaccard" if pairs is None and images is not None else "val_pck@0.1"
        self.ransac_metrics: dict | None = None  # the reference, computed once per run

    def image_scores(self, model) -> dict:
        """``{"val_jaccard", "val_precision"}`` of the held-out groups' images (means over groups of the
        per-group means), each image co-segmented within its group."""
        cooccurrence = getattr(model, "decoder_input", "paper") == "cooccurrence"
        method = SetModelMethod(model, partners=self.PARTNERS) if cooccurrence else ModelMethod(model)
        res = evaluate_cosegmentation(method, self.images, partners=self.PARTNERS, batch_size=self.batch_size,
                                      device=self.device).summary()
        model.train()
        return {"val_jaccard": res["jaccard"], "val_precision": res["precision"]}

    def scores(self, model) -> dict:
        """``{"val_pck@0.1", "val_pck@0.05", "val_pck_ransac@0.1", "val_ransac_fallbacks", "val_normalizer"}``
        (PCKs in [0, 1]) and ``"val_jaccard"`` with masks; ``{}`` without pairs. ``model`` is left in train mode."""
        if self.pairs is None:
            return self.image_scores(model) if self.images is not None else {}
        method = ModelMethod(model, "cascade")
        res = evaluate_matching(method, self.pairs, alphas=(0.05, 0.1), normalizers=(self.normalizer,),
                                batch_size=self.batch_size, device=self.device)
        metrics = {"val_pck@0.1": res.pck(alpha=0.1), "val_pck@0.05": res.pck(alpha=0.05),
                   **self.ransac_reference(model), "val_normalizer": self.normalizer}
        if self.masks and "mask_A" in self.pairs[0]:
            scores = pair_mask_jaccards(method, self.pairs, self.batch_size, self.device)
            metrics["val_jaccard"] = nanmean(scores)
        model.train()
        return metrics

    def ransac_reference(self, model) -> dict:
        """``{"val_pck_ransac@0.1": PCK, "val_ransac_fallbacks": n}``: the training-free robust fit
        (:mod:`macos_lite.robust_fit`) of the model's own correlation features on the validation pairs,
        computed once per run (at the first validation: with a frozen encoder the features never change) and
        printed beside the learned PCK."""
        if self.ransac_metrics is None:
            import warnings

            with warnings.catch_warnings():  # its fallbacks are counted, not printed at every pair
                warnings.simplefilter("ignore")
                method = RansacMethod.of_model(model, device=self.device)
                res = evaluate_matching(method, self.pairs, alphas=(0.1,), normalizers=(self.normalizer,),
                                        batch_size=self.batch_size, device=self.device)
            self.ransac_metrics = {"val_pck_ransac@0.1": res.pck(alpha=0.1),
                                   "val_ransac_fallbacks": method.num_fallback}
        return dict(self.ransac_metrics)
