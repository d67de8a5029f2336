"""The one learning-rate schedule of both training phases, against the closed form of a cosine decay."""

import math

import pytest

from macos_lite.pretrain import SCHEDULES, lr_schedule


@pytest.mark.parametrize("steps, warmup", [(10, 0), (10, 3), (1, 0)])
def test_cosine_after_a_linear_warm_up(steps, warmup):
    for step in range(steps):
        if step < warmup:
            expected = (step + 1) / (warmup + 1)
        else:
            expected = (1 + math.cos(math.pi * (step - warmup) / (steps - warmup))) / 2
        assert lr_schedule(step, steps, "cosine", warmup) == pytest.approx(expected)


def test_held_at_zero_past_the_end_and_constant_is_one():
    assert lr_schedule(10, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_schedule(15, 10) == pytest.approx(0.0, abs=1e-12)  # not climbing back up the cosine
    assert [lr_schedule(s, 5, "constant") for s in range(7)] == [1.0] * 7
    assert set(SCHEDULES) == {"cosine", "constant"}
    with pytest.raises(ValueError, match="linear"):
        lr_schedule(0, 5, "linear")
