"""`pair_mask_jaccards`: the J of every mask of a pair dataset, used by the trainer's validation and the sweeps."""

import math

import numpy as np
import torch

from macos_lite.evaluation import pair_mask_jaccards


def _pairs(n=3, size=8):
    gen = torch.Generator().manual_seed(0)
    items = []
    for i in range(n):
        masks = [(torch.rand(1, size, size, generator=gen) > 0.6).float() for _ in range(2)]
        if i == n - 1:
            masks[1].zero_()  # no foreground: left out of the mean (NaN)
        items.append({"image_A": torch.zeros(3, 4, 4), "image_B": torch.zeros(3, 4, 4),
                      "mask_A": masks[0], "mask_B": masks[1]})
    return items


class AllForeground:
    def masks(self, images_A, images_B):
        ones = torch.ones(images_A.shape[0], 1, 4, 4)
        return ones, ones


class Truth:
    def __init__(self, pairs):
        self.pairs, self.at = pairs, 0

    def masks(self, images_A, images_B):
        batch = self.pairs[self.at:self.at + images_A.shape[0]]
        self.at += len(batch)
        return (torch.stack([p["mask_A"] for p in batch]), torch.stack([p["mask_B"] for p in batch]))


def test_all_foreground_scores_the_foreground_share_in_batch_order():
    pairs = _pairs()
    scores = pair_mask_jaccards(AllForeground(), pairs, batch_size=2)
    # independent reference with numpy: J of an all-ones mask = |gt| / |image|; order per batch: A masks, then B
    share = lambda m: float(np.asarray(m).sum() / np.asarray(m).size) if np.asarray(m).any() else math.nan
    expected = [share(p["mask_A"]) for p in pairs[:2]] + [share(p["mask_B"]) for p in pairs[:2]]
    expected += [share(pairs[2]["mask_A"]), share(pairs[2]["mask_B"])]
    np.testing.assert_allclose(scores, expected)


def test_the_true_masks_score_one():
    pairs = _pairs()
    scores = pair_mask_jaccards(Truth(pairs), pairs, batch_size=3)
    assert scores[:5] == [1.0] * 5 and math.isnan(scores[5])
